"""End-to-end runs of catviz-train / catviz-eval on fixtures the tests write."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file

from catviz import eval_cli
from catviz.models.checkpoint import load_checkpoint, read_meta
from catviz.train_cli import train
from catviz.train_cli.config import resolve_config
from catviz.train_cli.errors import UsageError
from catviz.train_cli.run_dir import LOCK_NAME
from catviz.train_cli.state import unfinished
from tests.fixtures import write_coco_format

ARGS = ["--dataset", "coco-format", "--model", "cat_tiny", "--no-pretrained", "--img-size", "64",
        "--batch-size", "4", "--workers", "0", "--optimizer", "adamw", "--lr", "0.001"]


@pytest.fixture
def data_root(tmp_path):
    return write_coco_format(tmp_path / "data", images_per_split=13)


def test_two_epoch_run_writes_checkpoints_the_app_and_eval_can_open(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "2", "--out", str(out)]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    model, meta = load_checkpoint(out / "best.safetensors")
    assert meta.class_names == ["car", "dog", "zebra"] and meta.input_size == 64
    assert meta.model == "cat_tiny" and meta.dataset == "coco-format"
    assert meta.mean == pytest.approx(timm.data.resolve_data_config({}, model=model.backbone)["mean"])
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 2
    assert "resume/torch_rng" in load_file(str(out / "last.safetensors"))

    capsys.readouterr()
    assert eval_cli.main([str(out / "best.safetensors"), str(out / "last.safetensors"),
                          "--data-root", str(data_root), "--workers", "0", "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "mAP" in printed and "cat_tiny (best)" in printed and "cat_tiny (last)" in printed
    results = json.loads((tmp_path / "e.json").read_text())["results"]
    assert results[0]["mAP"] == pytest.approx(read_meta(out / "best.safetensors").metrics["mAP"], abs=1e-6)


def test_eval_refuses_a_checkpoint_with_other_classes(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    train.main([*ARGS, "--data-root", str(data_root), "--epochs", "1", "--out", str(out)])
    capsys.readouterr()
    assert eval_cli.main([str(out / "last.safetensors"), "--dataset", "voc", "--data-root", str(data_root)]) == 1


def test_config_precedence_defaults_preset_yaml_flags(tmp_path):
    paper = resolve_config(["--data-root", "x"])
    assert paper.lr == 0.01 and paper.epochs == 60  # the paper
    assert resolve_config(["--dataset", "demo"]).model == "cat_tiny"  # demo preset
    config = tmp_path / "c.yaml"
    config.write_text("dataset: demo\nepochs: 7\nlr: 0.5\n")
    cfg = resolve_config(["--config", str(config), "--lr", "0.25"])
    assert (cfg.dataset, cfg.epochs, cfg.lr, cfg.img_size) == ("demo", 7, 0.25, 128)
    config.write_text("epoch: 7\n")
    with pytest.raises(UsageError, match="unknown option"):
        resolve_config(["--config", str(config)])


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, data_root, capsys, monkeypatch):
    real_loss = train.make_loss
    calls = []

    def loss_turning_nan(cfg):
        loss = real_loss(cfg)

        def wrapped(logits, targets):
            calls.append(1)
            value = loss(logits, targets)
            return value * float("nan") if len(calls) > 4 else value  # 3 steps an epoch: NaN in epoch 2

        return wrapped

    monkeypatch.setattr(train, "make_loss", loss_turning_nan)
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "3", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "loss became nan at epoch 2, step 2" in err
    assert f"the last good checkpoint is {out / 'last.safetensors'} (1 epoch(s) and 0 step(s) done" in err
    assert read_meta(out / "last.safetensors").epoch == 1


def test_resume_refuses_a_run_with_another_optimizer(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    for allow in ([], ["--allow-changed-config"]):  # the optimizer state cannot carry over
        assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "2", "--out", str(out),
                           "--resume", "--optimizer", "sgd", *allow]) == 2
        assert "cannot be resumed" in capsys.readouterr().err


def _run(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "catviz.train_cli.train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


def _position(checkpoint) -> tuple[int, int]:
    """(completed epochs, steps into the current epoch) of a ``last`` checkpoint, or (-1, -1)."""
    from safetensors import SafetensorError

    from catviz.models.checkpoint import CheckpointError, read_resume
    from catviz.train_cli.state import unpack

    try:
        state = unpack(*read_resume(checkpoint))
    except (CheckpointError, SafetensorError, OSError, ValueError):  # not written yet
        return -1, -1
    return state["epoch"], state["step_in_epoch"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path, data_root):
    common = [*ARGS, "--data-root", str(data_root), "--epochs", "5", "--save-every", "1"]
    whole = _run([*common, "--out", str(tmp_path / "whole")])
    assert whole.wait(timeout=300) == 0, whole.stderr.read().decode()

    killed = _run([*common, "--out", str(tmp_path / "killed")])
    last = tmp_path / "killed" / "last.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and killed.poll() is None:
        epoch, step = _position(last) if last.exists() else (-1, -1)
        if epoch >= 1 and step >= 1:  # in the middle of the second epoch
            break
        time.sleep(0.002)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    epoch, step = _position(last)
    assert (epoch, step) < (5, 0), "the run finished before it could be killed"
    resumed = _run([*common, "--out", str(tmp_path / "killed"), "--resume"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()

    a = load_file(str(tmp_path / "whole" / "last.safetensors"))
    b = load_file(str(last))
    weights = [k for k in a if not k.startswith("resume/")]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)
    assert read_meta(last).epoch == 5
    # the epoch it was killed in logs the mean over all its steps, not only those after the resume
    # (an epoch redone after a kill between its log line and its checkpoint is logged twice: the last counts)
    logged = [list({r["epoch"]: r["train_loss"] for r in map(json.loads, (tmp_path / run / "log.jsonl").read_text()
                                                             .splitlines())}.values()) for run in ("whole", "killed")]
    assert len(logged[1]) == 5 and logged[1] == pytest.approx(logged[0], rel=1e-9)


def test_an_epoch_interrupted_mid_way_logs_the_mean_loss_of_all_its_steps(tmp_path, data_root, monkeypatch):
    """The killed-run test above cannot choose where its kill lands; this one stops at a known step."""
    common = [*ARGS, "--data-root", str(data_root), "--epochs", "2", "--save-every", "1"]
    assert train.main([*common, "--out", str(tmp_path / "whole")]) == 0
    real_step = train.Trainer._step

    def interrupted_mid_second_epoch(self, *batch):
        if (self.epoch, self.step_in_epoch) == (1, 2):
            raise KeyboardInterrupt
        return real_step(self, *batch)

    monkeypatch.setattr(train.Trainer, "_step", interrupted_mid_second_epoch)
    assert train.main([*common, "--out", str(tmp_path / "stopped")]) == 130
    assert _position(tmp_path / "stopped" / "last.safetensors") == (1, 2)  # steps before and after the resume
    monkeypatch.setattr(train.Trainer, "_step", real_step)
    assert train.main([*common, "--out", str(tmp_path / "stopped"), "--resume"]) == 0
    logged = [[json.loads(line)["train_loss"] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
              for run in ("whole", "stopped")]
    assert len(logged[1]) == 2 and logged[1] == pytest.approx(logged[0], rel=1e-9)


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_one_process_with_the_same_global_batch(tmp_path, data_root):
    # LayerNorm backbone and no dropout: per-rank batches then give exactly the global batch's gradient.
    common = [*ARGS, "--data-root", str(data_root), "--epochs", "2", "--batch-size", "8",
              "--backbone", "test_convnext", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.05"]
    # (SGD, not Adam: Adam rescales the float noise of zero-gradient parameters, such as
    # attention key biases, into full-size steps that differ between the two runs.)
    single = _run([*common, "--out", str(tmp_path / "single")])
    assert single.wait(timeout=300) == 0, single.stderr.read().decode()
    ddp = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "catviz.train_cli.train", *common, "--out", str(tmp_path / "ddp")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert ddp.wait(timeout=300) == 0, ddp.stderr.read().decode()[-3000:]
    a = load_file(str(tmp_path / "single" / "last.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "last.safetensors"))
    weights = [k for k in a if not k.startswith("resume/")]
    for key in weights:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    # evaluation gathered across ranks: the same metrics as one process
    assert read_meta(tmp_path / "ddp" / "last.safetensors").metrics["mAP"] == pytest.approx(
        read_meta(tmp_path / "single" / "last.safetensors").metrics["mAP"], abs=1e-3)


def test_an_undecodable_image_is_reported_with_its_path_and_skipped(tmp_path, data_root, caplog):
    broken = data_root / "images" / "train" / "2.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "1", "--out", str(out)]) == 0
    assert any(str(broken) in r.getMessage() and "skipping image" in r.getMessage() for r in caplog.records)
    assert (out / "last.safetensors").exists()


def test_neither_dataloader_workers_nor_the_image_cache_change_the_weights(tmp_path, data_root):
    """`make demo-models` runs with 0 workers (faster on 2 cores) and the cache; the shipped runs used 1, no cache."""
    weights = []
    for workers, cache in (("0", "0"), ("2", "0"), ("0", "64"), ("2", "64")):
        out = tmp_path / f"workers{workers}-cache{cache}"
        assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "2", "--out", str(out),
                           "--crop", "multiscale", "--seed", "3", "--workers", workers, "--cache-mib", cache]) == 0
        weights.append(load_file(str(out / "last.safetensors")))
    first = weights[0]
    for other in weights[1:]:
        assert first.keys() == other.keys() and all(torch.equal(first[k], other[k]) for k in first)


def test_opt_in_recipe_changes_run(tmp_path, data_root):
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "2", "--out", str(out),
                       "--ema", "0.9", "--loss", "asl", "--randaugment", "--cutout", "0.5",
                       "--schedule", "onecycle", "--warmup-epochs", "0.5"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) for r in log)
    # resume of an EMA run restores both the raw and the averaged weights
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "3", "--out", str(out),
                       "--ema", "0.9", "--loss", "asl", "--randaugment", "--cutout", "0.5",
                       "--schedule", "onecycle", "--warmup-epochs", "0.5", "--resume",
                       "--allow-changed-config"]) == 0  # onecycle over 3 epochs instead of 2
    assert read_meta(out / "last.safetensors").epoch == 3


def test_step_and_cosine_schedules_are_the_documented_functions():
    from catviz.train_cli.schedule import lr_factor

    assert lr_factor(29.9, 60) == 1.0 and lr_factor(30, 60) == pytest.approx(0.1) and lr_factor(59, 60) == pytest.approx(0.1)
    assert lr_factor(0, 10, "cosine") == 1.0
    assert lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(0.5, 10, "cosine", warmup_epochs=1) == pytest.approx(0.5 * 0.5 * (1 + np.cos(np.pi * 0.05)))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last_train_on_the_cpu_too(tmp_path, data_root, amp):
    """The CUDA recipe's switches (autocast, gradient scaler for fp16, channels_last) on the CPU."""
    out = tmp_path / amp
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "1", "--out", str(out),
                       "--amp", amp, "--channels-last"]) == 0
    record = json.loads((out / "log.jsonl").read_text())
    assert np.isfinite(record["train_loss"]) and 0 <= record["mAP"] <= 100


