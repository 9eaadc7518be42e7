"""Training configuration: defaults in one dataclass, a dataset preset, YAML, then flags.

Precedence, lowest first: the dataclass defaults (the paper's recipe), the dataset's
preset (``demo`` only), a ``--config`` YAML file, command-line flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import zipfile
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import timm
import yaml
from safetensors import SafetensorError, safe_open

import catviz.models as models  # the models layer (not the catviz package above)
from catviz.models.checkpoint import MAX_INPUT_SIZE, MIN_INPUT_SIZE

from . import snapshots
from .data import DATASETS, describe_datasets
from .errors import EXIT_CODES_HELP, ArgumentParser, UsageError

MAX_SEED = 2**63 - 1  # torch's generators take up to 2**64 - 1: room left for seed + rank and seed + epoch
MAX_HYPERPARAMETER = 1e3  # largest --lr, --lr-gamma, --weight-decay, --warmup-epochs: far past any sane value
#: The integer options' ranges (inclusive): checked before any work (exit 2) and stated in --help.
RANGES = {"epochs": (1, 10_000), "max_epochs": (0, 10_000), "converge_window": (2, 1_000),
          "batch_size": (1, 65_536), "lr_step": (1, 10_000), "limit_images": (0, 10**9),
          "save_every": (0, 10**9), "cache_mib": (0, 1 << 20)}
#: The real-valued options' ranges as --help states them (checked in :func:`validate`).
FLOAT_RANGES = {"lr": f"in (0, {MAX_HYPERPARAMETER:g}]", "lr_gamma": f"in (0, {MAX_HYPERPARAMETER:g}]",
                "weight_decay": f"in [0, {MAX_HYPERPARAMETER:g}]", "warmup_epochs": f"in [0, {MAX_HYPERPARAMETER:g}]",
                "momentum": "in [0, 1)", "ema": "in [0, 1)", "cutout": "in [0, 1]", "dropout": "in [0, 1)",
                "converge_delta": "a finite number > 0"}
#: Ranges that depend on this machine or on the models, as --help states them.
OTHER_RANGES = {"img_size": f"in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}]", "seed": f"in [0, {MAX_SEED}]",
                "workers": "in [0, max(8, 4 x CPU cores)]", "threads": "in [0, max(8, 4 x CPU cores)]",
                "snapshot_every": "in [1, 10000]"}


def default_workers() -> int:
    """DataLoader workers: up to 4, leaving one of the cores this process may use to training.

    More workers than cores only makes the DataLoader warn and the processes compete.
    """
    return min(4, max(usable_cores() - 1, 0))


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def max_workers() -> int:
    """More worker processes than this only compete for the cores (1000 stalled a 2-core machine)."""
    return max(8, 4 * usable_cores())


@dataclass
class TrainConfig:
    dataset: str = "coco"  # coco | voc | coco-format | demo
    recipe: str = "paper"  # paper | modern (RECIPES)
    data_root: str | None = None  # dataset folder (demo: where to generate it)
    keep_unannotated: bool = False  # COCO: keep images without labels as all-negative
    model: str = "cat"  # a name from catviz.models.list_models()
    backbone: str | None = None  # timm name; default: the variant's
    pretrained: bool = True  # ImageNet weights through timm (needs the hub)
    pretrained_file: str | None = None  # local weights file for the backbone (offline)
    fpn_out_conv: str | None = None  # 3x3 | 1x1 | none; default: the variant's (3x3)
    dropout: float | None = None  # transformer dropout (CAT variants); default 0.1
    epochs: int = 60
    max_epochs: int = 0  # past --epochs, train on until converged, at most this many epochs (0: off)
    converge_window: int = 5  # converged: the val mAP of the last N epochs ...
    converge_delta: float = 0.5  # ... spans less than this many points
    batch_size: int = 16  # global, across all processes
    lr: float = 0.01
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 1e-4
    decay_bias_norm: bool = True  # weight decay on biases and norm weights too (the paper names no exception)
    schedule: str = "step"  # step | cosine | onecycle
    lr_step: int = 30  # step schedule: epochs between decays
    lr_gamma: float = 0.1
    warmup_epochs: float = 0.0
    img_size: int = 448
    crop: str = "multiscale"  # multiscale (ML-GCN's, paper) | plain (resize to img-size*512/448, random crop)
    hflip: bool = True
    randaugment: bool = False
    cutout: float = 0.0  # probability of random erasing
    loss: str = "bce"  # bce | asl
    ema: float = 0.0  # EMA decay of weights (e.g. 0.9997); 0 = off
    workers: int = default_workers()
    threads: int = 0  # CPU compute threads (torch.set_num_threads); 0: torch's default, one per core
    cache_mib: int = 0  # keep up to this many MiB of decoded images in memory (0: decode every epoch)
    out: str | None = None  # run folder; default runs/<dataset>-<model>
    resume: bool = False  # continue from <out>/last.safetensors
    overwrite: bool = False  # replace the run already in <out>
    allow_changed_config: bool = False  # --resume even where hyperparameters differ from the run's
    save_every: int = 0  # also checkpoint every N steps (0: each epoch only)
    snapshot_every: int = 0  # keep <out>/snapshots/epoch-NNN.safetensors every K epochs (0: off)
    snapshot_epochs: str = ""  # ... and after these epochs ("1,2,4")
    seed: int = 0
    device: str = "auto"
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    limit_images: int = 0  # use only the first N images of each split (smoke runs)
    tensorboard: bool = False

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.dataset}-{self.model}")


# The demo: the paper's recipe scaled to a CPU. SGD with momentum, step decay, ML-GCN's crop,
# weight decay on everything, from the tiny trunk pretrained on glyphs (train_cli.pretrain);
# 128² scenes, 16 epochs with one decay at 10 (the paper: 60, decays every 30), then on until
# converged (the val mAP of the last 5 epochs spans < 0.5 points), at most 24 (a second decay
# at 20); no flips (digits are not mirror-symmetric); channels_last, 1.33x faster a step on
# this project's CPU (README, the seed study).
DEMO_TRUNK = str(resources.files("catviz.assets") / "demo_trunk.safetensors")
# The shipped pair and the seed study train each run on one thread (side by side on a 2-core CPU):
# the thread count sets the order of float sums, so it is part of what makes their weights reproducible.
DEMO_THREADS = 1
# ... and on one instruction set: torch's CPU kernels (ATen), oneDNN's convolutions and MKL each use
# the widest vector instructions the CPU has, and each width sums floats in another order (the same
# seed gave another trunk on an AVX-512 CPU than on the AVX2 one the shipped files come from).
# Capped at AVX2, which x86 CPUs have had since 2013-2015 (train_cli.side_by_side.isa_env).
DEMO_CPU_ISA = "avx2"
# The trunk pretrains in one process on two threads, as the shipped one did.
DEMO_PRETRAIN_THREADS = 2
DATASET_PRESETS = {
    "demo": dict(
        model="cat_tiny", pretrained=True, pretrained_file=DEMO_TRUNK, epochs=16, max_epochs=24, batch_size=16, lr=0.01,
        optimizer="sgd", momentum=0.9, weight_decay=1e-4, schedule="step", lr_step=10, lr_gamma=0.1,
        img_size=128, hflip=False, crop="multiscale", decay_bias_norm=True, cache_mib=256, channels_last=True,
    ),
}

# Training recipes, applied over the dataset's preset (a YAML file and flags override them).
# "modern": what the multi-label repositories that lead COCO train with (Alibaba-MIIL/ASL's
# train.py, ML-Decoder, Query2Label): ASL (gamma- 4, gamma+ 0, clip 0.05), EMA 0.9997, Cutout
# (0.5) + RandAugment, Adam(W) at lr 1e-4 with weight decay 1e-4 off biases and norms, OneCycle.
# Differences from ASL's train.py: decoupled AdamW (ASL: Adam with L2 1e-4), our onecycle
# warms up linearly over 30% (ASL: torch OneCycleLR, cosine over 20%), no mixed precision
# unless --amp, and its epochs are this project's (ASL: 80 planned, stopped after 40).
RECIPES = {
    "paper": {},
    "modern": dict(
        loss="asl", ema=0.9997, randaugment=True, cutout=0.5, optimizer="adamw", lr=1e-4,
        weight_decay=1e-4, decay_bias_norm=False, schedule="onecycle",
    ),
}

# A recipe's settings that depend on the run's length, scaled per dataset preset. ASL's EMA
# decay 0.9997 averages over ~3,333 steps, 13 % of its COCO run (40 epochs x 641 steps); the
# demo trains 16 epochs x 150 steps = 2,400 steps, where 0.9997 would still hold half of the
# starting weights at the end (0.9997 ** 2400 = 0.49): 0.997 averages over the same share.
RECIPE_SCALED = {
    ("demo", "modern"): dict(ema=0.997),
}

CHOICES = {
    "recipe": list(RECIPES),
    "dataset": DATASETS,  # the registry: a format registered later is offered too
    "optimizer": ["sgd", "adamw"],
    "schedule": ["step", "cosine", "onecycle"],
    "loss": ["bce", "asl"],
    "amp": ["none", "bf16", "fp16"],
    "crop": ["multiscale", "plain"],
    "fpn_out_conv": ["3x3", "1x1", "none"],
}

HELP = {
    "dataset": describe_datasets(),
    "recipe": "paper (the defaults) or modern: " + ", ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in RECIPES["modern"].items()) + " (ASL's train.py; over the "
    "dataset's preset, under --config and flags)",
    "data_root": "dataset folder (required); for demo, where to generate it (default ~/.cache/catviz)",
    "keep_unannotated": "COCO: keep images with no annotation as all-negative (default: drop them, as ML-GCN)",
    "model": "model name (see models.list_models(): cat, baseline, cat_no_lrd, cat_no_clf, cat_mha, fpn, *_tiny)",
    "backbone": "timm backbone name (default: the model's, resnext50_32x4d.fb_swsl_ig1b_ft_in1k)",
    "pretrained": "start from pretrained backbone weights: --pretrained-file when given, else ImageNet weights "
    "through timm (downloads from the hub); --no-pretrained trains from scratch",
    "pretrained_file": "local backbone weights file (.safetensors/.pth of the timm classifier), for offline use "
    "(default: none, timm fetches the weights)",
    "fpn_out_conv": "FPN output conv: 3x3 (FPN paper, default), 1x1 or none",
    "dropout": "dropout in the LRD/CLF transformer blocks (default 0.1; CAT variants only)",
    "epochs": "training epochs (with --max-epochs: the least; given alone, exactly this many, also with --dataset demo)",
    "max_epochs": "after --epochs, keep training until converged (see --converge-window), at most this many "
    "epochs; 0: exactly --epochs. Step schedule only. Converged is judged on the val split, like best",
    "converge_window": "with --max-epochs: converged when the val mAP of the last N epochs ...",
    "converge_delta": "... spans (max - min) less than this many points",
    "batch_size": "global batch size (split across torchrun processes)",
    "lr": "peak learning rate",
    "optimizer": "sgd (paper) or adamw",
    "momentum": "SGD momentum",
    "weight_decay": "weight decay",
    "decay_bias_norm": "apply weight decay to biases and normalisation weights too (paper); "
    "--no-decay-bias-norm exempts them (a common modern choice, not the paper's)",
    "schedule": "step (x lr-gamma every lr-step epochs, paper), cosine or onecycle",
    "lr_step": "step schedule: epochs between decays",
    "lr_gamma": "step schedule: decay factor",
    "warmup_epochs": "linear warm-up length in epochs (fractions allowed)",
    "img_size": "training crop / test resize",
    "crop": "training crop: multiscale (ML-GCN's MultiScaleCrop: scales 1-0.5 of the shorter side, 13 fixed "
    "positions, resized to img-size; the paper's) or plain (resize to img-size*512/448, random img-size crop)",
    "hflip": "random horizontal flips in training",
    "randaugment": "RandAugment on training images",
    "cutout": "probability of Cutout (random erasing) per training image",
    "loss": "bce (paper) or asl (asymmetric loss, Ben-Baruch et al.)",
    "ema": "keep an exponential moving average of weights with this decay (0: off); EMA weights are evaluated and saved",
    "workers": "DataLoader worker processes; the default is min(4, this machine's CPU cores - 1)",
    "threads": "CPU compute threads of this run (0: torch's default, one per core). The count sets the order of float "
    "sums, so fixing it makes a CPU run reproducible bit for bit on another machine with the same kind of CPU; two runs with --threads 1 side "
    "by side use a 2-core CPU better than one run with 2 (bench/demo_seeds.py --jobs 2)",
    "cache_mib": "keep up to this many MiB of decoded images in memory, per split, so later epochs skip decoding "
    "(with --workers > 0 it is filled before the workers start, and they share it); 0: off",
    "out": "run folder for checkpoints and logs (default runs/<dataset>-<model>); a folder holding another "
    "run is refused unless --resume or --overwrite",
    "resume": "resume from <out>/last.safetensors (model, optimizer, schedule, RNG and data position); "
    "refused if hyperparameters differ from the run's (see --allow-changed-config)",
    "overwrite": "replace the run in --out (deletes its checkpoints and log first)",
    "allow_changed_config": "with --resume: accept hyperparameters that differ from the run's (listed in a warning)",
    "save_every": "also write last.safetensors every N optimizer steps (0: once per epoch)",
    "snapshot_every": "keep the model of every K-th epoch in <out>/snapshots/epoch-NNN.safetensors (a checkpoint "
    "catviz and catviz-eval open; EMA weights with --ema), K >= 1; default: none. Disk: one model's weights per "
    "snapshot, as best.safetensors (full-size CAT about 403 MiB, baseline 88 MiB, cat_tiny 2.5 MiB)",
    "snapshot_epochs": "also keep snapshots after these epochs, e.g. 1,2,4,8 (same files and sizes as --snapshot-every)",
    "seed": "random seed (data order, augmentation, initialisation)",
    "device": "auto (CUDA if available), cpu, cuda, cuda:1 ...",
    "amp": "mixed precision: none, bf16 or fp16 (fp16 uses a gradient scaler)",
    "channels_last": "channels_last memory format (faster convolutions on recent GPUs and on CPUs with oneDNN; see bench/train.py)",
    "limit_images": "use only the first N images of each split (quick smoke runs; 0: all)",
    "tensorboard": "also log to TensorBoard (needs the tensorboard package)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="catviz-train",
        description="Train CAT, its baseline or an ablation. Defaults are the paper's recipe "
        "(SGD lr 0.01, momentum 0.9, wd 1e-4, x0.1 every 30 epochs, 60 epochs, batch 16, 448px); "
        "--dataset demo switches to that recipe scaled to a CPU ({img_size}px, {epochs} epochs, x{lr_gamma} at "
        "epoch {lr_step}, then on until converged, at most {max_epochs}; fine-tuned from the bundled "
        "glyph-pretrained trunk).".format(**DATASET_PRESETS["demo"]),
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML file setting any of the options below; flags override it")
    for f in fields(TrainConfig):
        # Flags default to None so that only the ones given override the config file.
        flag = "--" + f.name.replace("_", "-")
        demo = DATASET_PRESETS["demo"].get(f.name)
        # A help text that states its default in words is not followed by the field's raw value.
        notes = ([] if "default" in HELP[f.name] else [f"default: {f.default}"]) + ([f"demo: {demo}"] if demo is not None else [])
        if f.name in RANGES:
            notes.insert(0, "in [{}, {}]".format(*RANGES[f.name]))
        elif f.name in FLOAT_RANGES or f.name in OTHER_RANGES:
            notes.insert(0, FLOAT_RANGES.get(f.name) or OTHER_RANGES[f.name])
        text = HELP[f.name] + (f" ({'; '.join(notes)})" if notes else "")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        kind = {"int": int, "float": float}.get(f.type.removesuffix(" | None"), str)
        parser.add_argument(flag, type=kind, default=None, choices=CHOICES.get(f.name), help=text)
    return parser


#: How long a run goes: free to change on --resume under the step schedule (its rate depends on
#: progress only); on --resume, those the user does not give are the run's own.
LENGTH = frozenset({"epochs", "max_epochs", "converge_window", "converge_delta"})


def resolve_config(argv: list[str] | None = None, run_config: dict | None = None) -> TrainConfig:
    """Defaults, preset, YAML and flags merged and checked; :class:`UsageError` on any bad value.

    ``run_config``: on --resume, the saved config of the run (untrusted: only its length
    settings of the right type are read), whose length the run keeps unless the user gives one.
    Checks only the configuration itself (no data or model is loaded); argparse itself
    exits with status 2 on malformed flags.
    """
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config")
    values = read_config_file(Path(config_file)) if config_file else {}
    flags = {k: v for k, v in args.items() if v is not None}
    dataset = flags.get("dataset", values.get("dataset", TrainConfig.dataset))
    preset = DATASET_PRESETS.get(dataset, {})
    given = values | flags
    recipe_name = given.get("recipe", TrainConfig.recipe)
    recipe = RECIPES.get(recipe_name, {}) | RECIPE_SCALED.get((dataset, recipe_name), {})  # unknown: validate() says so
    run_length = {k: v for k, v in (run_config or {}).items()
                  if k in LENGTH and type(v) in ((int,) if k != "converge_delta" else (int, float))}
    merged = {**preset, **recipe, **run_length, **given}
    # --epochs N alone means N epochs, and a cosine or onecycle schedule has a fixed length: the
    # preset's "on until converged" applies to its own step schedule and length only
    own_length = "epochs" in given or merged.get("schedule", "step") != "step"
    if preset.get("max_epochs") and own_length and "max_epochs" not in given:
        merged["max_epochs"] = 0
    cfg = dataclasses.replace(TrainConfig(), **merged)
    where = {name: f"{config_file}: {name}" for name in values} | {
        name: "--" + name.replace("_", "-") for name in flags
    }
    validate(cfg, where)
    return cfg


def _field_type(name: str) -> tuple[str, bool]:
    """(base type name, whether None is allowed) of a TrainConfig field."""
    declared = {f.name: f.type for f in fields(TrainConfig)}[name]
    return declared.removesuffix(" | None"), declared.endswith(" | None")


def read_config_file(path: Path) -> dict:
    """A YAML ``--config`` file: a mapping of known option names to values of the option's type."""
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UsageError(f"cannot read config {path}: {err}") from err
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise UsageError(f"{path}: a config file is a mapping of option: value, not a {type(values).__name__}")
    unknown = sorted(map(str, set(values) - {f.name for f in fields(TrainConfig)}))
    if unknown:
        raise UsageError(f"{path}: unknown option(s) {unknown}; see catviz-train --help (use '_' in names: lr_step)")
    for name, value in values.items():
        kind, optional = _field_type(name)
        if value is None and optional:
            continue
        if kind == "float" and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                values[name] = value = float(value)
            except ValueError:
                pass
        ok = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "str": isinstance(value, str),
        }[kind]
        if not ok:
            raise UsageError(f"{path}: {name} must be {'a' if kind != 'int' else 'an'} {kind}"
                             f"{' or null' if optional else ''}, got {value!r}")
        if kind == "float":
            values[name] = float(value)
    return values


