"""Pretrain the demo's trunk on the glyph set: 'python -m catviz.train_cli.pretrain --out FILE'.

The paper's models start from an ImageNet-pretrained backbone; the demo's start from a
'test_resnet' (timm's 0.4 M-parameter ResNet, the '*_tiny' variants' backbone) trained
here to classify single glyphs (train_cli.data.glyphs: letters and symbols, no
digits). The output is the timm *classifier's* state dict in safetensors, the same kind of
file as a downloaded ImageNet checkpoint, so the demo models load it the way a user loads
ResNeXt weights: 'catviz-train --pretrained-file FILE'. Every sample is new (generated
from its index), so there are steps, not epochs; the run is deterministic for a seed, a
thread count and an instruction set ('make demo-models' fixes both: train_cli.demo_models).
Exit status: 0 written; 2 usage error, before any work; 130 interrupted (Ctrl-C), 143
terminated (SIGTERM), nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from catviz.models.checkpoint import atomic_write

from .config import MAX_HYPERPARAMETER, MAX_SEED
from .data.glyphs import GLYPHS, IMAGE_SIZE, GlyphDataset
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ArgumentParser,
    Terminated,
    output_path_problem,
    sigterm_as_interrupt,
)
from .schedule import lr_factor

DEFAULT_BACKBONE = "test_resnet"


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m catviz.train_cli.pretrain", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help="timm model name (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate, cosine decay (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default: %(default)s)")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--val-images", type=int, default=2000, help="held-out glyphs for the accuracy (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and the initialisation (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU compute threads (default: torch's, one per core); the "
                        "count sets the order of float sums, so it is part of what makes the weights repeat")
    parser.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                        help="replace --out if it exists")
    return parser


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    for images, labels in loader:
        correct += int((model(images).argmax(1) == labels).sum())
        total += len(labels)
    return 100.0 * correct / max(total, 1)


def pretrain(args: argparse.Namespace) -> dict:
    """Train; return the weights' metadata (also stored in the file)."""
    torch.manual_seed(args.seed)
    model = timm.create_model(args.backbone, num_classes=len(GLYPHS))
    data_cfg = timm.data.resolve_data_config({}, model=model)
    mean, std = data_cfg["mean"], data_cfg["std"]
    train = GlyphDataset(args.steps * args.batch_size, "train", args.seed, mean, std, args.size)
    val = GlyphDataset(args.val_images, "val", args.seed, mean, std, args.size)
    loader = DataLoader(train, batch_size=args.batch_size, num_workers=args.workers, drop_last=True)
    val_loader = DataLoader(val, batch_size=256, num_workers=args.workers)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step / args.steps, 1, "cosine", 1, 0.1, 0.05))
    start = time.perf_counter()
    curve = []
    model.train()
    bar = tqdm(loader, desc="pretraining on glyphs", total=args.steps)
    for step, (images, labels) in enumerate(bar, 1):
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % 100 == 0:
            curve.append((step, round(loss.item(), 4)))
    seconds = time.perf_counter() - start
    top1 = accuracy(model, val_loader)
    meta = {
        "format": "timm classifier state dict", "backbone": args.backbone, "task": "glyphs",
        "classes": "".join(GLYPHS), "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay, "image_size": args.size, "seed": args.seed,
        "val_top1": round(top1, 2), "train_seconds": round(seconds, 1), "loss_curve": curve,
    }
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(args.out, lambda tmp: save_file(state, tmp, metadata={k: json.dumps(v) for k, v in meta.items()}))
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.val_images < 1 or args.size < 32:
        parser.error("--steps, --batch-size and --val-images must be >= 1 and --size >= 32")
    if not (math.isfinite(args.lr) and 0 < args.lr <= MAX_HYPERPARAMETER):
        parser.error(f"--lr must be in (0, {MAX_HYPERPARAMETER:g}], got {args.lr}")
    if not (math.isfinite(args.weight_decay) and 0 <= args.weight_decay <= MAX_HYPERPARAMETER):
        parser.error(f"--weight-decay must be in [0, {MAX_HYPERPARAMETER:g}], got {args.weight_decay}")
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if not timm.is_model(args.backbone):
        parser.error(f"unknown timm model {args.backbone!r}")
    problem = output_path_problem(args.out)  # first: a name too long makes even exists() fail
    if problem:
        parser.error(f"--out {str(args.out)[:80]}: {problem}")
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it, or choose another --out")
    if not args.out.parent.is_dir():
        parser.error(f"--out: folder {args.out.parent} does not exist")
    threads = torch.get_num_threads()
    try:
        with sigterm_as_interrupt():
            if args.threads:
                torch.set_num_threads(args.threads)
            meta = pretrain(args)
    except KeyboardInterrupt as stop:  # the weights are written only at the end: nothing half-written is left
        how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(f"{parser.prog}: {how}; {args.out} not written", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    finally:
        torch.set_num_threads(threads)
    print(f"wrote {args.out}: {meta['backbone']} on {len(GLYPHS)} glyph classes, {meta['steps']} steps, "
          f"val top-1 {meta['val_top1']:.1f} %, {meta['train_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
