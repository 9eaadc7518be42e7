"""Model cost benchmark: ``python bench/models.py [--size 448] [--device cpu] [--dtype fp32|bf16]``.

Prints a table and writes JSON (bench/results/models-<device>-<dtype>.json):
parameters, GFLOPs (torch's FLOP counter, inspection path so attention matmuls count),
median forward latency at batch 1 after warm-up for baseline, CAT, CAT w/o PMA and each
FPN output-conv choice; CAT/baseline latency ratio; achieved GFLOP/s as a fraction of
this machine's large-matmul GFLOP/s measured in the same run; and one CLF step
P4→P3 at batch 16, forward + backward, PMA vs MHA: time and the activation memory
saved for backward (plus CUDA peak memory on a GPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from catviz import models
from catviz.models.attention import AttentionBlock
from catviz.models.checkpoint import atomic_write_text
from catviz.train_cli.errors import int_range

VARIANTS = [
    ("baseline", {}),
    ("cat", {}),  # FPN 3x3 output convs: the faithful default
    ("cat", {"fpn_out_conv": "1x1"}),
    ("cat", {"fpn_out_conv": "none"}),
    ("cat_mha", {}),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, device, warmup: int = 2, runs: int = 5) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(device, dtype, n: int = 2048) -> float:
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = median_seconds(lambda: a @ b, device, warmup=2, runs=7)
    return 2 * n**3 / seconds / 1e9


def count_gflops(model, images) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(images, return_attention=True)
    return counter.get_total_flops() / 1e9


def clf_step(kind: str, size: int, batch: int, device, dtype, channels: int = 1024) -> dict:
    """One CLF block P4→P3: queries from P4's refined output, keys/values = P3 positions."""
    torch.manual_seed(0)
    block = AttentionBlock(channels, 8).to(device, dtype)
    upper = (size // 32) ** 2  # query tokens carried from P5 (MHA keeps them all)
    lower = (size // 8) ** 2
    query = torch.randn(batch, upper, channels, device=device, dtype=dtype, requires_grad=True)
    context = torch.randn(batch, lower, channels, device=device, dtype=dtype, requires_grad=True)
    saved = []

    def step():
        saved.clear()
        q = query.amax(1, keepdim=True) if kind == "pma" else query
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t):
            out, _ = block(q, context)
        out.float().square().mean().backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(step, device, warmup=1, runs=3)
    result = {"seconds": seconds, "saved_activation_MiB": sum(saved) / 2**20}
    if device.type == "cuda":
        result["cuda_peak_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int_range(32, 2048), default=448, help="input side, in [32, 2048]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--num-classes", type=int_range(1, 10_000), default=80, help="in [1, 10000]")
    parser.add_argument("--clf-batch", type=int_range(1, 1024), default=16, help="in [1, 1024]")
    parser.add_argument("--tiny", action="store_true", help="the *_tiny variants (smoke runs, e.g. bench/gpu_check.py --dry-run)")
    parser.add_argument("--json", type=Path, help="results file (default bench/results/models-<device>-<dtype>.json)")
    args = parser.parse_args()
    device = models.resolve_device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    peak = matmul_gflops(device, dtype, 256 if args.tiny else 2048)  # bf16 on a CPU: 2048³ takes minutes
    images = torch.randn(1, 3, args.size, args.size, device=device, dtype=dtype)
    rows = []
    for name, kwargs in VARIANTS:
        model = models.create_model(name + "_tiny" * args.tiny, args.num_classes, **kwargs).eval().to(device, dtype)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        gflops = count_gflops(model, images)
        with torch.no_grad():
            seconds = median_seconds(lambda model=model: model(images), device)
        label = name + (f" (FPN {kwargs['fpn_out_conv']})" if kwargs else (" (FPN 3x3)" if name != "baseline" else ""))
        rows.append({"model": label, "params_M": params, "GFLOPs": gflops, "latency_ms": seconds * 1000,
                     "GFLOP/s": gflops / seconds, "fraction_of_matmul": gflops / seconds / peak})
        del model
    baseline_ms = rows[0]["latency_ms"]
    for row in rows:
        row["vs_baseline"] = row["latency_ms"] / baseline_ms
    clf = {kind: clf_step(kind, args.size, args.clf_batch, device, dtype, 64 if args.tiny else 1024) for kind in ("pma", "mha")}

    print(f"machine: {machine}; device {device}, {args.dtype}, input {args.size}², batch 1")
    print(f"large matmul (2048³): {peak:.1f} GFLOP/s")
    print(f"{'model':<24}{'params M':>10}{'GFLOPs':>9}{'ms':>9}{'x base':>8}{'GFLOP/s':>9}{'of mm':>7}")
    for r in rows:
        print(f"{r['model']:<24}{r['params_M']:>10.1f}{r['GFLOPs']:>9.1f}{r['latency_ms']:>9.1f}"
              f"{r['vs_baseline']:>8.2f}{r['GFLOP/s']:>9.1f}{r['fraction_of_matmul']:>7.2f}")
    print(f"\nCLF step P4→P3, batch {args.clf_batch}, forward + backward:")
    for kind, r in clf.items():
        extra = f", CUDA peak {r['cuda_peak_MiB']:.0f} MiB" if "cuda_peak_MiB" in r else ""
        print(f"  {kind.upper()}: {r['seconds'] * 1000:.0f} ms, saved activations {r['saved_activation_MiB']:.0f} MiB{extra}")
    print(f"  MHA/PMA: time x{clf['mha']['seconds'] / clf['pma']['seconds']:.1f}, "
          f"memory x{clf['mha']['saved_activation_MiB'] / clf['pma']['saved_activation_MiB']:.1f}")
    out = args.json or Path(__file__).parent / "results" / f"models-{device.type}-{args.dtype}.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps({"machine": machine, "device": str(device), "dtype": args.dtype, "size": args.size,
                               "matmul_GFLOPs": peak, "models": rows, "clf_step": clf}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
