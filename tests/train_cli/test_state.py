"""Resume state is untrusted input: a damaged ``last`` checkpoint is refused naming the file."""

import json
import re
import shutil

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from catviz.train_cli import train
from catviz.train_cli.config import TrainConfig
from catviz.train_cli.state import epoch_loss, map_history, pack, read_state, unfinished, unpack
from tests.fixtures import write_coco_format

ARGS = ["--dataset", "coco-format", "--model", "cat_tiny", "--no-pretrained", "--img-size", "64",
        "--batch-size", "2", "--workers", "0", "--optimizer", "adamw", "--lr", "0.001", "--limit-images", "4"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("state")
    data = write_coco_format(root / "data", images_per_split=6)
    assert train.main([*ARGS, "--data-root", str(data), "--out", str(root / "run"), "--epochs", "1"]) == 0
    return data, root / "run"


def _entries(skeleton: dict) -> dict:
    return dict(skeleton["__dict__"])


def _edit_resume(path, edit):
    """Rewrite the resume skeleton (JSON text) of ``path`` with ``edit(text) -> text``."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    metadata["resume"] = edit(metadata["resume"])
    save_file(tensors, str(path), metadata=metadata)


def _edit_entries(change):
    def edit(text):
        skeleton = json.loads(text)
        entries = _entries(skeleton)
        change(entries)
        return json.dumps({"__dict__": [[k, v] for k, v in entries.items()]})

    return edit


@pytest.mark.parametrize("edit, message", [
    (lambda text: "{not json", "resume state is malformed"),
    (lambda text: text[: len(text) // 2], "resume state is malformed"),
    (lambda text: "[1, 2]", "resume state is malformed"),
    (_edit_entries(lambda e: e.pop("epoch")), r"resume state is incomplete \(no epoch\)"),
    (_edit_entries(lambda e: e.pop("optimizer")), r"resume state is incomplete \(no optimizer\)"),
    (_edit_entries(lambda e: e.update(step_in_epoch=99)), r"resume position out of range \(epoch 1, step 99"),
    (_edit_entries(lambda e: e.update(step_in_epoch=-1)), "resume position out of range"),
    (_edit_entries(lambda e: e.update(epoch="one")), "resume state 'epoch' has the wrong type"),
    (_edit_entries(lambda e: e.update(torch_rng={"__tensor__": "resume/none"})), "resume state is malformed"),
    (_edit_entries(lambda e: e.update(optimizer={"__dict__": [["state", {"__dict__": []}]]})), "resume state does not fit"),
])
def test_damaged_resume_state_is_refused_naming_the_file(tmp_path, finished_run, capsys, edit, message):
    data, run = finished_run
    out = tmp_path / "run"
    shutil.copytree(run, out)
    _edit_resume(out / "last.safetensors", edit)
    capsys.readouterr()
    assert train.main([*ARGS, "--data-root", str(data), "--out", str(out), "--epochs", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'last.safetensors'}: " in err and "Traceback" not in err
    assert re.search(message, err), err


def test_resuming_a_finished_run_asks_for_more_epochs(finished_run, capsys):
    data, run = finished_run
    assert train.main([*ARGS, "--data-root", str(data), "--out", str(run), "--epochs", "1", "--resume"]) == 2
    assert "already completed 1 of --epochs 1; pass a larger --epochs" in capsys.readouterr().err


def test_resuming_past_max_epochs_names_it(finished_run, capsys):
    data, run = finished_run
    assert train.main([*ARGS, "--data-root", str(data), "--out", str(run), "--epochs", "1", "--max-epochs", "1",
                       "--resume"]) == 2
    assert "already completed 1 of --max-epochs 1; pass a larger --epochs (or --max-epochs)" in capsys.readouterr().err


def test_the_map_history_travels_in_the_checkpoint_and_older_ones_fall_back_to_the_log(tmp_path, finished_run, caplog):
    _, run = finished_run
    logged = [json.loads(line)["mAP"] for line in (run / "log.jsonl").read_text().splitlines()]
    state, _ = read_state(run / "last.safetensors", 2)
    assert map_history(state, tmp_path / "no-log.jsonl") == pytest.approx(logged)  # from the state
    out = tmp_path / "older"
    shutil.copytree(run, out)
    _edit_resume(out / "last.safetensors", _edit_entries(lambda e: e.pop("map_history")))
    older, _ = read_state(out / "last.safetensors", 2)
    assert "map_history" not in older and map_history(older, out / "log.jsonl") == pytest.approx(logged)
    (out / "log.jsonl").write_text("")
    assert map_history(older, out / "log.jsonl") == [] and "lacks some of epochs 1-1" in caplog.text


@pytest.mark.parametrize("saved, expected", [
    ([1.5, 3], (1.5, 3)),  # a mid-epoch checkpoint: 3 of its 4 steps' losses
    ([0, 0], (0.0, 0)),
    ([2, 0], (0.0, 0)),  # a sum with no step
    ([-1.5, 3], (0.0, 0)),
    ([True, 3], (0.0, 0)),
    (None, (0.0, 0)),  # written before checkpoints kept them
    ([1.5, 9], (0.0, 0)),  # more losses than steps done
    ([float("nan"), 3], (0.0, 0)),
    ([1.5, True], (0.0, 0)),
    ("1.5,3", (0.0, 0)),
])
def test_a_resumed_epoch_continues_its_loss_sum_from_a_checked_entry(tmp_path, saved, expected, caplog):
    state = {"epoch": 1, "step_in_epoch": 4} | ({"epoch_loss": saved} if saved is not None else {})
    assert epoch_loss(state, tmp_path / "last.safetensors") == expected
    assert ("averages the steps after the resume only" in caplog.text) == (saved != [0, 0] and expected == (0.0, 0))


def test_unfinished_says_why_a_run_would_train_on(finished_run):
    _, run = finished_run
    last = run / "last.safetensors"
    assert unfinished(last, TrainConfig(epochs=2)) == "stopped at epoch 1 of 2"
    assert unfinished(last, TrainConfig(epochs=1)) is None
    assert unfinished(last, TrainConfig(epochs=1, max_epochs=3, converge_window=2)) == \
        "not converged after 1 epochs (--max-epochs 3)"  # one epoch cannot fill a window of 2
    assert unfinished(last, TrainConfig(epochs=1, max_epochs=1)) is None


def test_changed_hyperparameters_are_listed_and_allowed_only_on_request(tmp_path, finished_run, capsys):
    data, run = finished_run
    out = tmp_path / "run"
    shutil.copytree(run, out)
    changed = [*ARGS, "--data-root", str(data), "--out", str(out), "--epochs", "2", "--resume",
               "--lr", "0.002", "--img-size", "96", "--workers", "1"]
    assert train.main(changed) == 2
    err = capsys.readouterr().err
    assert "lr: 0.001 in the run, 0.002 now" in err and "img_size: 64 in the run, 96 now" in err
    assert "workers" not in err  # how fast, not what: may change
    assert train.main([*changed, "--allow-changed-config"]) == 0


def test_pack_unpack_round_trip_keeps_int_keys():
    import torch

    state = {"optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]}}
    tensors, skeleton = pack(state)
    back = unpack(tensors, skeleton)
    assert list(back["optimizer"]["state"]) == [0] and back["optimizer"]["state"][0]["step"].item() == 3.0
