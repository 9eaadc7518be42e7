"""Rebuild the bundled demo: 'python -m catviz.train_cli.demo_models --out assets' ('make demo-models').

Recipe 'paper' (default) is the paper's recipe scaled to a CPU, the '--dataset demo'
preset: first the trunk is pretrained on the glyph set (train_cli.pretrain, written
to 'OUT/demo_trunk.safetensors'), then 'baseline_tiny' and 'cat_tiny' are both
fine-tuned from that same trunk ('--pretrained-file') with SGD, momentum, step decay and
ML-GCN's multi-scale crop, with seed 'DEMO_SEED': the median seed of CAT - baseline in
the seed study ('bench/demo_seeds.py', 'bench/results/demo-seeds.json'), so the shipped
pair is neither the best nor the worst case. The two train side by side ('--jobs 2'), each
a catviz-train process on one thread ('DEMO_THREADS', as in the study); '--jobs 1' trains
them one after the other, to the same weights. Pretraining and training are deterministic
for a seed and thread count, and every process runs on one instruction set ('DEMO_CPU_ISA',
AVX2: torch's, oneDNN's and MKL's kernels capped there), so this rebuilds the shipped files
bit for bit on x86 CPUs with AVX2 (checked on two kinds of AMD EPYC, AVX2 and AVX-512; Intel
CPUs not tested). Recipe 'scratch' is
the earlier demo recipe (from scratch, AdamW, cosine, 12 epochs, plain crop), kept for
comparison. Each run's final weights are kept (without resume state); sample images are
written too: demo validation scenes with their ground truth, plus two CC BY 2.0
photographs that scikit-learn ships (the demo models only know the digits 0-9).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from catviz.models.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)

from .config import DEMO_CPU_ISA, DEMO_PRETRAIN_THREADS, DEMO_THREADS, MAX_SEED, TrainConfig
from .data import load_splits
from .data.demo import ensure_demo_set
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ArgumentParser,
    Terminated,
    int_range,
    output_path_problem,
)
from .run_dir import RUN_FILES
from .side_by_side import Job, isa_env, run_jobs
from .state import LENGTH, unfinished

ROLES = {"baseline": "baseline_tiny", "cat": "cat_tiny"}
SAMPLE_SCENES = 8
TRUNK = "demo_trunk.safetensors"
# The median seed of CAT - baseline over seeds 0-4 (bench/results/demo-seeds.json); a test checks it.
DEMO_SEED = 0
# The earlier demo recipe, before the demo preset became the paper's recipe scaled.
SCRATCH = ["--no-pretrained", "--epochs", "12", "--optimizer", "adamw", "--lr", "2e-3", "--weight-decay", "0.05",
           "--schedule", "cosine", "--warmup-epochs", "1", "--crop", "plain", "--no-decay-bias-norm"]


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


def ship(run: Path, out: Path, role: str) -> CheckpointMeta:
    """Copy a finished run's final weights and metadata (no resume state) to ``out/demo_<role>.safetensors``."""
    model, meta = load_checkpoint(run / "last.safetensors")
    save_checkpoint(out / f"demo_{role}.safetensors", model, meta)
    print(f"{out / f'demo_{role}.safetensors'}: {meta.model} from {run}, val mAP {meta.metrics['mAP']:.2f}")
    return meta


def recipe_flags(recipe: str, trunk: Path | None) -> list[str]:
    """catviz-train flags on top of ``--dataset demo`` for a recipe."""
    return SCRATCH if recipe == "scratch" else ["--pretrained-file", str(trunk)]