def validate(cfg: TrainConfig, where: dict[str, str] | None = None) -> None:
    """Raise :class:`UsageError` for the first invalid value, named as the user gave it."""
    where = where or {}

    def check(ok: bool, name: str, expected: str) -> None:
        if not ok:
            label = where.get(name, "--" + name.replace("_", "-"))
            raise UsageError(f"{label} must be {expected}, got {getattr(cfg, name)!r}")

    for name, choices in CHOICES.items():
        value = getattr(cfg, name)
        check(value is None or value in choices, name, f"one of {', '.join(choices)}")
    check(cfg.model in models.list_models(), "model", f"one of {', '.join(models.list_models())}")
    if cfg.backbone is not None:
        check(timm.is_model(cfg.backbone), "backbone", "a timm model name (see timm.list_models())")
    for name in ("epochs", "batch_size", "lr_step"):
        check(getattr(cfg, name) >= 1, name, "an integer >= 1")
    check(cfg.max_epochs == 0 or cfg.max_epochs >= cfg.epochs, "max_epochs", f"0 (off) or >= --epochs ({cfg.epochs})")
    check(cfg.max_epochs == 0 or cfg.schedule == "step", "max_epochs",
          f"0 with --schedule {cfg.schedule} (its learning rate is laid out over exactly --epochs)")
    # 0 is the default (off); given, it is a mistake
    check(cfg.snapshot_every >= (1 if "snapshot_every" in where else 0), "snapshot_every", "an integer >= 1")
    check(cfg.snapshot_every <= 10_000, "snapshot_every", "an integer in [1, 10000]")
    try:
        snapshots.parse_epochs(cfg.snapshot_epochs)
    except ValueError as err:
        check(False, "snapshot_epochs", f"epochs >= 1 separated by commas ({err})")
    check(cfg.converge_window >= 2, "converge_window", "an integer >= 2")
    check(math.isfinite(cfg.converge_delta) and cfg.converge_delta > 0, "converge_delta", "a finite number > 0")
    for name in ("limit_images", "save_every", "workers", "threads", "seed", "cache_mib"):
        check(getattr(cfg, name) >= 0, name, "an integer >= 0")
    for name, (low, high) in RANGES.items():  # the upper bounds: a billion epochs is a typo, not a plan
        check(low <= getattr(cfg, name) <= high, name, f"an integer in [{low}, {high}]")
    check(cfg.threads <= max_workers(), "threads", f"at most {max_workers()} on this machine ({usable_cores()} cores)")
    check(cfg.workers <= max_workers(), "workers",
          f"at most {max_workers()} on this machine ({usable_cores()} cores; each worker is a process)")
    check(MIN_INPUT_SIZE <= cfg.img_size <= MAX_INPUT_SIZE, "img_size",
          f"in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}] (the models' total stride is {MIN_INPUT_SIZE})")
    # Upper bounds keep values that float32 parameters cannot hold (lr 1e300) from crashing the first step.
    for name in ("lr", "lr_gamma"):
        check(math.isfinite(getattr(cfg, name)) and 0 < getattr(cfg, name) <= MAX_HYPERPARAMETER, name, f"a number in (0, {MAX_HYPERPARAMETER:g}]")
    for name in ("weight_decay", "warmup_epochs"):
        check(math.isfinite(getattr(cfg, name)) and 0 <= getattr(cfg, name) <= MAX_HYPERPARAMETER, name, f"a number in [0, {MAX_HYPERPARAMETER:g}]")
    check(0 <= cfg.momentum < 1, "momentum", "in [0, 1)")
    check(cfg.seed <= MAX_SEED, "seed", f"at most {MAX_SEED} (2**63 - 1)")
    check(0 <= cfg.ema < 1, "ema", "in [0, 1) (0: off; e.g. 0.9997)")
    check(0 <= cfg.cutout <= 1, "cutout", "a probability in [0, 1]")
    check(cfg.dropout is None or 0 <= cfg.dropout < 1, "dropout", "in [0, 1)")
    if DATASETS[cfg.dataset].needs_root and cfg.data_root is None:
        raise UsageError(f"--data-root is required for --dataset {cfg.dataset}")
    try:
        models.resolve_device(cfg.device)
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"{where.get('device', '--device')} {cfg.device!r}: {err}") from err
    # A file the user named is checked even with --no-pretrained (which ignores it); the demo
    # preset's own trunk only when it is used.
    if cfg.pretrained_file is not None and (cfg.pretrained or "pretrained_file" in where):
        problem = weights_file_problem(Path(cfg.pretrained_file))
        if problem:
            raise UsageError(f"{where.get('pretrained_file', '--pretrained-file')} {cfg.pretrained_file}: {problem}")


def weights_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a timm weights file (header check only), or ``None``."""
    if not path.is_file():
        return "no such file"
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                return None if list(f.keys()) else "a safetensors file without any tensor"
        with open(path, "rb") as f:
            head = f.read(2)
    except (OSError, SafetensorError, ValueError) as err:
        return f"not a readable weights file ({err})"
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":  # torch.save's zip archive, or its legacy pickle
        return None
    return "not a weights file (neither .safetensors nor a torch.save archive)"
