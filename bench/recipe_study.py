"""Does CAT's gain survive the modern recipe? ``python bench/recipe_study.py [--overwrite]``.

Reads the demo seed study under the paper's recipe (``bench/results/demo-seeds.json``,
written by ``bench/demo_seeds.py``) and under ``--recipe modern`` (``demo-seeds-modern.json``,
written by ``bench/demo_seeds.py --json bench/results/demo-seeds-modern.json --runs
runs/demo-seeds-modern --models baseline_tiny cat_tiny --train-args --recipe modern``: same
pretrained trunk, seeds, threads and instruction set), and writes
``bench/results/recipe-study.json``: one row per run (``model``, ``recipe``, ``seed``, final
``mAP``, ``CF1``, ``OF1``, ``size_mAP``, ``curve_mAP`` and, under EMA, ``curve_mAP_raw`` when
the run folder is still there) and the paired comparisons, printed as tables:

- per recipe, CAT − baseline paired by seed, overall and by object size (95 % t-interval);
- the recipe's effect on the gain: (CAT − baseline) modern − (CAT − baseline) paper, paired
  by seed;
- each model, modern − paper, paired by seed;
- for seed 0 only (the one seed whose paper-recipe checkpoints are kept: the shipped demo
  pair, ``assets/``), a paired bootstrap over the 600 val images of the same differences
  (``catviz.stats``: one draw of images for all four models), which adds the image-sampling
  variance the seed interval leaves out. ``--no-images`` skips it.

Size buckets and the demo set are those of ``bench/demo_seeds.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from demo_seeds import (
    RESULTS,
    SIZES,
    ResultsError,
    evaluate_checkpoint,
    read_results,
    save,
    size_targets,
    t_interval,
)

from catviz import stats
from catviz.models.checkpoint import CheckpointError
from catviz.train_cli.data import load_splits
from catviz.train_cli.data.demo import ensure_demo_set

MODELS = ("baseline_tiny", "cat_tiny")
RECIPES = ("paper", "modern")
HERE = Path(__file__).resolve().parent
MODERN = HERE / "results" / "demo-seeds-modern.json"
OUT = HERE / "results" / "recipe-study.json"
ASSETS = HERE.parent / "assets"
PAPER_SEED0 = {"baseline_tiny": ASSETS / "demo_baseline.safetensors", "cat_tiny": ASSETS / "demo_cat.safetensors"}


def raw_curve(run: Path) -> list[float] | None:
    """The raw (not averaged) weights' val mAP per epoch from a run's ``log.jsonl``, if it is there."""
    log = run / "log.jsonl"
    if not log.is_file():
        return None
    by_epoch = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int) and "mAP_raw" in record:
            by_epoch[record["epoch"]] = round(float(record["mAP_raw"]), 2)
    return [by_epoch[e] for e in sorted(by_epoch)] or None


def run_rows(studies: dict[str, dict], modern_runs: Path) -> list[dict]:
    rows = []
    for recipe, results in studies.items():
        for seed, runs in sorted(results["runs"].items(), key=lambda kv: int(kv[0])):
            for model in MODELS:
                if model not in runs:
                    continue
                r = runs[model]
                row = {"model": model, "recipe": recipe, "seed": int(seed),
                       **{k: r["final"][k] for k in ("mAP", "CF1", "OF1") if k in r["final"]},
                       "size_mAP": r["size_mAP"], "best_mAP": r["best_mAP"], "epochs": r.get("epochs"),
                       "curve_mAP": r.get("curve_mAP"), "wall_seconds": r.get("wall_seconds")}
                if recipe == "modern":
                    row["curve_mAP_raw"] = raw_curve(modern_runs / f"seed{seed}" / model)
                rows.append(row)
    return rows


def paired(rows: list[dict]) -> dict:
    """Seed-paired differences with 95 % t-intervals: CAT − baseline per recipe, its change
    between recipes, and each model's change between recipes."""
    by = {(r["recipe"], r["model"], r["seed"]): r for r in rows}
    seeds = sorted({s for (_, _, s) in by if all((rc, m, s) in by for rc in RECIPES for m in MODELS)})
    what = {"mAP": lambda r: r["mAP"]} | {s: (lambda r, s=s: r["size_mAP"][s]) for s in SIZES}

    def entry(diffs: list[float]) -> dict:
        mean, low, high = t_interval(diffs)
        return {"mean": mean, "ci95_t": [low, high], "per_seed": dict(zip(map(str, seeds), diffs, strict=True))}

    out: dict = {"seeds": seeds}
    if not seeds:
        return out
    for key, get in what.items():
        gain = {rc: [get(by[rc, "cat_tiny", s]) - get(by[rc, "baseline_tiny", s]) for s in seeds] for rc in RECIPES}
        out[key] = {f"cat_minus_baseline_{rc}": entry(gain[rc]) for rc in RECIPES}
        out[key]["gain_modern_minus_paper"] = entry([m - p for m, p in zip(gain["modern"], gain["paper"], strict=True)])
        for model in MODELS:
            out[key][f"{model}_modern_minus_paper"] = entry(
                [get(by["modern", model, s]) - get(by["paper", model, s]) for s in seeds])
    return out