SMALL = ["--limit-images", "4", "--batch-size", "2", "--epochs", "1"]


@pytest.mark.parametrize("split, message", [
    ("train", "no training image could be read in epoch 1"),
    ("val", "no image of the 'val' split could be read"),
])
def test_a_split_with_no_readable_image_stops_the_run_without_a_best_or_a_score(tmp_path, data_root, capsys,
                                                                                   split, message):
    for image in (data_root / "images" / split).glob("*.png"):
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), *SMALL]) == 1
    assert message in capsys.readouterr().err
    assert not (out / "best.safetensors").exists() and not (out / "log.jsonl").exists()


def test_undefined_map_is_logged_as_null_and_saves_no_best(tmp_path, data_root):
    path = data_root / "annotations" / "val.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"annotations": []}))  # val: no positive label
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), *SMALL, "--keep-unannotated"]) == 0
    record = json.loads((out / "log.jsonl").read_text())
    assert record["mAP"] is None and np.isfinite(record["train_loss"])
    assert not (out / "best.safetensors").exists() and (out / "last.safetensors").exists()


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), "safetensors"])
def test_disk_full_names_the_file_and_the_last_good_checkpoint(tmp_path, data_root, capsys, monkeypatch, error):
    from safetensors import SafetensorError

    from catviz.models import checkpoint

    real_save, calls = checkpoint.save_file, []

    def save_until_full(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # the first checkpoint fits, the second does not
            raise error if isinstance(error, OSError) else SafetensorError("Error while serializing: IoError")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_until_full)
    out = tmp_path / "run"
    args = [*ARGS, "--data-root", str(data_root), "--out", str(out), *SMALL, "--save-every", "1"]
    assert train.main(args) == 1
    err = capsys.readouterr().err
    assert f"could not write {out / 'last.safetensors'}" in err
    assert f"the last good checkpoint is {out / 'last.safetensors'} (0 epoch(s) and 1 step(s) done" in err
    assert _position(out / "last.safetensors") == (0, 1) and not list(out.glob(".*.catviz-tmp"))


