"""Training configuration: defaults in one dataclass, a dataset preset, YAML, then flags.

Precedence, lowest first: the dataclass defaults (the paper's recipe), the dataset's
preset (``demo`` only), a ``--config`` YAML file, command-line flags.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    dataset: str = "coco"  # coco | voc | coco-format | demo
    data_root: str | None = None  # dataset folder (demo: where to generate it)
    keep_unannotated: bool = False  # COCO: keep images without labels as all-negative
    model: str = "cat"  # a name from models.list_models()
    backbone: str | None = None  # timm name; default: the variant's
    pretrained: bool = True  # ImageNet weights through timm (needs the hub)
    pretrained_file: str | None = None  # local weights file for the backbone (offline)
    fpn_out_conv: str | None = None  # 3x3 | 1x1 | none; default: the variant's (3x3)
    dropout: float | None = None  # transformer dropout (CAT variants); default 0.1
    epochs: int = 60
    batch_size: int = 16  # global, across all processes
    lr: float = 0.01
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"  # step | cosine | onecycle
    lr_step: int = 30  # step schedule: epochs between decays
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0
    img_size: int = 448
    hflip: bool = True
    randaugment: bool = False
    cutout: float = 0.0  # probability of random erasing
    loss: str = "bce"  # bce | asl
    ema: float = 0.0  # EMA decay of weights (e.g. 0.9997); 0 = off
    workers: int = 4
    out: str | None = None  # run folder; default runs/<dataset>-<model>
    resume: bool = False  # continue from <out>/last.safetensors
    save_every: int = 0  # also checkpoint every N steps (0: each epoch only)
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    limit_images: int = 0  # use only the first N images of each split (smoke runs)
    tensorboard: bool = False

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.dataset}-{self.model}")


# The demo set trains from scratch on a tiny backbone on a laptop CPU.
DATASET_PRESETS = {
    "demo": dict(
        model="cat_tiny", pretrained=False, epochs=12, batch_size=16, lr=2e-3, optimizer="adamw",
        weight_decay=0.05, schedule="cosine", warmup_epochs=1.0, img_size=128, hflip=False, workers=2,
    ),
}

CHOICES = {
    "dataset": ["coco", "voc", "coco-format", "demo"],
    "optimizer": ["sgd", "adamw"],
    "schedule": ["step", "cosine", "onecycle"],
    "loss": ["bce", "asl"],
    "amp": ["none", "bf16", "fp16"],
}

HELP = {
    "dataset": "coco (MS-COCO 2014), voc (VOC2007), coco-format (annotations/{train,val}.json + images/{train,val}/), demo (generated offline)",
    "data_root": "dataset folder; for demo, where to generate it (default ~/.cache/catviz)",
    "keep_unannotated": "COCO: keep images with no annotation as all-negative (default: drop them, as ML-GCN)",
    "model": "model name (see models.list_models(): cat, baseline, cat_no_lrd, cat_no_clf, cat_mha, fpn, *_tiny)",
    "backbone": "timm backbone name (default: the model's, resnext50_32x4d.fb_swsl_ig1b_ft_in1k)",
    "pretrained": "load ImageNet-pretrained backbone weights through timm (downloads from the hub)",
    "pretrained_file": "local backbone weights file (.safetensors/.pth of the timm classifier), for offline use",
    "fpn_out_conv": "FPN output conv: 3x3 (FPN paper, default), 1x1 or none",
    "dropout": "dropout in the LRD/CLF transformer blocks (default 0.1; CAT variants only)",
    "epochs": "training epochs",
    "batch_size": "global batch size (split across torchrun processes)",
    "lr": "peak learning rate",
    "optimizer": "sgd (paper) or adamw",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "schedule": "step (x lr-gamma every lr-step epochs, paper), cosine or onecycle",
    "lr_step": "step schedule: epochs between decays",
    "lr_gamma": "step schedule: decay factor",
    "warmup_epochs": "linear warm-up length in epochs (fractions allowed)",
    "img_size": "training crop / test resize (train: resize to img-size*512/448, random crop)",
    "hflip": "random horizontal flips in training",
    "randaugment": "RandAugment on training images",
    "cutout": "probability of Cutout (random erasing) per training image",
    "loss": "bce (paper) or asl (asymmetric loss, Ben-Baruch et al.)",
    "ema": "keep an exponential moving average of weights with this decay (0: off); EMA weights are evaluated and saved",
    "workers": "DataLoader worker processes",
    "out": "run folder for checkpoints and logs (default runs/<dataset>-<model>)",
    "resume": "resume from <out>/last.safetensors (model, optimizer, schedule, RNG and data position)",
    "save_every": "also write last.safetensors every N optimizer steps (0: once per epoch)",
    "seed": "random seed (data order, augmentation, initialisation)",
    "device": "auto (CUDA if available), cpu, cuda, cuda:1 ...",
    "amp": "mixed precision: none, bf16 or fp16 (fp16 uses a gradient scaler)",
    "channels_last": "channels_last memory format (faster convolutions on recent GPUs)",
    "limit_images": "use only the first N images of each split (quick smoke runs; 0: all)",
    "tensorboard": "also log to TensorBoard (needs the tensorboard package)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catviz-train",
        description="Train CAT, its baseline or an ablation. Defaults are the paper's recipe "
        "(SGD lr 0.01, momentum 0.9, wd 1e-4, x0.1 every 30 epochs, 60 epochs, batch 16, 448px); "
        "--dataset demo switches to a from-scratch preset for the CPU.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML file setting any of the options below; flags override it")
    for f in fields(TrainConfig):
        # Flags default to None so that only the ones given override the config file.
        flag = "--" + f.name.replace("_", "-")
        demo = DATASET_PRESETS["demo"].get(f.name)
        text = f"{HELP[f.name]} (default: {f.default}{f'; demo: {demo}' if demo is not None else ''})"
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        kind = {"int": int, "float": float}.get(f.type.removesuffix(" | None"), str)
        parser.add_argument(flag, type=kind, default=None, choices=CHOICES.get(f.name), help=text)
    return parser


def resolve_config(argv: list[str] | None = None) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config")
    values: dict = {}
    if config_file:
        path = Path(config_file)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SystemExit(f"catviz-train: cannot read config {path}: {err}") from err
        unknown = set(values) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise SystemExit(f"catviz-train: {path}: unknown option(s) {sorted(unknown)}")
    flags = {k: v for k, v in args.items() if v is not None}
    dataset = flags.get("dataset", values.get("dataset", TrainConfig.dataset))
    merged = {**DATASET_PRESETS.get(dataset, {}), **values, **flags}
    return dataclasses.replace(TrainConfig(), **merged)
