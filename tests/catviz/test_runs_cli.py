"""catviz runs: run folders read by catviz.runs and drawn headless by the Runs tab's plots."""

import numpy as np
import pytest
from PySide6.QtGui import QImage

from catviz import app, runs
from catviz.qt_runs_plot import QtRunCurves
from tests.catviz.runs_fixtures import record, write_header, write_run


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


def test_a_snapshot_of_another_model_or_label_set_is_named_and_left_off(tmp_path):
    run = write_run(tmp_path / "a", [record(1, 1.0, 40)])
    snapshots = run / "snapshots"
    labels = ["cat", "dog"]
    write_header(run / "last.safetensors", {"model": "cat_tiny", "class_names": labels})
    for epoch, meta in ((1, {"model": "cat_tiny", "class_names": labels}),
                        (2, {"model": "baseline_tiny", "class_names": labels}),
                        (4, {"model": "cat_tiny", "class_names": ["0", "1", "2", "3", "4", "5"]}),
                        (5, {"model": "cat_tiny"})):
        write_header(snapshots / f"epoch-{epoch:03d}.safetensors", meta)
    (snapshots / "epoch-003.safetensors").write_bytes(b"\x01")  # truncated
    read = runs.open_run(run)
    assert list(read.snapshots) == [1] and read.class_names == ("cat", "dog")
    problems = "\n".join(read.problems)
    assert f"{snapshots / 'epoch-002.safetensors'}: a snapshot of 'baseline_tiny'" in problems
    assert f"{snapshots / 'epoch-003.safetensors'}: not a readable catviz checkpoint" in problems
    assert (f"{snapshots / 'epoch-004.safetensors'}: a snapshot of another label set (6 labels: 0, 1, 2, 3 ...), "
            "not this run's (2 labels: cat, dog); left off the slider") in problems
    assert f"{snapshots / 'epoch-005.safetensors'}: its class names are missing" in problems


def test_without_a_last_checkpoint_the_label_set_most_snapshots_have_is_the_runs(tmp_path):
    run = write_run(tmp_path / "a", [record(1, 1.0, 40)])
    for epoch, names in ((1, ["x", "y"]), (2, ["a", "b", "c"]), (3, ["a", "b", "c"])):
        write_header(run / "snapshots" / f"epoch-{epoch:03d}.safetensors", {"model": "cat_tiny", "class_names": names})
    read = runs.open_run(run)
    assert list(read.snapshots) == [2, 3] and read.class_names == ("a", "b", "c")
    assert "epoch-001.safetensors: a snapshot of another label set (2 labels: x, y)" in read.problems[0]


def test_catviz_runs_band_draws_seed_groups_and_names_the_runs_on_their_own(tmp_path, capsys, qapp):
    from tests.catviz.runs_fixtures import seed_config

    folders = [write_run(tmp_path / f"s{seed}", [record(1, 1.0, 40 + seed), record(2, 0.8, 50 + seed)],
                         config=seed_config(seed)) for seed in (0, 1)]
    folders.append(write_run(tmp_path / "noseed", [record(1, 1.0, 30)], config={"model": "cat_tiny"}))
    out = tmp_path / "band.png"
    code, printed, _ = _run_cli([*folders, "--band", "std", "--out", out], capsys)
    assert code == 0 and out.is_file()
    assert (f"cat_tiny · paper: mean and ±1 std band of seeds 0, 1 ({folders[0]}, {folders[1]}), over epochs 1-2"
            in printed)
    assert f"{folders[2]}: drawn on its own, config.yaml: no seed" in printed
    code, _, err = _run_cli([*folders, "--band", "wide", "--out", tmp_path / "x.png"], capsys)
    assert code == 2 and "--band: invalid choice: 'wide'" in err