def test_libjpeg_warnings_on_a_corrupt_jpeg_do_not_reach_stderr(tmp_path, data_root, capfd):
    import cv2

    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    data = bytearray(cv2.imencode(".jpg", image)[1].tobytes())
    data[len(data) // 2: len(data) // 2 + 40] = b"\xff\x00" * 20  # libjpeg: "Corrupt JPEG data: ..."
    (data_root / "images" / "train" / "1.jpg").write_bytes(bytes(data))
    path = data_root / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    coco["images"][1]["file_name"] = "1.jpg"
    path.write_text(json.dumps(coco))
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(tmp_path / "run"), *SMALL]) == 0
    err = capfd.readouterr().err  # file-descriptor level: what libjpeg would print itself
    assert "JPEG" not in err and "Traceback" not in err


def test_an_unexpected_error_is_one_line_with_the_traceback_kept_in_the_run_folder(tmp_path, data_root, capsys,
                                                                                     monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(train, "Trainer", broken)
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), *SMALL]) == 1
    err = capsys.readouterr().err
    assert "internal error (ZeroDivisionError: a bug)" in err and str(out / "crash.log") in err
    assert "Traceback" not in err and "Traceback" in (out / "crash.log").read_text()


def _logged_epochs(run) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_training_goes_on_past_epochs_until_the_window_is_flat(tmp_path, data_root, capsys):
    # any span is < 1000: converged as soon as the 3-epoch window is full, which is after --epochs 2
    out = tmp_path / "run"
    flags = ["--epochs", "2", "--max-epochs", "6", "--converge-window", "3", "--converge-delta", "1000"]
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), *flags]) == 0
    assert _logged_epochs(out) == [1, 2, 3] and read_meta(out / "last.safetensors").epoch == 3
    assert "done: converged after 3 epochs (the last 3 epochs' mAP spans" in capsys.readouterr().out


