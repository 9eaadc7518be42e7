"""Run folders written by the tests: a log.jsonl, a config.yaml and, where wanted, snapshots that
are real (tiny) catviz checkpoints or bare safetensors headers."""

from __future__ import annotations

import json
import struct

import yaml

CLASSES = ["cat", "dog", "car", "bus", "tree"]


def record(epoch, loss, m, raw=None, levels=None, lr=0.01):
    out = {"epoch": epoch, "train_loss": loss, "lr": lr, "mAP": m, "level_mAP": levels or {"P5": m - 5, "P3": m + 1}}
    if raw is not None:
        out |= {"mAP_raw": raw, "weights": "ema"}
    return out


def write_run(folder, records, lines_after=(), config="model: cat_tiny\nepochs: 3\n"):
    """``config``: the config.yaml text, or a dict written as YAML, or None for no config.yaml."""
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.yaml").write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    text = "".join(json.dumps(r) + "\n" for r in records) + "".join(lines_after)
    (folder / "log.jsonl").write_text(text)
    return folder


def seed_config(seed, model="cat_tiny", recipe="paper", **more):
    """A config.yaml as catviz-train writes it, the parts grouping reads."""
    return {"dataset": "demo", "recipe": recipe, "model": model, "epochs": 3, "lr": 0.01, "seed": seed,
            "out": f"runs/s{seed}", "threads": 1, **more}


def write_header(path, meta: dict) -> None:
    """A safetensors file of no tensors whose catviz metadata is ``meta`` (what the Runs tab reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"__metadata__": {"format": "catviz/1", "catviz": json.dumps(meta)}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def write_snapshot(run, epoch, seed, model="cat_tiny", classes=CLASSES, score=None, input_size=64):
    """A real tiny checkpoint as ``run/snapshots/epoch-NNN.safetensors``: weights drawn from ``seed``
    (so each epoch's model differs), its epoch and val mAP in the metadata."""
    import torch

    from catviz import models
    from catviz.models.checkpoint import CheckpointMeta, save_checkpoint

    torch.manual_seed(seed)
    net = models.create_model(model, len(classes))
    path = run / "snapshots" / f"epoch-{epoch:03d}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {"mAP": score} if score is not None else {}
    save_checkpoint(path, net, CheckpointMeta(model=model, class_names=list(classes), input_size=input_size,
                                              mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), dataset="test",
                                              epoch=epoch, metrics=metrics))
    return path