def image_bootstrap(modern_runs: Path, resamples: int, seed: int) -> dict:
    """Seed 0's four models on the val images, differences with a paired image bootstrap."""
    checkpoints = {("paper", m): p for m, p in PAPER_SEED0.items()} | {
        ("modern", m): modern_runs / "seed0" / m / "last.safetensors" for m in MODELS}
    for (recipe, model), path in checkpoints.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the {recipe}-recipe {model} of seed 0 is not there")
    demo_root = ensure_demo_set(None)
    _, val = load_splits("demo", demo_root)
    targets = {"mAP": np.stack([s.target for s in val.samples]).astype(np.int8)} | size_targets(val, demo_root)
    scores = {key: evaluate_checkpoint(path, val)[0].numpy().astype(np.float64) for key, path in checkpoints.items()}
    counts = stats.bootstrap_counts(len(val.samples), resamples, seed)
    out: dict = {"images": len(val.samples), "resamples": resamples, "bootstrap_seed": seed}
    for bucket, t in targets.items():
        m = {key: stats.mean_ap_counts(s, t, counts)[1] for key, s in scores.items()}
        whole = {key: stats.mean_ap_counts(s, t, np.ones((1, len(s)), np.int32))[1][0] for key, s in scores.items()}
        gain = {rc: m[rc, "cat_tiny"] - m[rc, "baseline_tiny"] for rc in RECIPES}
        point = {rc: whole[rc, "cat_tiny"] - whole[rc, "baseline_tiny"] for rc in RECIPES}
        out[bucket] = {
            **{f"cat_minus_baseline_{rc}": {"delta": point[rc], "ci95": stats.interval(gain[rc])} for rc in RECIPES},
            "gain_modern_minus_paper": {"delta": point["modern"] - point["paper"],
                                        "ci95": stats.interval(gain["modern"] - gain["paper"])},
        }
    return out


def tables(study: dict) -> str:
    p = study["paired"]
    lines = [f"Seed-paired (seeds {', '.join(map(str, p['seeds']))}; 95 % t-interval):", "",
             "| | paper: CAT − baseline | modern: CAT − baseline | gain, modern − paper | baseline, modern − paper "
             "| CAT, modern − paper |", "| --- | --- | --- | --- | --- | --- |"]
    keys = ("cat_minus_baseline_paper", "cat_minus_baseline_modern", "gain_modern_minus_paper",
            "baseline_tiny_modern_minus_paper", "cat_tiny_modern_minus_paper")
    for what in ("mAP", *SIZES):
        cells = [f"{p[what][k]['mean']:+.1f} [{p[what][k]['ci95_t'][0]:+.1f}, {p[what][k]['ci95_t'][1]:+.1f}]"
                 for k in keys]
        lines.append(f"| {what if what == 'mAP' else what + ' digits'} | " + " | ".join(cells) + " |")
    if "seed0_images" in study:
        b = study["seed0_images"]
        lines += ["", f"Seed 0, paired bootstrap over the {b['images']} val images ({b['resamples']} resamples, "
                  f"seed {b['bootstrap_seed']}):", "",
                  "| | paper: CAT − baseline | modern: CAT − baseline | gain, modern − paper |", "| --- | --- | --- | --- |"]
        for what in ("mAP", *SIZES):
            cells = [f"{b[what][k]['delta']:+.1f} [{b[what][k]['ci95'][0]:+.1f}, {b[what][k]['ci95'][1]:+.1f}]"
                     for k in keys[:3]]
            lines.append(f"| {what if what == 'mAP' else what + ' digits'} | " + " | ".join(cells) + " |")
    means = {}
    for r in study["runs"]:
        means.setdefault((r["recipe"], r["model"]), []).append(r["mAP"])
    lines += ["", "| recipe | model | seeds | final mAP (mean ± sd) |", "| --- | --- | --- | --- |"]
    for (recipe, model), values in sorted(means.items()):
        sd = np.std(values, ddof=1) if len(values) > 1 else float("nan")
        lines.append(f"| {recipe} | {model} | {len(values)} | {np.mean(values):.1f} ± {sd:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", type=Path, default=RESULTS, help="paper-recipe study (default %(default)s)")
    parser.add_argument("--modern", type=Path, default=MODERN, help="modern-recipe study (default %(default)s)")
    parser.add_argument("--modern-runs", type=Path, default=Path("runs/demo-seeds-modern"),
                        help="the modern study's run folders: raw-weight curves and seed 0's checkpoints")
    parser.add_argument("--out", type=Path, default=OUT, help="results file (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--no-images", action="store_true", help="skip seed 0's image bootstrap")
    parser.add_argument("--bootstrap", type=int, default=stats.RESAMPLES, choices=range(stats.MIN_RESAMPLES,
                        stats.MAX_RESAMPLES + 1), metavar="N", help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--seed", type=int, default=stats.SEED, help="bootstrap seed (default %(default)s)")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    try:
        studies = {"paper": read_results(args.paper), "modern": read_results(args.modern)}
    except ResultsError as err:
        parser.error(str(err))
    rows = run_rows(studies, args.modern_runs)
    study = {"recipes": {rc: studies[rc].get("recipe", {}) for rc in RECIPES},
             "trunk": studies["paper"].get("trunk"), "size_edges_px": studies["paper"].get("size_edges_px"),
             "runs": rows}
    if studies["modern"].get("trunk", {}).get("sha256") != study["trunk"].get("sha256"):
        parser.error(f"{args.modern} and {args.paper} start from different pretrained trunks; not comparable")
    study["paired"] = paired(rows)
    if not study["paired"]["seeds"]:
        parser.error("no seed has both models under both recipes yet")
    if not args.no_images:
        try:
            study["seed0_images"] = image_bootstrap(args.modern_runs, args.bootstrap, args.seed)
        except (FileNotFoundError, CheckpointError) as err:
            print(f"recipe_study: seed 0's image bootstrap skipped: {err}", file=sys.stderr)
    study["new_runs_wall_seconds"] = sum(r["wall_seconds"] or 0 for r in rows if r["recipe"] == "modern")
    save(study, args.out)
    print(tables(study))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
