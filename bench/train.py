"""Training throughput: ``python bench/train.py [--steps 20] [--workers 2]``.

For baseline and CAT at the demo setting (tiny models, 128², batch 16) on this machine:
images/s of real training steps fed by the DataLoader from the demo set, next to a
bare forward/backward loop of the same model on synthetic tensors in the same run
(target: the real loop at >= 0.9 of the bare one, i.e. data loading is never the
bottleneck), the bare loop again in channels_last memory format (the ratio says whether
``--channels-last`` pays on this device: it does on CPUs with oneDNN, not only on GPUs), and
the data pipeline alone, images/s per worker. Writes
bench/results/train-<device>.json. With ``--size 448 --batch-size 16 --amp bf16
--models baseline cat`` on a GPU it measures the paper's setting.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from catviz import models
from catviz.models.checkpoint import atomic_write_text
from catviz.train_cli.config import TrainConfig
from catviz.train_cli.data import load_splits
from catviz.train_cli.distributed import DistInfo
from catviz.train_cli.errors import int_range
from catviz.train_cli.train import make_loader, transform_config


def step_fn(model, optimizer, device, amp, channels_last=False):
    def step(images, targets):
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits = model(images).logits
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def images_per_second(batches, step, device, warmup: int = 3) -> float:
    count, start = 0, None
    for i, (images, targets) in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, count = time.perf_counter(), 0
        step(images, targets)
        count += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["baseline_tiny", "cat_tiny"])
    parser.add_argument("--size", type=int_range(32, 1024), default=128, help="image side, in [32, 1024]")
    parser.add_argument("--batch-size", type=int_range(1, 1024), default=16, help="in [1, 1024]")
    parser.add_argument("--steps", type=int_range(1, 10_000), default=20, help="timed steps, in [1, 10000]")
    parser.add_argument("--workers", type=int_range(0, 64), default=2, help="in [0, 64]")
    parser.add_argument("--amp", choices=["none", "bf16"], default="none")
    parser.add_argument("--channels-last", action="store_true", help="channels_last model and inputs")
    parser.add_argument("--json", type=Path, help="results file (default bench/results/train-<device>-<size>px-w<workers>.json)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", help="demo set folder (default ~/.cache/catviz)")
    args = parser.parse_args()
    device = models.resolve_device(args.device)
    train_split, _ = load_splits("demo", args.data_root)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()}, {torch.get_num_threads()} threads"
    rows = []
    for name in args.models:
        torch.manual_seed(0)
        model = models.create_model(name, len(train_split.class_names)).to(device).train()
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        cfg = TrainConfig(img_size=args.size, batch_size=args.batch_size, workers=args.workers)
        loader = make_loader(train_split, transform_config(cfg, model), True, cfg, DistInfo())
        step = step_fn(model, optimizer, device, args.amp, args.channels_last)
        real_batches = (b for i, b in zip(range(args.steps + 3), loader, strict=False))
        real = images_per_second(real_batches, step, device)
        fake = [(torch.randn(args.batch_size, 3, args.size, args.size),
                 (torch.rand(args.batch_size, len(train_split.class_names)) < 0.25).float())] * (args.steps + 3)
        bare = images_per_second(iter(fake), step, device)
        other = copy.deepcopy(model).to(memory_format=torch.contiguous_format if args.channels_last else torch.channels_last)
        other_step = step_fn(other, torch.optim.SGD(other.parameters(), lr=1e-3, momentum=0.9), device, args.amp,
                             not args.channels_last)
        other_bare = images_per_second(iter(fake), other_step, device)
        nchw, cl = (other_bare, bare) if args.channels_last else (bare, other_bare)
        rows.append({"model": name, "train_img_s": real, "bare_img_s": bare, "ratio": real / bare,
                     "bare_nchw_img_s": nchw, "bare_channels_last_img_s": cl, "channels_last_speedup": cl / nchw})
    pipeline = {}
    for workers in sorted({0, args.workers}):
        cfg = TrainConfig(img_size=args.size, batch_size=args.batch_size, workers=workers)
        loader = make_loader(train_split, transform_config(cfg, model), True, cfg, DistInfo())
        start, count = time.perf_counter(), 0
        for i, (images, _) in enumerate(loader):
            count += images.shape[0]
            if i == args.steps:
                break
        pipeline[workers] = count / (time.perf_counter() - start)
    print(f"machine: {machine}; device {device}; {args.size}², batch {args.batch_size}, amp {args.amp}, "
          f"channels_last {args.channels_last}")
    print(f"{'model':<16}{'train img/s':>13}{'bare img/s':>12}{'ratio':>7}{'bare NCHW':>11}{'bare CL':>9}{'CL x':>6}")
    for r in rows:
        print(f"{r['model']:<16}{r['train_img_s']:>13.1f}{r['bare_img_s']:>12.1f}{r['ratio']:>7.2f}"
              f"{r['bare_nchw_img_s']:>11.1f}{r['bare_channels_last_img_s']:>9.1f}{r['channels_last_speedup']:>6.2f}")
    for workers, rate in pipeline.items():
        per = rate / max(workers, 1)
        print(f"data pipeline, {workers} workers: {rate:.0f} img/s ({per:.0f} per worker{' (main process)' if not workers else ''})")
    out = args.json or Path(__file__).parent / "results" / f"train-{device.type}-{args.size}px-w{args.workers}.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps({"machine": machine, "device": str(device), "size": args.size,
                               "batch_size": args.batch_size, "amp": args.amp, "channels_last": args.channels_last, "models": rows,
                               "pipeline_img_s": {str(k): v for k, v in pipeline.items()}}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
