"""Snapshots (--snapshot-every / --snapshot-epochs) and how EMA weights are scored, selected and saved."""

import hashlib
import json

import pytest
from safetensors.torch import load_file

from catviz import eval_cli
from catviz.models.checkpoint import RESUME_PREFIX, load_checkpoint, read_meta, save_checkpoint
from catviz.train_cli import snapshots, train
from catviz.train_cli.config import build_parser
from catviz.train_cli.run_dir import open_run_dir
from catviz.train_cli.state import unpack
from tests.fixtures import write_coco_format

ARGS = ["--dataset", "coco-format", "--model", "cat_tiny", "--no-pretrained", "--img-size", "64",
        "--batch-size", "4", "--workers", "0", "--optimizer", "adamw", "--lr", "0.003"]


@pytest.fixture
def data_root(tmp_path):
    return write_coco_format(tmp_path / "data", images_per_split=13)


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _eval(paths, data_root, tmp_path, capsys) -> list[float]:
    """val mAP of each checkpoint as catviz-eval scores it (an independent path to the weights)."""
    out = tmp_path / "eval.json"
    out.unlink(missing_ok=True)
    assert eval_cli.main([*map(str, paths), "--data-root", str(data_root), "--workers", "0", "--json", str(out)]) == 0
    capsys.readouterr()
    return [r["mAP"] for r in json.loads(out.read_text())["results"]]


def test_snapshots_are_checkpoints_of_their_epoch_and_ema_is_what_is_scored_selected_and_saved(
        tmp_path, data_root, capsys):
    run = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "3", "--out", str(run),
                       "--snapshot-every", "2", "--snapshot-epochs", "1", "--ema", "0.5"]) == 0
    found = snapshots.find(run)
    assert list(found) == [1, 2] and found[1] == run / "snapshots" / "epoch-001.safetensors"
    log = _log(run)
    for epoch, path in found.items():
        model, meta = load_checkpoint(path)
        assert meta.epoch == epoch and meta.model == "cat_tiny" and meta.metrics["weights"] == "ema"
        assert meta.metrics["mAP"] == pytest.approx(log[epoch - 1]["mAP"])
        assert not any(k.startswith(RESUME_PREFIX) for k in load_file(str(path)))  # weights only
    assert all(r["weights"] == "ema" and set(r["level_mAP"]) == {"P5", "P4", "P3"} for r in log)

    # The saved (EMA) weights give the logged mAP; the raw weights kept for resuming give mAP_raw.
    last = run / "last.safetensors"
    raw_model, meta = load_checkpoint(last)
    state = unpack({k: v for k, v in load_file(str(last)).items() if k.startswith(RESUME_PREFIX)},
                   __import__("safetensors").safe_open(str(last), "pt").metadata()["resume"])
    raw_model.load_state_dict(state["model"])
    save_checkpoint(tmp_path / "raw.safetensors", raw_model, meta)
    snap_maps = _eval(found.values(), data_root, tmp_path, capsys)
    assert snap_maps == pytest.approx([log[0]["mAP"], log[1]["mAP"]], abs=1e-6)
    last_ema, last_raw = _eval([last, tmp_path / "raw.safetensors"], data_root, tmp_path, capsys)
    assert last_ema == pytest.approx(log[2]["mAP"], abs=1e-6)
    assert last_raw == pytest.approx(log[2]["mAP_raw"], abs=1e-6)
    assert last_ema != pytest.approx(last_raw, abs=1e-3)  # decay 0.5 after a few steps: they differ
    # best is the epoch with the highest EMA mAP (the documented selection), not the raw one's
    best_epoch = max(log, key=lambda r: r["mAP"])["epoch"]
    assert read_meta(run / "best.safetensors").epoch == best_epoch


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_a_resumed_run_adds_snapshots_and_leaves_the_older_ones_alone(tmp_path, data_root):
    run = tmp_path / "run"
    common = [*ARGS, "--data-root", str(data_root), "--out", str(run), "--snapshot-every", "1"]
    assert train.main([*common, "--epochs", "1"]) == 0
    before = _digest(snapshots.path(run, 1))
    assert train.main([*common, "--epochs", "2", "--resume"]) == 0
    assert list(snapshots.find(run)) == [1, 2]
    assert _digest(snapshots.path(run, 1)) == before
    assert read_meta(snapshots.path(run, 2)).epoch == 2
    # --overwrite replaces the run, its snapshots too
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(run), "--epochs", "1", "--overwrite"]) == 0
    assert snapshots.find(run) == {}


@pytest.mark.parametrize("flags, said", [
    (["--snapshot-every", "0"], "--snapshot-every must be an integer >= 1, got 0"),
    (["--snapshot-every", "-3"], "--snapshot-every must be an integer >= 1, got -3"),
    (["--snapshot-epochs", "1,0"], "--snapshot-epochs must be epochs >= 1"),
    (["--snapshot-epochs", "1,two"], "'two' is not an epoch number"),
])
def test_a_snapshot_setting_that_keeps_nothing_is_a_usage_error(tmp_path, flags, said, capsys):
    assert train.main(["--dataset", "coco-format", "--data-root", str(tmp_path), "--out", str(tmp_path / "r"),
                       *flags]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_which_epochs_keep_a_snapshot_and_help_states_the_disk_use():
    assert [e for e in range(1, 9) if snapshots.due(e, 3, "")] == [3, 6]
    assert [e for e in range(1, 9) if snapshots.due(e, 0, "1, 2,4,8,4")] == [1, 2, 4, 8]
    assert [e for e in range(1, 9) if snapshots.due(e, 0, "")] == []
    text = " ".join(build_parser().format_help().split())
    assert "--snapshot-every" in text and "--snapshot-epochs" in text
    assert "one model's weights per snapshot" in text and "403 MiB" in text


def test_overwrite_removes_snapshots_but_not_other_files(tmp_path):
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    (run / "log.jsonl").write_text("")
    (run / "snapshots" / "epoch-001.safetensors").write_bytes(b"x")
    (run / "snapshots" / "notes.txt").write_text("mine")
    open_run_dir(run, resume=False, overwrite=True).release()
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["notes.txt"]