def pretraining_job(trunk: Path, workers: int, env: dict[str, str], replace_flag: list[str]) -> Job:
    """``python -m catviz.train_cli.pretrain`` with its defaults (the shipped trunk's) on ``DEMO_PRETRAIN_THREADS``."""
    return Job("trunk", ["--out", str(trunk), "--workers", str(workers), "--threads", str(DEMO_PRETRAIN_THREADS),
                         *replace_flag], trunk.parent, env=env, module="catviz.train_cli.pretrain")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m catviz.train_cli.demo_models", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("assets"),
                        help="where the checkpoints and samples go (default %(default)s)")
    parser.add_argument("--runs", type=Path, default=Path("runs/demo-models"),
                        help="training run folders (default %(default)s)")
    parser.add_argument("--data-root", type=Path, help="demo set folder (default ~/.cache/catviz)")
    parser.add_argument("--workers", type=int_range(0, 64), default=0,
                        help="DataLoader workers per run, in [0, 64] (default 0: on a 2-core CPU a worker process slows the "
                        "two compute threads, ~9%% on cat_tiny; the count never changes the weights)")
    parser.add_argument("--jobs", type=int, choices=[1, 2], default=2,
                        help="train the pair side by side (2, default: 1.5-2x faster on 2 cores) or one after "
                        "the other (1); each model trains on one thread either way, so the weights are the same")
    parser.add_argument("--recipe", choices=["paper", "scratch"], default="paper",
                        help="paper: pretrained glyph trunk + the paper's recipe scaled (default); "
                        "scratch: the earlier from-scratch recipe")
    parser.add_argument("--trunk", type=Path, help="reuse this pretrained trunk instead of pretraining one")
    parser.add_argument("--seed", type=int_range(0, MAX_SEED), default=DEMO_SEED,
                        help="training seed of both models, in [0, 2**63 - 1] (default %(default)s: the shipped pair's, the seed study's median)")
    parser.add_argument("--from-runs", type=Path, metavar="DIR",
                        help="ship the pair of finished runs DIR/baseline_tiny and DIR/cat_tiny (e.g. one seed of "
                        "bench/demo_seeds.py) instead of training")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the checkpoints, trunk and samples already in --out (the shipped ones are in git) "
                        "and the runs already in --runs; without it both are left as they are and the command refuses")
    args = parser.parse_args(argv)
    for flag, folder in (("--out", args.out), ("--runs", args.runs)):  # names first: exists() fails on one too long
        problem = output_path_problem(folder, folder=True)
        if problem:
            parser.error(f"{flag} {str(folder)[:80]}: {problem}")
    outputs = [args.out / f"demo_{role}.safetensors" for role in ROLES] + [args.out / "samples"]
    if args.recipe == "paper" and args.trunk is None and not args.from_runs:
        outputs.append(args.out / TRUNK)
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not args.overwrite:
        parser.error(f"{', '.join(existing)} already exist; pass --overwrite to replace them "
                     "(make demo-models OVERWRITE=1), or choose another --out")
    if not args.from_runs:
        runs = [str(args.runs / model) for model in ROLES.values()
                if any((args.runs / model / name).exists() for name in RUN_FILES)]
        if args.recipe == "paper" and args.trunk is None and (args.runs / TRUNK).exists():
            runs.append(str(args.runs / TRUNK))
        if runs and not args.overwrite:
            parser.error(f"--runs: {', '.join(runs)} already hold finished or started work; pass --overwrite to "
                         "replace them (make demo-models OVERWRITE=1), or choose another --runs")
    replace_flag = ["--overwrite"] if args.overwrite else []
    if args.from_runs:
        missing = [str(args.from_runs / m / "last.safetensors") for m in ROLES.values()
                   if not (args.from_runs / m / "last.safetensors").is_file()]
        if missing:
            parser.error(f"--from-runs: no finished run: {', '.join(missing)}")
        for model in ROLES.values():
            last = args.from_runs / model / "last.safetensors"
            try:
                saved = read_meta(last).config
                reason = unfinished(last, replace(TrainConfig(), **{k: saved[k] for k in LENGTH if k in saved}))
            except (CheckpointError, TypeError) as err:
                parser.error(f"--from-runs: {last}: cannot tell whether the run finished ({err})")
            if reason:
                parser.error(f"--from-runs: {args.from_runs / model} {reason}; finish it with catviz-train --resume first")
    demo_root = ensure_demo_set(args.data_root)
    if args.from_runs:
        for role, model in ROLES.items():
            ship(args.from_runs / model, args.out, role)
        write_samples(demo_root, args.out)
        return 0
    timings = {}
    pinned = isa_env(DEMO_CPU_ISA)  # every process on one instruction set: the same bits on AVX2 and AVX-512 CPUs

    def trained(job: Job, seconds: float) -> None:
        timings[job.name] = seconds

    trunk, stage = args.trunk, "pretraining"
    runs = {model: args.runs / model for model in ROLES.values()}
    try:
        if args.recipe == "paper" and trunk is None:  # into the runs folder; shipped with the pair
            trunk = args.runs / TRUNK
            args.runs.mkdir(parents=True, exist_ok=True)
            code = run_jobs([pretraining_job(trunk, args.workers, pinned, replace_flag)], 1, trained)
            if code:
                return code
        jobs = [Job(model, ["--dataset", "demo", "--data-root", str(demo_root), "--model", model, "--seed", str(args.seed),
                            "--workers", str(args.workers), "--threads", str(DEMO_THREADS), "--out", str(run),
                            *replace_flag, *recipe_flags(args.recipe, trunk)],
                    run, run.parent / f"{model}.log" if args.jobs > 1 else None, env=pinned)
                for model, run in runs.items()]
        start, stage = time.perf_counter(), "training"
        code = run_jobs(jobs, args.jobs, trained, stop_on_failure=True)
    except KeyboardInterrupt as stop:
        unfinished_work = f"the trunk {trunk} was not written" if stage == "pretraining" else \
            f"the runs in {args.runs} are incomplete"
        print(f"{parser.prog}: {'terminated' if isinstance(stop, Terminated) else 'interrupted'} while {stage}; "
              f"nothing shipped ({unfinished_work})", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    if code:
        return code
    timings["pair"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    for role, model in ROLES.items():
        ship(runs[model], args.out, role)
    if args.recipe == "paper" and args.trunk is None:
        shutil.copyfile(trunk, args.out / TRUNK)
    write_samples(demo_root, args.out)
    total = timings.get("trunk", 0.0) + timings["pair"]
    print(f"demo models and samples ({args.recipe} recipe) written to {args.out} in {total / 60:.1f} min "
          f"({', '.join(f'{k} {v / 60:.1f}' for k, v in timings.items())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
