"""Scoring checkpoints with the field's metrics, in the paper's table layout: the plain
``catviz-eval`` job (the command itself, with ``--compare`` and ``--faithfulness``, is
:mod:`catviz.eval_cli`). Errors are raised, typed; the command turns them into exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import catviz.models as models  # the models layer (not the catviz package above)
from catviz.models.checkpoint import CheckpointError, atomic_write, load_checkpoint, read_meta

from .config import TrainConfig, default_workers
from .data import DATASETS, load_split
from .data.dataset import TransformConfig
from .distributed import DistInfo
from .errors import RunError, UsageError, check_output_path, int_range
from .paths import distinct_tail
from .train import evaluate, make_loader

#: The largest values of the numeric flags (past them: a usage error, exit 2).
MAX_BATCH, MAX_WORKERS, MAX_IMAGES = 4096, 64, 10**9

COLUMNS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
#: The metrics as train_cli.metrics defines them (ML-GCN's), in words for --help.
METRICS_HELP = (
    "metrics (ML-GCN's definitions): mAP = mean over labels of the non-interpolated AP, x100; at probability "
    "0.5, per label Ng true, Np predicted, Nc correct positives: CP = mean Nc/Np, CR = mean Nc/Ng (per class), "
    "OP = sum Nc / sum Np, OR = sum Nc / sum Ng (overall), CF1 and OF1 their harmonic means; --json also "
    "holds the top-3 variant (a label counts only among an image's 3 highest scores). A label with no "
    "positive image is left out of mAP and CR."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring job's options (shared by ``--compare``, which adds its own)."""
    parser.add_argument("checkpoints", nargs="+", help="catviz .safetensors checkpoints")
    parser.add_argument("--dataset", choices=DATASETS,
                        help="dataset to score on (default: the one the first checkpoint was trained on)")
    parser.add_argument("--data-root", help="dataset folder (demo: where it is generated)")
    parser.add_argument("--keep-unannotated", action="store_true",
                        help="COCO: keep unannotated val images as all-negative (default: ML-GCN's convention)")
    parser.add_argument("--per-class", action=argparse.BooleanOptionalAction, default=None,
                        help="print per-class AP rows (default: on for VOC, as in Table 1)")
    parser.add_argument("--batch-size", metavar="N", type=int_range(1, MAX_BATCH), default=32,
                        help=f"evaluation batch size, in [1, {MAX_BATCH}] (default 32)")
    parser.add_argument("--workers", metavar="N", type=int_range(0, MAX_WORKERS), default=default_workers(),
                        help=f"DataLoader worker processes, in [0, {MAX_WORKERS}] (default: min(4, CPU cores - 1))")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    parser.add_argument("--limit-images", metavar="N", type=int_range(0, MAX_IMAGES), default=0,
                        help=f"score only the first N images, N in [0, {MAX_IMAGES}] (0: all)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def format_table(rows: list[tuple[str, dict]]) -> str:
    width = max(12, *(len(name) for name, _ in rows))
    lines = [f"{'Method':<{width}}" + "".join(f"{c:>8}" for c in COLUMNS)]
    for name, m in rows:
        lines.append(f"{name:<{width}}" + "".join(f"{m[c]:8.1f}" for c in COLUMNS))
    return "\n".join(lines)


def format_per_class(rows: list[tuple[str, dict]], class_names: list[str]) -> str:
    width = max(12, *(len(name) for name, _ in rows))
    short = [n[:6] for n in class_names]
    lines = [f"{'Method':<{width}}" + "".join(f"{n:>7}" for n in short) + f"{'mAP':>7}"]
    for name, m in rows:
        lines.append(f"{name:<{width}}" + "".join(f"{ap:7.1f}" for ap in m["AP"]) + f"{m['mAP']:7.1f}")
    return "\n".join(lines)


def row_names(models: list[str], paths: list[str | Path]) -> list[str]:
    """``model (file stem)``; rows that would read the same get more of their path, up to the
    shortest suffix that tells them apart (``cat_tiny (a/best)``, ``cat_tiny (b/best)``)."""
    stems = [Path(path).resolve().with_suffix("") for path in paths]
    return [f"{model} ({distinct_tail(stem, [s for m, s in zip(models, stems, strict=True) if m == model])})"
            for model, stem in zip(models, stems, strict=True)]


def quoted(names: list[str]) -> str:
    """Label names quoted, so a label named "8" does not read as a count."""
    return ", ".join(f'"{name}"' for name in names)


def scored_line(split: str, total: int, scored: int, limit: int) -> str:
    """What was scored: split, images scored, unreadable ones, the --limit-images cut."""
    line = f"scored on the {split} split: {scored} of {total} images"
    if limit:
        line += f" (the first {total}, --limit-images {limit})"
    if scored < total:
        unreadable = total - scored
        line += f"; {unreadable} unreadable image{'s' * (unreadable != 1)} skipped (see the warnings above)"
    return line


def check_arguments(args: argparse.Namespace) -> None:
    """:class:`UsageError` for a value argparse's types let through, before anything is loaded."""
    for name, low in (("batch_size", 1), ("workers", 0), ("limit_images", 0)):
        if getattr(args, name) < low:
            raise UsageError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {getattr(args, name)}")
    try:
        models.resolve_device(args.device)
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"--device {args.device!r}: {err}") from err
    if args.json:
        check_output_path(args.json, "--json")
        if Path(args.json).exists() and not args.overwrite:
            raise UsageError(f"--json: {args.json} exists; pass --overwrite to replace it")


