"""catviz runs: run folders read by catviz.runs and drawn headless by the Runs tab's plots."""

import json

import numpy as np
import pytest
from PySide6.QtGui import QImage

from catviz import app, runs
from catviz.qt_runs_plot import QtRunCurves


def write_run(folder, records, lines_after=(), config="model: cat_tiny\nepochs: 3\n"):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config)
    text = "".join(json.dumps(r) + "\n" for r in records) + "".join(lines_after)
    (folder / "log.jsonl").write_text(text)
    return folder


def record(epoch, loss, m, raw=None, levels=None, lr=0.01):
    out = {"epoch": epoch, "train_loss": loss, "lr": lr, "mAP": m, "level_mAP": levels or {"P5": m - 5, "P3": m + 1}}
    if raw is not None:
        out |= {"mAP_raw": raw, "weights": "ema"}
    return out


def test_series_from_a_log_and_a_damaged_line_named_while_the_rest_is_kept(tmp_path):
    run = write_run(tmp_path / "a", [record(1, 1.0, 40, raw=38), record(2, 0.8, 50, raw=47)],
                    ['{"epoch": 3, "train_loss": \n', '{"epoch": 4, "train_loss": "low", "mAP": 60}\n'])
    read = runs.open_run(run)
    series = read.series()
    assert series["train loss"] == ([1, 2, 4], [1.0, 0.8, pytest.approx(np.nan, nan_ok=True)])
    assert series["val mAP (EMA)"][1] == [40, 50, 60] and series["val mAP (raw)"][1][:2] == [38, 47]
    assert series["mAP P5"][1][:2] == [35, 45] and np.isnan(series["mAP P5"][1][2])  # line 4 has no levels
    log = run / "log.jsonl"
    assert read.problems == [f"{log}, line 3: not a JSON record (Expecting value: line 1 column 28 (char 27)); skipped",
                             f"{log}, line 4: train_loss is 'low', not a number; left out"]
    assert read.status == "finished (4 epochs)"


def test_a_lock_of_a_live_process_is_training_and_of_a_dead_one_died(tmp_path):
    import os

    run = write_run(tmp_path / "a", [record(1, 1.0, 40)], ['{"epoch": 2, "tr'])  # the trainer is writing line 2
    (run / ".lock").write_text(f"{os.getpid()}\n")
    read = runs.open_run(run)
    assert read.live and read.status.startswith("training") and read.epochs == [1] and read.problems == []
    (run / ".lock").write_text("999999999\n")
    runs.refresh(read)
    assert not read.live and read.status.startswith("died") and "line 2" in read.problems[0]


def _run_cli(argv, capsys):
    try:
        code = app.main(["runs", *map(str, argv)])
    except SystemExit as stop:  # usage errors leave through argparse, as the installed script does
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_catviz_runs_writes_the_curves_of_several_runs(tmp_path, capsys, qapp):
    a = write_run(tmp_path / "seed-0" / "run", [record(1, 1.0, 40, raw=38), record(2, 0.7, 55, raw=50)])
    b = write_run(tmp_path / "seed-1" / "run", [record(1, 1.1, 42), record(2, 0.9, 48), record(3, 0.6, 58)],
                  ["not json\n"])
    out = tmp_path / "curves.png"
    code, printed, err = _run_cli([a, b, "--out", out], capsys)
    assert code == 0 and "wrote" in printed
    assert f"{b / 'log.jsonl'}, line 4: not a JSON record" in err
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1400, 900)
    # the drawing itself: every curve of both runs, in each panel
    widget = QtRunCurves()
    widget.show_runs([runs.open_run(a), runs.open_run(b)])
    names = {title: sorted(item.name() for item in plot.listDataItems()) for title, plot in widget.plots.items()}
    assert names["val mAP"] == ["seed-0/run EMA", "seed-0/run raw", "seed-1/run"]
    assert names["mAP of each level"] == ["seed-0/run P3", "seed-0/run P5", "seed-1/run P3", "seed-1/run P5"]
    assert names["train loss"] == names["learning rate"] == ["seed-0/run", "seed-1/run"]
    widget.close()
    # an existing picture is never replaced without --overwrite
    before = out.read_bytes()
    code, _, err = _run_cli([a, "--out", out], capsys)
    assert code == 2 and "exists" in err and out.read_bytes() == before
    assert _run_cli([a, "--out", out, "--overwrite"], capsys)[0] == 0 and out.read_bytes() != before


def test_a_folder_without_a_run_exits_2_naming_it(tmp_path, capsys):
    a = write_run(tmp_path / "a", [record(1, 1.0, 40)])
    (tmp_path / "empty").mkdir()
    code, _, err = _run_cli([a, tmp_path / "empty", "--out", tmp_path / "c.png"], capsys)
    assert code == 2 and f"{tmp_path / 'empty'}: holds no training run" in err
    code, _, err = _run_cli([tmp_path / "missing", "--out", tmp_path / "c.png"], capsys)
    assert code == 2 and f"{tmp_path / 'missing'}: no such folder" in err
    assert not (tmp_path / "c.png").exists()


def test_a_snapshot_of_another_model_is_named_and_left_off(tmp_path):
    import struct

    run = write_run(tmp_path / "a", [record(1, 1.0, 40)])
    (run / "snapshots").mkdir()
    for epoch, model in ((1, "cat_tiny"), (2, "baseline_tiny")):
        header = json.dumps({"__metadata__": {"format": "catviz/1", "catviz": json.dumps({"model": model})}}).encode()
        (run / "snapshots" / f"epoch-{epoch:03d}.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (run / "snapshots" / "epoch-003.safetensors").write_bytes(b"\x01")  # truncated
    read = runs.open_run(run)
    assert list(read.snapshots) == [1]
    assert any("epoch-002.safetensors: a snapshot of 'baseline_tiny'" in p for p in read.problems)
    assert any("epoch-003.safetensors: not a readable catviz checkpoint" in p for p in read.problems)