def test_a_run_that_never_converges_stops_at_max_epochs_and_says_so(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.setattr(train, "converged", lambda *args: False)
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), "--epochs", "1", "--max-epochs", "3"]) == 0
    assert _logged_epochs(out) == [1, 2, 3]
    assert "done: NOT converged at --max-epochs 3" in capsys.readouterr().out


def test_a_window_longer_than_the_run_is_reported_as_such(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--max-epochs", "2", "--converge-window", "5"]
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), *flags]) == 0
    assert "NOT converged at --max-epochs 2 (fewer than 5 epochs to judge)" in capsys.readouterr().out


def test_training_a_finished_run_on_gives_the_weights_of_an_uninterrupted_run(tmp_path, data_root, monkeypatch):
    # How the seed study extends its 16-epoch runs once the recipe trains on until converged.
    monkeypatch.setattr(train, "converged", lambda *args: False)
    common = [*ARGS, "--data-root", str(data_root), "--epochs", "2"]
    assert train.main([*common, "--out", str(tmp_path / "whole"), "--max-epochs", "3"]) == 0
    assert train.main([*common, "--out", str(tmp_path / "extended")]) == 0
    assert train.main([*common, "--out", str(tmp_path / "extended"), "--max-epochs", "3", "--resume"]) == 0
    assert _logged_epochs(tmp_path / "extended") == [1, 2, 3]
    a = load_file(str(tmp_path / "whole" / "last.safetensors"))
    b = load_file(str(tmp_path / "extended" / "last.safetensors"))
    weights = [k for k in a if not k.startswith("resume/")]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)


