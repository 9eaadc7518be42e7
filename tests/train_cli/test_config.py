"""Every invalid flag or config value is a usage error (exit 2) before any data or model is loaded."""

import re

import pytest

from catviz import eval_cli
from catviz.train_cli import demo_models, train
from catviz.train_cli.config import (
    DATASET_PRESETS,
    TrainConfig,
    build_parser,
    default_workers,
    resolve_config,
)
from catviz.train_cli.errors import UsageError

# A data root that does not exist: had any data been read, the exit status would be 1.
BASE = ["--dataset", "coco-format", "--data-root", "/nonexistent/catviz-data", "--model", "cat_tiny", "--no-pretrained"]


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
    (["--epochs", "-1"], "--epochs must be an integer >= 1"),
    (["--batch-size", "0"], "--batch-size must be an integer >= 1"),
    (["--batch-size", "-5"], "--batch-size must be an integer >= 1"),
    (["--limit-images", "-3"], "--limit-images must be an integer >= 0"),
    (["--ema", "2"], r"--ema must be in \[0, 1\)"),
    (["--save-every", "-1"], "--save-every must be an integer >= 0"),
    (["--lr", "nan"], r"--lr must be a number in \(0, 1000\], got nan"),
    (["--lr", "inf"], r"--lr must be a number in \(0, 1000\]"),
    (["--lr", "-1"], r"--lr must be a number in \(0, 1000\]"),
    (["--img-size", "7"], r"--img-size must be in \[32, 4096\]"),
    (["--img-size", "0"], r"--img-size must be in \[32, 4096\]"),
    (["--img-size", "-64"], r"--img-size must be in \[32, 4096\]"),
    (["--img-size", "99999"], r"--img-size must be in \[32, 4096\]"),
    (["--workers", "-3"], "--workers must be an integer >= 0"),
    (["--dropout", "2"], r"--dropout must be in \[0, 1\)"),
    (["--cutout", "1.5"], r"--cutout must be a probability"),
    (["--seed", "-1"], "--seed must be an integer >= 0"),
    (["--seed", str(2**64)], r"--seed must be at most 9223372036854775807"),
    (["--lr", "1e300"], r"--lr must be a number in \(0, 1000\]"),
    (["--weight-decay", "1e300"], r"--weight-decay must be a number in \[0, 1000\]"),
    (["--momentum", "1"], r"--momentum must be in \[0, 1\)"),
    (["--model", "resnet9000"], "--model must be one of"),
    (["--backbone", "no_such_net"], "--backbone must be a timm model name"),
    (["--device", "tpu9"], "--device 'tpu9'"),
    (["--pretrained-file", "/nonexistent/w.safetensors"], "--pretrained-file /nonexistent/w.safetensors: no such file"),
    (["--epochs", "10", "--max-epochs", "5"], r"--max-epochs must be 0 \(off\) or >= --epochs \(10\), got 5"),
    (["--schedule", "cosine", "--max-epochs", "90"], "--max-epochs must be 0 with --schedule cosine"),
    (["--converge-window", "1"], "--converge-window must be an integer >= 2, got 1"),
    (["--converge-delta", "0"], "--converge-delta must be a finite number > 0"),
    (["--workers", "1000"], r"--workers must be at most \d+ on this machine \(\d+ cores"),
    (["--threads", "-1"], "--threads must be an integer >= 0"),
    (["--threads", "1000"], r"--threads must be at most \d+ on this machine"),
])
def test_invalid_flags_are_usage_errors_before_any_data_is_read(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert train.main([*BASE, "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("catviz-train: error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--fpn-out-conv", "5x5"], ["--optimizer", "rmsprop"], ["--epochs", "two"]])
def test_malformed_flags_are_argparse_usage_errors(flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        resolve_config([*BASE, *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err  # the error and where the options are; not argparse's 25-line synopsis
    assert err.startswith("catviz-train: error: ") and err.count("\n") == 2 and "catviz-train --help" in err


def test_garbage_pretrained_file_is_refused_early(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"\x00" * 100)
    assert train.main([*BASE, "--out", str(tmp_path / "run"), "--pretrained-file", str(weights)]) == 2
    assert "not a readable weights file" in capsys.readouterr().err
    weights = tmp_path / "w.pth"
    weights.write_text("hello")
    assert train.main([*BASE, "--out", str(tmp_path / "run"), "--pretrained-file", str(weights)]) == 2
    assert "not a weights file" in capsys.readouterr().err


def test_cuda_without_a_gpu_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(UsageError, match="--device 'cuda'.*CUDA is not available"):
        resolve_config([*BASE, "--device", "cuda"])


@pytest.mark.parametrize("text, message", [
    ("optimizer: rmsprop\n", r"c.yaml: optimizer must be one of sgd, adamw, got 'rmsprop'"),
    ("epochs: ten\n", r"c.yaml: epochs must be an int, got 'ten'"),
    ("epochs: 2.5\n", r"c.yaml: epochs must be an int, got 2.5"),
    ("hflip: 3\n", r"c.yaml: hflip must be a bool, got 3"),
    ("lr: [1, 2]\n", r"c.yaml: lr must be a float, got \[1, 2\]"),
    ("epochs: 0\n", r"c.yaml: epochs must be an integer >= 1, got 0"),
    ("schedule: linear\n", r"c.yaml: schedule must be one of step, cosine, onecycle"),
    ("epoch: 7\n", r"unknown option\(s\) \['epoch'\]"),
    ("- 1\n- 2\n", "a config file is a mapping of option: value, not a list"),
    ("lr: !!python/object/apply:os.system ['true']\n", "cannot read config"),
    (b"model: caf\xe9\n", "cannot read config"),
])
def test_bad_yaml_values_are_usage_errors_naming_the_file_and_key(tmp_path, text, message):
    config = tmp_path / "c.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UsageError, match=message):
        resolve_config([*BASE, "--config", str(config)])


def test_yaml_values_of_the_right_type_are_accepted(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 1e-3\nepochs: 3\nbackbone: null\nema: 0\n")  # YAML 1.1 reads 1e-3 as a string
    cfg = resolve_config([*BASE, "--config", str(config)])
    assert (cfg.lr, cfg.epochs, cfg.backbone, cfg.ema) == (0.001, 3, None, 0.0)


def test_default_workers_fit_the_machine():
    import os

    cores = len(os.sched_getaffinity(0))
    assert default_workers() == min(4, cores - 1) == TrainConfig().workers


def test_help_documents_the_exit_codes(capsys):
    for main in (train.main, eval_cli.main):
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "exit codes: 0 success; 1 failure" in " ".join(capsys.readouterr().out.split())  # however it wraps


def test_help_states_each_default_once_and_never_as_none():
    for action in build_parser()._actions:
        if action.help and action.option_strings[0] != "-h":
            assert action.help.count("default") <= 1, action.option_strings
            assert "None" not in action.help, action.option_strings


def test_help_describes_the_demo_preset_it_applies():
    demo = DATASET_PRESETS["demo"]
    text = " ".join(build_parser().format_help().split())
    assert f"{demo['img_size']}px, {demo['epochs']} epochs" in text and f"epoch {demo['lr_step']}" in text
    assert f"then on until converged, at most {demo['max_epochs']}" in text
    assert "glyph-pretrained trunk" in text and "from-scratch" not in text


@pytest.mark.parametrize("flags, epochs, max_epochs", [
    ([], 16, 24),  # the preset: 16, then on until converged, at most 24
    (["--epochs", "1"], 1, 0),  # a smoke run: one epoch, not twenty
    (["--epochs", "30"], 30, 0),  # past the preset's 24: no error about a flag the user never gave
    (["--epochs", "20", "--max-epochs", "30"], 20, 30),
])
def test_epochs_given_alone_trains_exactly_that_many_even_with_the_demo_preset(flags, epochs, max_epochs):
    cfg = resolve_config(["--dataset", "demo", *flags])
    assert (cfg.epochs, cfg.max_epochs) == (epochs, max_epochs)
    assert DATASET_PRESETS["demo"]["max_epochs"] == 24  # the rows above read it


@pytest.mark.parametrize("flags, run, epochs, max_epochs", [
    (["--resume"], {"epochs": 30, "max_epochs": 0}, 30, 0),  # a run started with --epochs 30 keeps its length
    (["--resume", "--epochs", "40"], {"epochs": 16, "max_epochs": 24}, 40, 0),  # given: the user's
    (["--resume", "--max-epochs", "30"], {"epochs": 16, "max_epochs": 24}, 16, 30),
    (["--resume"], {"epochs": "30", "max_epochs": True, "lr": 5.0}, 16, 24),  # untrusted: wrong types ignored
])
def test_a_resumed_run_keeps_its_own_length_unless_the_user_gives_one(flags, run, epochs, max_epochs):
    cfg = resolve_config(["--dataset", "demo", *flags], run)
    assert (cfg.epochs, cfg.max_epochs, cfg.lr) == (epochs, max_epochs, DATASET_PRESETS["demo"]["lr"])


def test_a_fixed_length_schedule_drops_the_presets_on_until_converged():
    assert resolve_config(["--dataset", "demo", "--schedule", "cosine"]).max_epochs == 0  # was refused naming it
    scratch = resolve_config(["--dataset", "demo", *demo_models.SCRATCH])  # make demo-models --recipe scratch
    assert (scratch.epochs, scratch.max_epochs, scratch.schedule) == (12, 0, "cosine")


def test_every_numeric_option_states_its_range_in_help():
    """Issue 28: a number's range is said before it is checked (workers/threads: 'at most' per machine)."""
    unstated = [action.option_strings[0] for action in build_parser()._actions
                if action.type in (int, float) and not re.search(r"in [\[(]|> 0|at most|>= ?0", action.help or "")]
    assert unstated == [], unstated
