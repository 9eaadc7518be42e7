"""Cost of complete CAMs by depth: ``python bench/cam_depth.py [--size 448] [--repeats 3] [--device D]``.

Both full-size models (untrained: the cost does not depend on the weights; ResNeXt50,
1024 FPN channels, 80 labels), one image at ``--size``². Times, each the median of
``--repeats`` runs interleaved with the others:

* ``forward``: one bare forward of the baseline and of CAT (``no_grad``), the reference;
* ``input, one label``: the map the app shows by default, the levels summed
  (``class_activation_maps(depth="input", labels=[0], split_levels=False, path_share=False)``)
  of both (target <= 3x the forward): one forward at the frozen point and one backward;
* ``input, one label, per level + path share``: what the app adds after the map (the path
  share chart; one backward per level and CAT's forward-mode pass), for the table;
* ``tokens, all labels``: ``class_activation_maps()`` of both, every label, its own
  forward included (target <= 1.2x);
* every other depth, one label (levels summed), for the table.

Writes bench/results/cam-depth-<device>.json. Say what else ran on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from catviz import models
from catviz.models.cam import class_activation_maps


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--note", default="", help="what else ran on the machine (stored in the JSON)")
    parser.add_argument("--depths", help="comma-separated depths below the tokens to time (default: every one of "
                        "CAT's); the targets need only input")
    args = parser.parse_args()
    device = models.resolve_device(args.device)
    torch.manual_seed(0)
    pair = {name: models.create_model(name, args.classes).eval().to(device) for name in ("baseline", "cat")}
    image = torch.randn(1, 3, args.size, args.size, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run_all(fn):
        def call():
            for model in pair.values():
                fn(model)
            sync()
        return call

    def forward(model):
        with torch.no_grad():
            model(image)

    cases = {"forward": run_all(forward),
             "tokens, all labels": run_all(lambda m: class_activation_maps(m, image))}
    for depth in args.depths.split(",") if args.depths else pair["cat"].spec.depths[1:]:
        cases[f"{depth}, one label"] = run_all(
            lambda m, d=depth: class_activation_maps(m, image, depth=d if d in m.spec.depths else "input", labels=[0],
                                                     split_levels=False, path_share=False))
    cases["input, one label, per level + path share"] = run_all(
        lambda m: class_activation_maps(m, image, depth="input", labels=[0]))
    for fn in cases.values():  # warm up (allocators, kernels)
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            times[name].append(_timed(fn))
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = {name: median[name] / median["forward"] for name in cases}
    print(f"device {device} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}), {args.size}², {args.classes} labels, "
          f"baseline + CAT, median of {args.repeats}:")
    print(f"  {'case':<42} {'seconds':>8} {'x forward':>10}")
    for name in cases:
        print(f"  {name:<42} {median[name]:>8.3f} {ratio[name]:>10.2f}")
    print("  (the baseline has no fpn/stages depth: its input-depth maps stand in on those rows)")
    targets = {"input, one label": 3.0, "tokens, all labels": 1.2}
    for name, limit in targets.items():
        print(f"  target {name}: <= {limit}x -> {'met' if ratio[name] <= limit else 'NOT met'} ({ratio[name]:.2f}x)")
    out = args.json or Path(__file__).parent / "results" / f"cam-depth-{device.type}.json"
    out.write_text(json.dumps({
        "device": str(device), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "size": args.size, "classes": args.classes, "repeats": args.repeats, "note": args.note,
        "seconds": median, "all_seconds": times, "x_forward": ratio, "targets": targets,
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
