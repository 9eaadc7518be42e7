"""Every CUDA path in one run: ``python bench/gpu_check.py`` (``make gpu-check``), < 8 min on one GPU.

Steps, each a separate process with its own time limit:

1. ``bench/models.py`` at 448², fp32, then 2. bf16 (latency, FLOPs, CLF memory);
3. ``bench/train.py --amp bf16 --channels-last`` with the full-size baseline and CAT;
4. one demo epoch: ``catviz-train --dataset demo --device cuda --amp bf16`` into a temp folder;
5. the app offscreen with ``--device cuda`` (``bench/app.py``: results painted, timings);
6. ``torchrun --nproc-per-node 1`` on NCCL: DDP training steps of ``cat_tiny``, an all-reduce.

Prints one table (step, status, seconds, key figure) and writes JSON
(``bench/results/gpu-check-cuda.json``; the steps' own JSON next to it). Without a GPU
(or with ``--dry-run``) it says so and runs the same steps on the CPU at tiny sizes,
in seconds, writing into a temp folder only; CI runs that (tests/bench/test_gpu_check.py).
The exit status is 1 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from catviz.models.checkpoint import atomic_write_text
from catviz.train_cli.errors import int_range

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
BUDGET_S = 480  # the whole check on one GPU
HANG = 300  # dry run: a per-step limit against hangs, not a speed target (CI machines are slow and shared)


@dataclass
class Step:
    name: str
    command: list[str]
    timeout: float
    summary: object  # stdout -> key figure (raises when the step's output is wrong)
    status: str = "not run"
    seconds: float = 0.0
    key: str = ""
    output_tail: str = ""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def models_summary(path: Path):
    def summary(stdout: str) -> str:
        r = _read_json(path)
        rows = {row["model"].split(" ")[0] + (" 1x1" if "1x1" in row["model"] else ""): row for row in r["models"]}
        clf = r["clf_step"]
        return (f"baseline {rows['baseline']['latency_ms']:.1f} ms, CAT {rows['cat']['latency_ms']:.1f} ms "
                f"(x{rows['cat']['vs_baseline']:.2f}, {rows['cat']['fraction_of_matmul']:.2f} of matmul); "
                f"CLF MHA/PMA memory x{clf['mha']['saved_activation_MiB'] / clf['pma']['saved_activation_MiB']:.1f}")
    return summary


def train_summary(path: Path):
    def summary(stdout: str) -> str:
        rows = _read_json(path)["models"]
        return ", ".join(f"{r['model']} {r['train_img_s']:.3g} img/s ({r['ratio']:.2f} of bare)" for r in rows)
    return summary


def demo_epoch_summary(run: Path):
    def summary(stdout: str) -> str:
        record = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
        if not (run / "last.safetensors").is_file():
            raise RuntimeError(f"no checkpoint in {run}")
        return f"epoch 1: mAP {record['mAP']:.1f}, {record['images_per_s']:.3g} img/s, loss {record['train_loss']:.3f}"
    return summary


def app_summary(path: Path):
    def summary(stdout: str) -> str:
        r = _read_json(path)
        return (f"{r['images']} images painted in {r['app_ms']:.0f} ms (median; bare forward of both "
                f"{r['bare_forward_both_ms']:.1f} ms, x{r['app_vs_bare']:.2f}); all-label CAMs x{r['cams_vs_forward']:.2f} of a forward")
    return summary


def ddp_summary(stdout: str) -> str:
    r = json.loads(stdout.strip().splitlines()[-1])
    if not r["all_reduce_ok"]:
        raise RuntimeError(f"all_reduce gave {r['all_reduce']}, expected {r['world_size']}")
    return (f"{r['backend']}, world {r['world_size']}: {r['steps']} DDP steps of cat_tiny at "
            f"{r['steps_per_s']:.1f} steps/s, loss {r['first_loss']:.3f} → {r['last_loss']:.3f}, all_reduce ok")


def plan(device: str, dry: bool, out: Path, tmp: Path) -> list[Step]:
    """The steps; ``dry`` shrinks every size so the whole plan takes seconds on a CPU."""
    py = sys.executable
    kind = "cpu" if dry else "cuda"
    size, clf_batch = ("64", "2") if dry else ("448", "16")
    tiny = ["--tiny", "--num-classes", "10"] if dry else []
    steps = []
    for dtype in ("fp32", "bf16"):
        path = out / f"models-{kind}-{dtype}.json"
        steps.append(Step(f"models {dtype} {size}²", [py, str(BENCH / "models.py"), "--device", device, "--dtype", dtype,
                                                         "--size", size, "--clf-batch", clf_batch, *tiny, "--json", str(path)],
                          HANG if dry else 150, models_summary(path)))
    path = out / f"train-{kind}-bf16-channels-last.json"
    train_models = ["baseline_tiny", "cat_tiny"] if dry else ["baseline", "cat"]
    steps.append(Step(f"train bf16 channels_last {size}²",
                      [py, str(BENCH / "train.py"), "--device", device, "--models", *train_models, "--size", size,
                       "--batch-size", "4" if dry else "16", "--steps", "2" if dry else "20", "--workers", "0" if dry else "4",
                       "--amp", "bf16", "--channels-last", "--json", str(path)],
                      HANG if dry else 120, train_summary(path)))
    run = tmp / "demo-epoch"
    steps.append(Step("demo epoch bf16", [py, "-m", "catviz.train_cli.train", "--dataset", "demo",
                                          "--device", device, "--amp", "bf16", "--epochs", "1", "--out", str(run),
                                          "--workers", "0" if dry else "4", *(["--limit-images", "32", "--batch-size", "8"] if dry else [])],
                      HANG if dry else 90, demo_epoch_summary(run)))
    path = out / f"app-{kind}.json"
    steps.append(Step("app offscreen", [py, str(BENCH / "app.py"), "--device", device, "--images", "2" if dry else "6",
                                        "--json", str(path)], HANG if dry else 60, app_summary(path)))
    torchrun = [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    steps.append(Step("torchrun " + ("gloo (dry)" if dry else "nccl"),
                      [*torchrun, str(Path(__file__).resolve()), "--ddp-worker", "--device", device,
                       "--size", "64" if dry else "128", "--ddp-steps", "3" if dry else "20"],
                      HANG if dry else 60, ddp_summary))
    return steps


def run_step(step: Step, env: dict) -> None:
    start = time.perf_counter()
    try:
        done = subprocess.run(step.command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=step.timeout)
    except subprocess.TimeoutExpired as err:
        step.seconds, step.status = time.perf_counter() - start, f"TIMEOUT ({step.timeout:.0f} s)"
        step.output_tail = (err.stdout or b"")[-2000:].decode(errors="replace")
        return
    step.seconds = time.perf_counter() - start
    step.output_tail = (done.stdout + done.stderr)[-2000:]
    if done.returncode:
        step.status = f"FAILED (exit {done.returncode})"
        return
    try:
        step.key = step.summary(done.stdout)
        step.status = "ok"
    except (OSError, ValueError, KeyError, IndexError, RuntimeError) as err:
        step.status = f"FAILED ({type(err).__name__}: {err})"


def print_table(steps: list[Step], header: str) -> None:
    width = max(len(s.name) for s in steps)
    print(header)
    print(f"{'step':<{width}}  {'status':<10}  {'seconds':>7}  key figure")
    for s in steps:
        print(f"{s.name:<{width}}  {s.status if s.status == 'ok' else s.status[:60]:<10}  {s.seconds:>7.1f}  {s.key}")
    for s in steps:
        if s.status != "ok":
            print(f"\n--- {s.name}: {s.status}; last output:\n{s.output_tail}")


def ddp_worker(args: argparse.Namespace) -> int:
    """One torchrun process: DDP steps of cat_tiny on random data, then an all-reduce."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from catviz import models

    device = models.resolve_device(args.device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    torch.manual_seed(0)
    model = models.create_model("cat_tiny", 10).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(rank)
    images = torch.randn(8, 3, args.size, args.size, generator=generator).to(device)
    targets = (torch.rand(8, 10, generator=generator) < 0.3).float().to(device)
    losses = []
    start = time.perf_counter()
    for _ in range(args.ddp_steps):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = ddp(images).logits
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    ones = torch.ones(1, device=device)
    dist.all_reduce(ones)
    dist.barrier()
    if rank == 0:
        print(json.dumps({"backend": backend, "world_size": world, "steps": args.ddp_steps,
                          "steps_per_s": args.ddp_steps / seconds, "first_loss": losses[0], "last_loss": losses[-1],
                          "all_reduce": ones.item(), "all_reduce_ok": ones.item() == world}))
    dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU even when a GPU is present")
    parser.add_argument("--device", default="cuda", help="CUDA device for the real run (default: cuda)")
    parser.add_argument("--json", type=Path, help="summary file (default bench/results/gpu-check-cuda.json; "
                                                  "dry run: none, only the printed table)")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-steps", type=int_range(1, 10_000), default=20, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int_range(32, 1024), default=128, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args)

    import torch

    has_gpu = torch.cuda.is_available()
    dry = args.dry_run or not has_gpu
    if not has_gpu:
        print("gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "dry run of every step on the CPU at tiny sizes instead.")
    tmp = Path(tempfile.mkdtemp(prefix="catviz-gpu-check-"))
    out = tmp if dry else RESULTS
    device = "cpu" if dry else args.device
    card = "CPU (dry run)" if dry else torch.cuda.get_device_name(torch.device(device))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run must not touch a GPU even if there is one
    steps = plan(device, dry, out, tmp)
    total = time.perf_counter()
    try:
        for step in steps:
            print(f"gpu-check: {step.name} ...", flush=True)
            run_step(step, env)
    finally:
        elapsed = time.perf_counter() - total
        budget = "" if dry else f" (budget {BUDGET_S} s: {'met' if elapsed <= BUDGET_S else 'EXCEEDED'})"
        print_table(steps, f"\n{card}, torch {torch.__version__}: {len(steps)} steps in {elapsed:.0f} s{budget}")
        summary = {"device": card, "dry_run": dry, "torch": torch.__version__, "total_seconds": elapsed,
                   "steps": [{k: v for k, v in asdict(s).items() if k != "summary"} for s in steps]}
        print(json.dumps({s.name: {"status": s.status, "seconds": round(s.seconds, 1), "key": s.key} for s in steps}))
        path = args.json or (None if dry else RESULTS / "gpu-check-cuda.json")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(summary, indent=2))
            print(f"wrote {path}")
        shutil.rmtree(tmp, ignore_errors=True)  # the demo epoch's run and, in a dry run, the per-step JSON
    return 0 if all(s.status == "ok" for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
