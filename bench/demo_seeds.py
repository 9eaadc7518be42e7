"""The demo over several seeds: ``python bench/demo_seeds.py [--seeds 0 1 2 3 4] [--models ...]``.

Trains every model (baseline, CAT and the Table 3 ablations, ``*_tiny``) with the demo
preset (the paper's recipe scaled, from the pretrained glyph trunk) once per seed, and
scores each run's final epoch on the demo val split: mAP, CF1, OF1, per-class AP, the best
epoch's mAP, the mAP curve, and **AP by object size**: for each size bucket, an image counts
as a positive of a label when that label's digit in it has a side in the bucket; images
where the label appears only at another size are left out of that label's AP; images
without the label are its negatives. Buckets: thirds of the demo set's log-size range (16-80
px): small < 27 px <= medium < 47 px <= large.

Results go to ``bench/results/demo-seeds.json`` after every run; **a (seed, model) already
there is skipped**, so the study resumes where it was stopped (a half-trained run resumes
from its ``last.safetensors``), unless its run folder shows that the current recipe trains it
further (the demo trains on until converged: a run that had stopped at 16 epochs unconverged
resumes there and is scored again; a converged one is left as it is). The file records the pretrained trunk's sha256; runs from
another trunk are refused rather than mixed. ``--summary`` only prints the tables: per
model mean ± std over seeds (with the epochs trained and how much the mAP moved over the
last 5 epochs: the convergence check), the paired per-seed difference CAT - baseline with its 95 % t-interval
overall and by object size, each ablation minus the baseline, CAT minus each ablation (what
the missing part adds, overall and on small digits), and the median seed of
CAT - baseline (the pair to ship). ``--plot FILE`` draws the mAP curves. ``--jobs N`` trains N
runs side by side (default: one per core), each on one thread, as the shipped pair.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from catviz.models.checkpoint import CheckpointError, load_checkpoint, read_meta
from catviz.train_cli import train
from catviz.train_cli.config import (
    DEMO_CPU_ISA,
    DEMO_THREADS,
    DEMO_TRUNK,
    TrainConfig,
    resolve_config,
    usable_cores,
)
from catviz.train_cli.data import load_splits
from catviz.train_cli.data.dataset import TransformConfig
from catviz.train_cli.data.demo import MAX_SIZE, MIN_SIZE, ensure_demo_set
from catviz.train_cli.distributed import DistInfo
from catviz.train_cli.errors import UsageError, int_range
from catviz.train_cli.metrics import multilabel_metrics
from catviz.train_cli.schedule import tail_span
from catviz.train_cli.side_by_side import Job, isa_env, recorded_isa, run_jobs
from catviz.train_cli.state import unfinished

MODELS = ["baseline_tiny", "cat_tiny", "fpn_tiny", "cat_no_clf_tiny", "cat_no_lrd_tiny", "cat_mha_tiny"]
EDGES = (MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** (1 / 3), MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** (2 / 3))  # 27.4, 46.8
SIZES = ("small", "medium", "large")
RESULTS = Path(__file__).resolve().parent / "results" / "demo-seeds.json"


def size_targets(val, demo_root: Path) -> dict[str, np.ndarray]:
    """Per size bucket, (images, labels) targets: 1 in the bucket, -1 present at another size, 0 absent."""
    annotations = json.loads((demo_root / "annotations" / "val.json").read_text())
    names = {image["id"]: image["file_name"] for image in annotations["images"]}
    sides: dict[tuple[str, int], float] = {}
    for a in annotations["annotations"]:
        key = (names[a["image_id"]], a["category_id"] - 1)
        sides[key] = max(sides.get(key, 0.0), max(a["bbox"][2:]))
    out = {}
    for b, name in enumerate(SIZES):
        targets = np.zeros((len(val.samples), len(val.class_names)), np.int8)
        for i, sample in enumerate(val.samples):
            for c in np.flatnonzero(sample.target == 1):
                bucket = int(np.searchsorted(EDGES, sides[(sample.path.name, int(c))], side="right"))
                targets[i, c] = 1 if bucket == b else -1
        out[name] = targets
    return out


def evaluate_checkpoint(path: Path, val) -> tuple[torch.Tensor, dict]:
    """A checkpoint's probabilities on the val split and its metrics, on the CPU."""
    model, meta = load_checkpoint(path, torch.device("cpu"))
    transform = TransformConfig(img_size=meta.input_size, mean=meta.mean, std=meta.std)
    cfg = TrainConfig(batch_size=64, workers=0)
    loader = train.make_loader(val, transform, False, cfg, DistInfo())
    # No bar: the study's terminal shows one line per epoch and run; a bar would break into them.
    probabilities, _, metrics = train.evaluate(model, loader, torch.device("cpu"), cfg, DistInfo(), progress=False)
    return probabilities, metrics


