"""Pretraining the demo trunk: the file loads through --pretrained-file; nothing is overwritten silently."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from catviz import models
from catviz.train_cli import demo_models, pretrain
from catviz.train_cli.config import DEMO_THREADS, resolve_config

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_run_writes_timm_weights_that_the_tiny_models_load(tmp_path, capsys):
    out = tmp_path / "trunk.safetensors"
    assert pretrain.main(["--out", str(out), "--steps", "2", "--batch-size", "4", "--val-images", "4",
                          "--size", "32", "--workers", "0"]) == 0
    with safe_open(str(out), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
        weights = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["backbone"] == "test_resnet" and meta["steps"] == 2 and "0" not in meta["classes"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # a shipped asset, not a private 0600 file
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left behind
    model = models.create_model("cat_tiny", 10, pretrained_file=str(out))
    trunk = model.backbone.state_dict()
    assert trunk and all(torch.equal(v, weights[k]) for k, v in trunk.items())
    with pytest.raises(SystemExit) as exit_:  # exists: a usage error without --overwrite, nothing replaced
        pretrain.main(["--out", str(out), "--steps", "2"])
    assert exit_.value.code == 2 and "pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--lr", "1e300"], "--lr must be in (0, 1000]"),
    (["--seed", "-1"], "--seed must be in [0, 9223372036854775807]"),
    (["--workers", "-2"], "--workers must be >= 0, got -2"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--steps", "0"], "--steps, --batch-size and --val-images must be >= 1"),
])
def test_bad_flags_are_usage_errors_before_any_work(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        pretrain.main(["--out", str(tmp_path / "w.safetensors"), *flags])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 2
    assert not (tmp_path / "w.safetensors").exists()


def test_out_in_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        pretrain.main(["--out", str(tmp_path / "typo" / "w.safetensors")])
    assert exit_.value.code == 2 and "(no such folder)" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_the_same_seed_pretrains_the_same_weights(tmp_path):
    """`make demo-models` must rebuild the shipped trunk bit for bit."""
    args = ["--steps", "3", "--batch-size", "4", "--val-images", "4", "--size", "32"]
    tensors = []
    for name, workers in (("a", "0"), ("b", "1")):  # the worker count must not matter either
        assert pretrain.main(["--out", str(tmp_path / f"{name}.safetensors"), *args, "--workers", workers]) == 0
        with safe_open(str(tmp_path / f"{name}.safetensors"), "pt") as f:
            tensors.append({k: f.get_tensor(k) for k in f.keys()})
    a, b = tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--out", str(tmp_path / "x.safetensors"), "--steps", "0"])
    assert exit_info.value.code == 2


def test_make_demo_models_rebuilds_the_shipped_pair_and_trunk():
    """The shipped pair is the seed study's median seed, trained as make demo-models trains it (the demo
    preset, one thread each) from the shipped trunk."""
    from catviz import demo
    from catviz.models.checkpoint import read_meta

    study = json.loads((ROOT / "bench" / "results" / "demo-seeds.json").read_text())
    runs = study["runs"]
    diffs = {seed: r["cat_tiny"]["final"]["mAP"] - r["baseline_tiny"]["final"]["mAP"] for seed, r in runs.items()}
    seeds = sorted(diffs, key=diffs.get)
    assert len(seeds) >= 5 and int(seeds[(len(seeds) - 1) // 2]) == demo_models.DEMO_SEED

    trunk = demo.DEMO_CHECKPOINTS["cat"].with_name(demo_models.TRUNK)
    assert hashlib.sha256(trunk.read_bytes()).hexdigest() == study["trunk"]["sha256"]
    with safe_open(str(trunk), "pt") as f:
        assert json.loads(f.metadata()["steps"]) == pretrain.build_parser().parse_args(["--out", "x"]).steps

    cfg = resolve_config(["--dataset", "demo", "--seed", str(demo_models.DEMO_SEED),
                          *demo_models.recipe_flags("paper", trunk)])
    for role, model in demo_models.ROLES.items():
        meta = read_meta(demo.DEMO_CHECKPOINTS[role])
        for key in ("model", "pretrained", "epochs", "max_epochs", "converge_window", "converge_delta", "batch_size",
                    "lr", "optimizer", "momentum", "weight_decay", "decay_bias_norm", "schedule", "lr_step",
                    "lr_gamma", "img_size", "crop", "hflip", "seed", "channels_last"):
            expected = model if key == "model" else getattr(cfg, key)
            assert meta.config[key] == expected, (role, key)
        assert meta.config["threads"] == DEMO_THREADS == runs[str(demo_models.DEMO_SEED)][model]["threads"]
        assert meta.metrics["mAP"] == pytest.approx(runs[str(demo_models.DEMO_SEED)][model]["final"]["mAP"], abs=0.01)
        assert meta.epoch == runs[str(demo_models.DEMO_SEED)][model]["epochs"]  # where training on stopped


@pytest.mark.parametrize("stop, code, how", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_stopped_pretraining_exits_cleanly_and_writes_nothing(tmp_path, stop, code, how):
    out = tmp_path / "w.safetensors"
    # SIGINT as a terminal's Ctrl-C delivers it, even where pytest runs with SIGINT ignored (a background job).
    console = tmp_path / "console.txt"
    with open(console, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "catviz.train_cli.pretrain", "--out", str(out), "--steps", "100000",
                                    "--workers", "0", "--threads", "1"], cwd=ROOT, stderr=stderr, text=True,
                                   env={k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"},
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    try:
        deadline = time.monotonic() + 120
        while "pretraining on glyphs" not in console.read_text() and process.poll() is None:  # the steps have begun
            assert time.monotonic() < deadline, console.read_text()
            time.sleep(0.1)
        process.send_signal(stop)
        assert process.wait(timeout=60) == code
    finally:
        process.kill()
    err = console.read_text()
    assert f"{how}; {out} not written" in err and "Traceback" not in err
    assert not out.exists()
