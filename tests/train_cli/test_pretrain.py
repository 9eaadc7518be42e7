"""Pretraining the demo trunk: the file loads through --pretrained-file; nothing is overwritten silently."""

import json

import pytest
import torch
from safetensors import safe_open

import models
from train_cli import pretrain


def test_a_short_run_writes_timm_weights_that_the_tiny_models_load(tmp_path, capsys):
    out = tmp_path / "trunk.safetensors"
    assert pretrain.main(["--out", str(out), "--steps", "2", "--batch-size", "4", "--val-images", "4",
                          "--size", "32", "--workers", "0"]) == 0
    with safe_open(str(out), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
        weights = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["backbone"] == "test_resnet" and meta["steps"] == 2 and "0" not in meta["classes"]
    model = models.create_model("cat_tiny", 10, pretrained_file=str(out))
    trunk = model.backbone.state_dict()
    assert trunk and all(torch.equal(v, weights[k]) for k, v in trunk.items())
    assert pretrain.main(["--out", str(out), "--steps", "2"]) == 1  # exists: refused without --force
    assert "--force" in capsys.readouterr().err


def test_the_same_seed_pretrains_the_same_weights(tmp_path):
    """`make demo-models` must rebuild the shipped trunk bit for bit."""
    args = ["--steps", "3", "--batch-size", "4", "--val-images", "4", "--size", "32", "--workers", "1"]
    tensors = []
    for name in ("a", "b"):
        assert pretrain.main(["--out", str(tmp_path / f"{name}.safetensors"), *args]) == 0
        with safe_open(str(tmp_path / f"{name}.safetensors"), "pt") as f:
            tensors.append({k: f.get_tensor(k) for k in f.keys()})
    a, b = tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.main(["--out", str(tmp_path / "x.safetensors"), "--steps", "0"])
    assert exit_info.value.code == 2