def score(run: Path, val, by_size: dict[str, np.ndarray]) -> dict:
    """Final-epoch metrics of a finished run, with AP by object size and the run's curve."""
    probabilities, metrics = evaluate_checkpoint(run / "last.safetensors", val)
    by_epoch = {r["epoch"]: r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}
    curve = [by_epoch[epoch] for epoch in sorted(by_epoch)]  # a resumed epoch: its last record
    best = max(curve, key=lambda r: r["mAP"])
    return {
        "final": {k: metrics[k] for k in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")} | {"AP": metrics["AP"]},
        "best_mAP": best["mAP"], "best_epoch": best["epoch"], "epochs": len(curve),
        "curve_mAP": [round(r["mAP"], 2) for r in curve],
        "size_mAP": {name: multilabel_metrics(probabilities.numpy(), t)["mAP"] for name, t in by_size.items()},
        "train_seconds": sum(r["seconds"] for r in curve),
    }


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the two-sided t confidence interval of the mean."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def interval_text(values: list[float]) -> tuple[float, str]:
    """The mean and its 95 % t-interval as a table cell ("– (one seed)" when there is one value)."""
    mean, low, high = t_interval(values)
    return mean, f"[{low:+.1f}, {high:+.1f}]" if len(values) > 1 else "– (one seed)"


class ResultsError(ValueError):
    """A results file that is not a study's (hand-edited, truncated): the message says where."""


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_results(results, path: Path) -> dict:
    """``results`` as :func:`summary` and the study read it, or :class:`ResultsError` naming
    the file and the first entry that is not what the study writes."""
    def fail(where: str, what: str) -> ResultsError:
        return ResultsError(f"{path}: {where} {what}; not a results file of this study (restore it or pass another --json)")

    if not isinstance(results, dict) or not isinstance(results.get("runs", {}), dict):
        raise fail("the top level", "must be an object with a 'runs' object")
    results.setdefault("runs", {})
    if not isinstance(results.get("recipe", {}), dict):
        raise fail("'recipe'", "must be an object")
    for seed, rows in results["runs"].items():
        if not seed.isdigit() or not isinstance(rows, dict):
            raise fail(f"runs[{seed!r}]", "must be a seed number holding an object of runs")
        for model, row in rows.items():
            where = f"runs[{seed!r}][{model!r}]"
            if not isinstance(row, dict):
                raise fail(where, "must be an object")
            if not isinstance(row.get("final"), dict) or not _number(row["final"].get("mAP")):
                raise fail(f"{where}['final']['mAP']", "must be a number")
            for key in ("CF1", "OF1"):
                if key in row["final"] and not _number(row["final"][key]):
                    raise fail(f"{where}['final'][{key!r}]", "must be a number")
            if not _number(row.get("best_mAP")):
                raise fail(f"{where}['best_mAP']", "must be a number")
            sizes = row.get("size_mAP")
            if not isinstance(sizes, dict) or not all(_number(sizes.get(s)) for s in SIZES):
                raise fail(f"{where}['size_mAP']", f"must give a number for each of {', '.join(SIZES)}")
            if "curve_mAP" in row and (not isinstance(row["curve_mAP"], list) or not row["curve_mAP"]
                                       or not all(map(_number, row["curve_mAP"]))):
                raise fail(f"{where}['curve_mAP']", "must be a non-empty list of numbers")
            if "epochs" in row and (not isinstance(row["epochs"], int) or isinstance(row["epochs"], bool)):
                raise fail(f"{where}['epochs']", "must be an integer")
    return results


def read_results(path: Path) -> dict:
    """The study's results file ({"runs": {}} when there is none yet), checked (:func:`check_results`)."""
    if not path.exists():
        return {"runs": {}}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path}: cannot read it ({getattr(err, 'strerror', None) or err})") from err
    try:
        results = json.loads(text)
    except ValueError as err:
        raise ResultsError(f"{path}: not valid JSON ({err}); restore it or pass another --json") from err
    return check_results(results, path)