def test_a_converged_run_is_not_trained_further_on_resume(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    flags = ["--data-root", str(data_root), "--out", str(out), "--epochs", "1", "--max-epochs", "5",
             "--converge-window", "2", "--converge-delta", "1000"]
    assert train.main([*ARGS, *flags]) == 0
    weights = (out / "last.safetensors").read_bytes()
    capsys.readouterr()
    assert train.main([*ARGS, *flags, "--resume"]) == 0
    assert "done: converged after 2 epochs" in capsys.readouterr().out
    assert _logged_epochs(out) == [1, 2] and (out / "last.safetensors").read_bytes() == weights
    assert unfinished(out / "last.safetensors", resolve_config([*ARGS, *flags])) is None


def test_sigterm_stops_training_as_ctrl_c_does(tmp_path, data_root, monkeypatch, capsys):
    # a scheduler's preemption (SLURM, docker stop) sends SIGTERM: say where to resume, exit 143
    def fit_until_terminated(self):
        self.saved_at = (1, 0)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
        pytest.fail("SIGTERM did not stop training")

    monkeypatch.setattr(train.Trainer, "fit", fit_until_terminated)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--epochs", "1", "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert err.startswith("catviz-train: terminated (SIGTERM); the last good checkpoint is") and "--resume" in err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's only
    assert not (out / LOCK_NAME).exists()  # the folder is free for --resume


def test_threads_apply_to_the_run_only_and_are_recorded(tmp_path, data_root, monkeypatch):
    during = []
    real_step = train.Trainer._step
    monkeypatch.setattr(train.Trainer, "_step", lambda self, *batch: during.append(torch.get_num_threads())
                        or real_step(self, *batch))
    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2  # not the count the process already has
    out = tmp_path / "run"
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(out), *SMALL, "--threads", str(wanted)]) == 0
    assert during and set(during) == {wanted}
    assert torch.get_num_threads() == before  # the calling process keeps its own count
    assert read_meta(out / "last.safetensors").config["threads"] == wanted


def test_a_kill_before_the_epochs_checkpoint_loses_neither_its_log_line_nor_its_best(tmp_path, data_root, monkeypatch):
    out = tmp_path / "run"
    args = [*ARGS, "--data-root", str(data_root), "--out", str(out), "--epochs", "2"]
    real_save, calls = train.Trainer.save_last, []

    def killed_at_the_second_epochs_end(self):
        calls.append(self.epoch)
        if self.epoch == 2:
            raise KeyboardInterrupt
        real_save(self)

    monkeypatch.setattr(train.Trainer, "save_last", killed_at_the_second_epochs_end)
    assert train.main(args) == 130 and calls == [1, 2]
    assert [r["epoch"] for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())] == [1, 2]
    best_epoch = read_meta(out / "best.safetensors").epoch
    monkeypatch.setattr(train.Trainer, "save_last", real_save)
    assert train.main([*args, "--resume"]) == 0  # epoch 2 is redone and logged again: the last record counts
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 2] and records[1]["mAP"] == pytest.approx(records[2]["mAP"])
    assert read_meta(out / "best.safetensors").epoch == best_epoch
