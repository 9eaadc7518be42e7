"""``catviz-eval``: score checkpoints with the field's metrics, in the paper's table layout."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

import models
from models.checkpoint import CheckpointError, load_checkpoint, read_meta

from . import compare
from .config import TrainConfig
from .data import DatasetError, load_splits
from .data.dataset import TransformConfig
from .distributed import DistInfo
from .train import evaluate, make_loader

COLUMNS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catviz-eval",
        description="Evaluate catviz checkpoints (mAP, CP, CR, CF1, OP, OR, OF1, per-class AP). "
        "Several checkpoints give several rows, like the paper's Table 3.",
    )
    parser.add_argument("checkpoints", nargs="+", help="catviz .safetensors checkpoints")
    parser.add_argument("--dataset", choices=["coco", "voc", "coco-format", "demo"],
                        help="dataset to score on (default: the one the first checkpoint was trained on)")
    parser.add_argument("--data-root", help="dataset folder (demo: where it is generated)")
    parser.add_argument("--keep-unannotated", action="store_true",
                        help="COCO: keep unannotated val images as all-negative (default: ML-GCN's convention)")
    parser.add_argument("--per-class", action=argparse.BooleanOptionalAction, default=None,
                        help="print per-class AP rows (default: on for VOC, as in Table 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="evaluation batch size")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    parser.add_argument("--limit-images", type=int, default=0, help="score only the first N images (0: all)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--faithfulness", action="store_true",
                        help="instead, measure how faithful the explanation maps are (deletion/insertion AUC, "
                        "ROAD, pointing game); see `catviz-eval --faithfulness --help`")
    compare.add_arguments(parser)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--faithfulness" in argv:  # a different job with its own options (train_cli/faithfulness.py)
        from . import faithfulness

        return faithfulness.main([a for a in argv if a != "--faithfulness"])
    parser = build_parser()
    args = parser.parse_args(argv)
    compare.check_arguments(parser, args)
    if args.compare:
        return compare.main(args)
    device = models.resolve_device(args.device)
    try:
        first = read_meta(args.checkpoints[0])
        dataset = args.dataset or first.dataset
        _, val = load_splits(dataset, args.data_root, args.keep_unannotated)
        if args.limit_images:
            val = type(val)(val.name, val.class_names, val.samples[: args.limit_images])
        rows = []
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
            _, _, metrics = evaluate(model, loader, device, cfg, DistInfo(), desc=Path(path).name)
            rows.append((f"{meta.model} ({Path(path).stem})", metrics))
    except (CheckpointError, DatasetError) as err:
        print(f"catviz-eval: {err}", file=sys.stderr)
        return 1
    print(format_table(rows))
    if args.per_class if args.per_class is not None else dataset == "voc":
        print()
        print(format_per_class(rows, val.class_names))
    excluded = rows[0][1]["excluded"]
    if excluded:
        print(f"\nexcluded from mAP (no positive image): {', '.join(val.class_names[i] for i in excluded)}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"dataset": dataset, "class_names": val.class_names,
             "results": [{"checkpoint": str(p), "name": n, **m} for p, (n, m) in zip(args.checkpoints, rows, strict=True)]},
            indent=2))
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