def summary(results: dict) -> str:
    runs = results["runs"]
    sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan  # noqa: E731
    ms = lambda v: f"{np.mean(v):.1f} ± {sd(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"  # noqa: E731
    window = results.get("recipe", {}).get("converge_window", 5)
    lines = [f"| model | seeds | final mAP | CF1 | OF1 | best-epoch mAP | small | medium | large | epochs (mean, range) "
             f"| last-{window}-epoch move (mean, max) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model in MODELS:
        rows = [r[model] for r in runs.values() if model in r]
        if not rows:
            continue
        final = [r["final"]["mAP"] for r in rows]
        f1 = [ms([r["final"][k] for r in rows]) if all(k in r["final"] for r in rows) else "–" for k in ("CF1", "OF1")]
        sizes = [ms([r["size_mAP"][s] for r in rows]) for s in SIZES]
        moves = [tail_span(r["curve_mAP"], window) for r in rows if "curve_mAP" in r]
        move = f"{np.mean(moves):.2f}, {max(moves):.2f}" if moves else "–"
        epochs = [r["epochs"] for r in rows if "epochs" in r]
        length = f"{np.mean(epochs):.1f}, {min(epochs)}-{max(epochs)}" if epochs else "–"
        lines.append(f"| {model} | {len(rows)} | {ms(final)} | {f1[0]} | {f1[1]} | {ms([r['best_mAP'] for r in rows])} | "
                     + " | ".join(sizes) + f" | {length} | {move} |")
    paired = [(seed, r["cat_tiny"], r["baseline_tiny"]) for seed, r in sorted(runs.items(), key=lambda kv: int(kv[0]))
              if "cat_tiny" in r and "baseline_tiny" in r]
    lines.append("")
    if paired:
        lines.append("| CAT − baseline (paired per seed) | n | mean | 95 % CI (t) | per seed |")
        lines.append("| --- | --- | --- | --- | --- |")
        for what, get in [("final mAP", lambda r: r["final"]["mAP"])] + [
                (f"{s} digits", lambda r, s=s: r["size_mAP"][s]) for s in SIZES]:
            diffs = [get(c) - get(b) for _, c, b in paired]
            mean, interval = interval_text(diffs)
            per_seed = ", ".join(f"{seed}: {d:+.1f}" for (seed, _, _), d in zip(paired, diffs, strict=True))
            lines.append(f"| {what} | {len(diffs)} | {mean:+.1f} | {interval} | {per_seed} |")
        lines += ["", "| model − baseline (paired, final mAP) | n | mean | 95 % CI (t) |", "| --- | --- | --- | --- |"]
        for model in MODELS[1:]:
            diffs = [r[model]["final"]["mAP"] - r["baseline_tiny"]["final"]["mAP"] for r in runs.values()
                     if model in r and "baseline_tiny" in r]
            if diffs:
                mean, interval = interval_text(diffs)
                lines.append(f"| {model} | {len(diffs)} | {mean:+.1f} | {interval} |")
        if any(model in r for r in runs.values() for model in MODELS[2:]):
            lines += ["", "| CAT − model (paired; what the missing part adds) | n | final mAP | 95 % CI (t) "
                      "| small digits | 95 % CI (t) |", "| --- | --- | --- | --- | --- | --- |"]
        for model in MODELS[2:]:
            both = [r for r in runs.values() if model in r and "cat_tiny" in r]
            if both:
                cells = []
                for get in (lambda r: r["final"]["mAP"], lambda r: r["size_mAP"]["small"]):
                    mean, interval = interval_text([get(r["cat_tiny"]) - get(r[model]) for r in both])
                    cells += [f"{mean:+.1f}", interval]
                lines.append(f"| {model} | {len(both)} | " + " | ".join(cells) + " |")
        diffs = [c["final"]["mAP"] - b["final"]["mAP"] for _, c, b in paired]
        median_seed = paired[int(np.argsort(diffs)[(len(diffs) - 1) // 2])][0]
        lines.append(f"\nmedian seed of CAT − baseline (final mAP): {median_seed}")
    return "\n".join(lines)


def trunk_identity(path: Path) -> dict:
    """The pretrained trunk every run starts from: its sha256 and the pretraining's record."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    return {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            **{k: meta[k] for k in ("backbone", "steps", "batch_size", "val_top1", "train_seconds") if k in meta}}


def plot_curves(results: dict, path: Path) -> None:
    """Val mAP per epoch of every model: the mean over seeds, and each seed faintly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for i, model in enumerate(MODELS):
        curves = [r[model]["curve_mAP"] for r in results["runs"].values() if "curve_mAP" in r.get(model, {})]
        if not curves:
            continue
        colour = f"C{i}"
        for curve in curves:  # each seed to where it converged, its last epoch marked
            ax.plot(range(1, len(curve) + 1), curve, color=colour, alpha=0.3, linewidth=0.8)
            ax.plot([len(curve)], [curve[-1]], "o", color=colour, alpha=0.5, markersize=3)
        shared = min(map(len, curves))  # the mean over every seed: the epochs all of them trained
        mean = np.mean([c[:shared] for c in curves], axis=0)
        ax.plot(range(1, shared + 1), mean, color=colour, linewidth=2, label=f"{model} (n={len(curves)})")
    recipe = results.get("recipe", {})
    step, last = recipe.get("lr_step"), max(recipe.get("epochs", 0), recipe.get("max_epochs", 0))
    top = ax.get_ylim()[1]
    for decay in range(step, last, step) if step else ():
        ax.axvline(decay + 0.5, color="grey", linestyle=":", linewidth=1)
        ax.text(decay + 0.6, top - 1, "lr ×0.1", color="grey", fontsize=8, va="top")
    if recipe.get("max_epochs"):
        ax.axvline(recipe["epochs"] + 0.5, color="grey", linestyle="--", linewidth=1)
        bottom = ax.get_ylim()[0]  # between the curves and the legend
        ax.text(recipe["epochs"] + 0.6, bottom + 0.55 * (top - bottom), "trained on\nuntil converged", color="grey",
                fontsize=8, va="top")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set(xlabel="epoch", ylabel="val mAP (%)",
           title="Demo: val mAP per epoch (thin: each seed, to where it converged; thick: mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def settings(config: dict, threads: int) -> tuple[bool, int]:
    """(channels_last, threads) of a run: with the instruction set, they set the order of float sums,
    so runs trained with other settings differ in the weights' last bits and are not mixed into one study."""
    return bool(config.get("channels_last")), threads


def train_all(tasks: list[tuple], args: argparse.Namespace, demo_root: Path,
              record: Callable[[tuple, float], None]) -> int:
    """Train the (seed, model, run, earlier) tasks, ``args.jobs`` at a time, each a ``catviz-train``
    process on ``DEMO_THREADS`` thread(s) (with several at once, each one's output goes to
    ``<run>.log``), and ``record`` each as it finishes. Exit status of the first failure, after
    the runs already started have ended; 0 if all finished."""
    by_name, jobs = {}, []
    for task in tasks:
        seed, model, run, _ = task
        resume = (run / "last.safetensors").is_file()
        name = f"seed {seed} {model}"
        by_name[name] = task
        jobs.append(Job(name, ["--dataset", "demo", "--data-root", str(demo_root), "--model", model, "--seed", str(seed),
                               "--workers", str(args.workers), "--out", str(run), *(["--resume"] if resume else []),
                               "--threads", str(DEMO_THREADS), *args.train_args],
                        run, run.parent / f"{model}.log" if args.jobs > 1 else None, resume, isa_env(DEMO_CPU_ISA)))
    if jobs and args.jobs > 1:
        print(f"{len(jobs)} run(s) to train, {args.jobs} at a time, {DEMO_THREADS} thread(s) each, "
              f"instruction set {recorded_isa(DEMO_CPU_ISA)}")
    return run_jobs(jobs, args.jobs, lambda job, seconds: record(by_name[job.name], seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int_range(0, 2**31 - 1), nargs="+", default=[0, 1, 2, 3, 4],
                        help="training seeds, each in [0, 2**31 - 1] (default 0 1 2 3 4)")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--json", type=Path, default=RESULTS, help="results file (default %(default)s)")
    parser.add_argument("--runs", type=Path, default=Path("runs/demo-seeds"), help="training run folders")
    parser.add_argument("--data-root", type=Path, help="demo set folder (default ~/.cache/catviz)")
    parser.add_argument("--workers", type=int_range(0, 64), default=0,
                        help="DataLoader workers per run, in [0, 64] (0: fastest on 2 cores; never changes the weights)")
    parser.add_argument("--jobs", type=int_range(1, 64), default=usable_cores(),
                        help="runs trained side by side, in [1, 64] (default %(default)s: one per core). Each run trains on "
                        "one thread, as the shipped pair (make demo-models), whatever --jobs is: the thread count "
                        "sets the order of float sums, so it changes the weights' last bits and is part of a "
                        "study's recipe. On a 2-core CPU two runs side by side train a pair 1.5-2x faster "
                        "than one after the other on two threads (README, the seed study)")
    parser.add_argument("--summary", action="store_true", help="only print the tables of the results so far")
    parser.add_argument("--plot", type=Path, help="also draw the mAP curves into this PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --plot file")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                        help="extra catviz-train flags for every run (e.g. --epochs 1 --limit-images 64 for a smoke run)")
    args = parser.parse_args(argv)
    # The runs are scored here: on their instruction set too (torch reads it at its first operation).
    os.environ.update(isa_env(DEMO_CPU_ISA))
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        recipe = resolve_config(["--dataset", "demo", *args.train_args])
    except UsageError as err:
        parser.error(f"--train-args: {err}")
    if args.plot and args.plot.exists() and not args.overwrite:
        parser.error(f"{args.plot} exists; pass --overwrite to replace it")
    try:
        results = read_results(args.json)
    except ResultsError as err:
        parser.error(str(err))
    if args.summary:
        print(summary(results))
        if args.plot:
            plot_curves(results, args.plot)
        return 0
    trunk = trunk_identity(Path(DEMO_TRUNK))
    if results["runs"] and results.get("trunk", {}).get("sha256") != trunk["sha256"]:
        parser.error(f"{args.json} holds runs from another pretrained trunk than {DEMO_TRUNK}; "
                     "move it aside (or pass another --json) to start a new study")
    ours, isa = (recipe.channels_last, DEMO_THREADS), recorded_isa(DEMO_CPU_ISA)
    trained = {(*settings(results.get("recipe", {}), row.get("threads", 0)), row.get("cpu_isa", "native"))
               for rows in results["runs"].values() for row in rows.values()}
    if trained - {(*ours, isa)}:
        parser.error(f"{args.json} holds runs trained with other settings (channels_last, threads, instruction set: "
                     f"{', '.join(map(str, sorted(trained)))}; these runs: {(*ours, isa)}), which change the weights' "
                     "last bits; move it aside (or pass another --json) to start a new study")
    results["trunk"] = trunk
    for seed in args.seeds:  # a run folder to resume must hold a run of these settings too
        for model in args.models:
            last = args.runs / f"seed{seed}" / model / "last.safetensors"
            try:
                saved = read_meta(last).config if last.is_file() else None
            except CheckpointError as err:
                parser.error(f"{last}: {err}")
            # (a checkpoint does not record the instruction set it was trained on: the study's file does)
            if saved is not None and settings(saved, saved.get("threads", 0)) != ours:
                parser.error(f"{last.parent} holds a run trained with other settings (channels_last, threads: "
                             f"{settings(saved, saved.get('threads', 0))}; these runs: {ours}); pass another --runs")
    demo_root = ensure_demo_set(args.data_root)
    _, val = load_splits("demo", demo_root)
    by_size = size_targets(val, demo_root)
    results.setdefault("size_edges_px", list(EDGES))
    tasks = []
    for seed in args.seeds:
        for model in args.models:
            run = args.runs / f"seed{seed}" / model
            last = run / "last.safetensors"
            earlier = results["runs"].get(str(seed), {}).get(model)
            reason = unfinished(last, recipe) if last.is_file() else "not trained"
            if earlier and (reason is None or not last.is_file()):
                print(f"seed {seed} {model}: done, skipped")
                continue
            if earlier:  # e.g. a recipe that now trains on until converged
                print(f"seed {seed} {model}: {reason}; resuming")
            tasks.append((seed, model, run, earlier))

    def record(task: tuple, seconds: float) -> None:
        """Score a finished run and save the results file at once (the study resumes from it)."""
        seed, model, run, earlier = task
        row = score(run, val, by_size)
        row["wall_seconds"] = seconds + (earlier or {}).get("wall_seconds", 0.0)
        row["jobs"], row["threads"], row["cpu_isa"] = args.jobs, DEMO_THREADS, isa
        results["recipe"] = load_checkpoint(run / "last.safetensors")[1].config
        results["runs"].setdefault(str(seed), {})[model] = row
        save(results, args.json)
        print(f"seed {seed} {model}: final mAP {row['final']['mAP']:.2f} (best {row['best_mAP']:.2f} at epoch "
              f"{row['best_epoch']}), sizes " + ", ".join(f"{k} {v:.1f}" for k, v in row["size_mAP"].items()))

    try:
        code = train_all(tasks, args, demo_root, record)
    except KeyboardInterrupt:
        print("demo_seeds: stopped; the finished runs are in the results file, the same command resumes the rest",
              file=sys.stderr)
        return 130
    if code:
        return code
    print(summary(results))
    if args.plot:
        plot_curves(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
