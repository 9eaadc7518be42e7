"""Rebuild the bundled demo: ``python -m train_cli.demo_models --out assets`` (``make demo-models``).

Trains ``baseline_tiny`` and ``cat_tiny`` from scratch on the demo set with the demo
preset and seed 0 (the same as ``catviz-train --dataset demo --model M --seed 0``),
keeps each run's final weights (without resume state), and writes sample images:
demo validation scenes with their ground truth, plus two CC BY 2.0 photographs that
scikit-learn ships (the demo models only know the digits 0-9).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from models.checkpoint import load_checkpoint, save_checkpoint

from . import train
from .data import load_splits
from .data.demo import ensure_demo_set

ROLES = {"baseline": "baseline_tiny", "cat": "cat_tiny"}
SAMPLE_SCENES = 8


def write_samples(demo_root: Path, out: Path) -> None:
    samples = out / "samples"
    if samples.exists():
        shutil.rmtree(samples)
    samples.mkdir(parents=True)
    _, val = load_splits("demo", demo_root)
    truth = {}
    for i, sample in enumerate(val.samples[:SAMPLE_SCENES]):
        name = f"demo_{i:02d}.png"
        shutil.copy(sample.path, samples / name)
        truth[name] = [val.class_names[c] for c in np.flatnonzero(sample.target == 1)]
    (samples / "ground_truth.json").write_text(json.dumps(truth, indent=1))
    import sklearn.datasets

    photos = Path(sklearn.datasets.__file__).parent / "images"
    (samples / "photos").mkdir()
    for name in ("china.jpg", "flower.jpg"):
        shutil.copy(photos / name, samples / "photos" / name)
    shutil.copy(photos / "README.txt", samples / "photos" / "ATTRIBUTION.txt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("assets"), help="where the checkpoints and samples go")
    parser.add_argument("--runs", type=Path, default=Path("runs/demo-models"), help="training run folders")
    parser.add_argument("--data-root", type=Path, help="demo set folder (default ~/.cache/catviz)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers per run")
    args = parser.parse_args(argv)
    demo_root = ensure_demo_set(args.data_root)
    timings = {}
    for role, model in ROLES.items():
        start = time.perf_counter()
        run = args.runs / model
        code = train.main(["--dataset", "demo", "--data-root", str(demo_root), "--model", model, "--seed", "0",
                           "--workers", str(args.workers), "--out", str(run), "--overwrite"])
        if code:
            return code
        weights, meta = load_checkpoint(run / "last.safetensors")
        save_checkpoint(args.out / f"demo_{role}.safetensors", weights, meta)
        timings[role] = time.perf_counter() - start
        print(f"{role}: {model} val mAP {meta.metrics['mAP']:.2f} in {timings[role] / 60:.1f} min")
    write_samples(demo_root, args.out)
    print(f"demo models and samples written to {args.out} in {sum(timings.values()) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