def run(args: argparse.Namespace) -> int:
    """Score every checkpoint on the split and print the table (exit status 0); errors raise."""
    device = models.resolve_device(args.device)
    first, *_ = [read_meta(path) for path in args.checkpoints]  # every file checked before the data
    dataset = args.dataset or first.dataset
    val = load_split(dataset, args.data_root, "val", args.keep_unannotated)  # the train split is not read
    if args.limit_images:
        val = type(val)(val.name, val.class_names, val.samples[: args.limit_images])
    model_names, results = [], []
    for path in args.checkpoints:
        model, meta = load_checkpoint(path, device)
        if meta.class_names != val.class_names:
            raise CheckpointError(
                f"{path}: trained on {meta.num_classes} labels ({', '.join(meta.class_names[:4])} ...), "
                f"which differ from {dataset}'s {len(val.class_names)}"
            )
        transform = TransformConfig(img_size=meta.input_size, mean=meta.mean, std=meta.std)
        cfg = TrainConfig(batch_size=args.batch_size, workers=args.workers)
        loader = make_loader(val, transform, False, cfg, DistInfo())
        scores, _, metrics = evaluate(model, loader, device, cfg, DistInfo(), desc=Path(path).name)
        model_names.append(meta.model)
        results.append(metrics)
    rows = list(zip(row_names(model_names, args.checkpoints), results, strict=True))
    total, scored = len(val.samples), len(scores)
    print(format_table(rows))
    print(scored_line(val.name, total, scored, args.limit_images))
    if args.per_class if args.per_class is not None else dataset == "voc":
        print()
        print(format_per_class(rows, val.class_names))
    excluded = rows[0][1]["excluded"]
    if excluded:
        print(f"\nexcluded from mAP (no positive image): {quoted([val.class_names[i] for i in excluded])}")
    if args.json:
        text = json.dumps(
                {"dataset": dataset, "split": val.name, "images": total, "scored": scored,
                 "unreadable": total - scored, "limit_images": args.limit_images or None,
                 "class_names": val.class_names,
                 "results": [{"checkpoint": str(p), "name": n, **m}
                             for p, (n, m) in zip(args.checkpoints, rows, strict=True)]},
                indent=2) + "\n"
        try:  # a temporary name beside it, then a rename: a full disk leaves the previous file whole
            atomic_write(Path(args.json), lambda tmp: Path(tmp).write_text(text))
        except OSError as err:
            raise RunError(f"cannot write {args.json}: {err.strerror or err}") from err
    return 0
