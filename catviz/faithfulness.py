"""``catviz-eval --faithfulness``: how faithful each explanation method is, per model.

For every image with ground truth and every label present in it, each method's map of
that label is scored with :mod:`models.faithfulness` (deletion and insertion AUC, ROAD,
and where the dataset has boxes, the pointing game and the share of positive map mass
in the label's boxes). The table gives means over the (image, label) pairs; a second
table gives each method's paired difference from the complete CAM at the input pixels
(the same pairs), with a 95 % interval from a bootstrap over images (every pair of a
drawn image goes with it). ``--json`` keeps every pair's values as well.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from catviz import models
from catviz.models.attribution import black_baseline
from catviz.models.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    atomic_write,
    load_checkpoint,
    read_meta,
)
from catviz.models.faithfulness import (
    DEFAULT_STEPS,
    GRADCAM_ROAD_PERCENTILES,
    auc,
    box_area_share,
    box_mass_share,
    perturbation_curves,
    pointing_game,
    road_scores,
)
from catviz.models.preprocess import load_image, preprocess
from catviz.train_cli.data import BOX_COLUMNS, DATASETS, load_split
from catviz.train_cli.errors import (
    ArgumentParser,
    RunError,
    UsageError,
    check_output_path,
    int_range,
)

from .explain import MapRequest, compute_map
from .methods import CAM, DEFAULT_DEPTH, DEPTH_TITLES, METHODS, depth_title, method_by_key
from .stats import RESAMPLES, bootstrap_counts, interval, weighted_mean_counts

#: The largest values the numeric flags take (a value past them is a usage error, exit 2).
MAX_STEPS = 1000  # --steps, --ig-steps: one model call per step and pair
MAX_IMAGES = 1_000_000  # --limit-images, --scorecam-limit
MAX_PERCENTILES = 9  # --road-percentiles: one ROAD pass each

METRICS = ("deletion", "insertion", "road", "road_gradcam", "pointing", "box_mass", "chance")
HEADERS = {"deletion": "deletion AUC ↓", "insertion": "insertion AUC ↑", "road": "ROAD ↑",
           "road_gradcam": "ROAD 10-90 ↑", "pointing": "pointing ↑", "box_mass": "mass in box ↑",
           "chance": "(chance)"}  # fmt: skip
#: The metrics a paired difference is reported for (chance is the boxes', the same for every map).
PAIRED = tuple(m for m in METRICS if m != "chance")
#: The row every other is compared with: the complete CAM at the default depth (the input pixels).
REFERENCE = "cam"


def method_keys() -> dict[str, str]:
    """``--methods`` key → the name the table shows, for every registered map method."""
    return {m.key: m.table_name for m in METHODS.values()}


def row_name(row: str) -> str:
    """The table's name of a row key: a method key, or ``cam@<depth>`` (one row per depth)."""
    key, _, depth = row.partition("@")
    name = method_keys()[key]
    if not depth and key == METHODS[CAM].key:
        depth = DEFAULT_DEPTH
    return f"{name} ({depth_title(depth)})" if depth else name


def default_methods() -> list[str]:
    """The keys scored when ``--methods`` is not given."""
    return [m.key for m in METHODS.values() if m.scored_by_default]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="catviz-eval --faithfulness",
        description=(
            "Measure how faithful explanation maps are to the model they explain. For every "
            "image with ground truth and each of its labels, every method's map is scored by "
            "deletion and insertion AUC (RISE protocol: pixels removed/inserted most salient "
            "first in --steps steps, the label's sigmoid probability after each, area by the "
            "trapezoid rule; deletion fills 0 in normalised space, i.e. the dataset-mean colour; "
            "insertion starts from a Gaussian blur, kernel 11, sigma 5), by grad-cam's "
            "ROADCombined score, and, where the dataset has boxes, by the pointing game and the "
            "share of positive map mass inside the label's boxes (chance: the boxes' area share). "
            "Methods: " + ", ".join(f"{k} ({v})" for k, v in method_keys().items()) + ". The grad-cam "
            "methods use the finest level (baseline S5, CAT P3); IG and Occlusion use the black "
            "image as reference; all explain the label's logit."
        ),
    )
    parser.add_argument("--faithfulness", action="store_true",
                        help="this job: score the explanation maps (the flag that chose these options)")
    parser.add_argument("checkpoints", nargs="*",
                        help="catviz .safetensors checkpoints (default: the bundled demo baseline and CAT)")
    parser.add_argument("--dataset", choices=DATASETS,
                        help="dataset whose val split is used (default: the first checkpoint's)")
    parser.add_argument("--data-root", help="dataset folder (demo: where it is generated)")
    parser.add_argument("--limit-images", "--limit", dest="limit", metavar="N", type=int_range(0, MAX_IMAGES), default=100,
                        help=f"the first N val images that have a label, N in [0, {MAX_IMAGES}] (default 100; 0: all). On a "
                        "2-core CPU every method at the defaults takes about 40 s per image and model for the demo "
                        "pair (the default 100 images: over 2 h); try --limit-images 6 --road-percentiles 50 "
                        "(about 3 min) first")
    parser.add_argument("--methods", default=",".join(default_methods()),
                        help=f"comma-separated subset of {','.join(method_keys())} (default: "
                        f"{','.join(default_methods())})")
    parser.add_argument("--depths", default=DEFAULT_DEPTH,
                        help=f"the complete CAM's depths, comma-separated, each a method row ({', '.join(DEPTH_TITLES)}; "
                        f"default {DEFAULT_DEPTH}). Below the tokens each label costs about one backward pass (the "
                        "levels summed); a depth a model lacks (the baseline has tokens, s3, input) leaves its row empty")
    parser.add_argument("--scorecam-limit", metavar="N", type=int_range(0, MAX_IMAGES), default=0,
                        help=f"ScoreCAM on the first N of the images only, N in [0, {MAX_IMAGES}] (default 0: all)")
    parser.add_argument("--steps", metavar="N", type=int_range(1, MAX_STEPS), default=DEFAULT_STEPS,
                        help=f"deletion/insertion steps, in [1, {MAX_STEPS}] (default {DEFAULT_STEPS})")
    parser.add_argument("--ig-steps", metavar="N", type=int_range(1, MAX_STEPS), default=32,
                        help=f"Integrated Gradients path points, in [1, {MAX_STEPS}] (default 32)")
    parser.add_argument("--road-percentiles", default="20,50,80",
                        help=f"ROAD percentiles, comma-separated, each an integer in [1, 99], at most {MAX_PERCENTILES} "
                        "(default 20,50,80): the ROAD column")
    parser.add_argument("--road-gradcam", action="store_true",
                        help="also the column ROAD 10-90: ROAD at pytorch-grad-cam's default percentiles "
                        f"({','.join(map(str, GRADCAM_ROAD_PERCENTILES))}); each percentile is imputed once for both "
                        "columns, but nine cost about three times the default three")
    parser.add_argument("--seed", type=int_range(0, 2**63 - 1), default=0,
                        help="seed of ROAD's imputation noise and of the bootstrap, in [0, 2**63 - 1] (default 0)")
    parser.add_argument("--bootstrap", metavar="N", type=int_range(100, 100_000), default=RESAMPLES,
                        help=f"bootstrap resamples (over images) of the paired differences, in [100, 100000] "
                        f"(default {RESAMPLES})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    return parser


def check_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every flag checked and resolved before any work starts (:class:`UsageError`)."""
    args.methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    keys = method_keys()
    unknown = [m for m in args.methods if m not in keys]
    if unknown or not args.methods:
        raise UsageError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(keys)}")
    depths = list(dict.fromkeys(d.strip().lower() for d in args.depths.split(",") if d.strip()))
    if not depths or any(d not in DEPTH_TITLES for d in depths):
        raise UsageError(f"--depths: {args.depths!r}; choose from {', '.join(DEPTH_TITLES)}")
    args.depths = depths
    cam = METHODS[CAM].key
    rows = [m if d == DEFAULT_DEPTH else f"{m}@{d}" for m in (cam,) for d in depths]  # "cam": at the default depth
    args.methods = [row for m in args.methods for row in (rows if m == cam else [m])]
    try:
        args.road_percentiles = tuple(int(p) for p in args.road_percentiles.split(","))
    except ValueError as err:
        raise UsageError(f"--road-percentiles: {args.road_percentiles!r} is not a comma-separated list of integers") from err
    if not all(0 < p < 100 for p in args.road_percentiles):
        raise UsageError("--road-percentiles: each must lie strictly between 0 and 100")
    if not 1 <= len(args.road_percentiles) <= MAX_PERCENTILES:
        raise UsageError(f"--road-percentiles: give 1 to {MAX_PERCENTILES} percentiles, not {len(args.road_percentiles)}")
    try:
        args.device = models.resolve_device(args.device)
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"--device: {err}") from err
    if args.json:  # the name first: exists() raises on a name too long
        check_output_path(args.json, "--json")
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise UsageError(f"--json: {args.json} exists; pass --overwrite to replace it")
    if not args.checkpoints:  # the bundled demo pair (package data, as the app finds it)
        assets = Path(str(resources.files("catviz.assets")))
        args.checkpoints = [str(assets / "demo_baseline.safetensors"), str(assets / "demo_cat.safetensors")]
    return args


@dataclass
class Explainer:
    """One model, its metadata and the settings its maps are made with."""

    model: torch.nn.Module
    meta: CheckpointMeta
    ig_steps: int

    def maps(self, image: torch.Tensor, labels: list[int], methods: list[str]) -> dict[str, list[np.ndarray]]:
        """Per method key, one (H, W) map per label, at the input's resolution: each method at
        its default level (the complete CAM summed over levels, a layer method the finest
        level, as the app's "combined"); a label-independent method is computed once."""
        reference = black_baseline(self.meta.mean, self.meta.std).to(image.device)
        out: dict[str, list[np.ndarray]] = {}
        for row in methods:
            key, _, depth = row.partition("@")  # cam@<depth>: the complete CAM at that depth ("cam": the default)
            if depth and depth not in self.model.spec.depths:
                continue
            method = method_by_key(key)
            request = MapRequest(reference, n_steps=self.ig_steps, depth=depth or None)
            if method.label_independent:  # one map serves every label
                out[row] = [compute_map(method.name, self.model, image, labels[0], None, request)] * len(labels)
            else:
                out[row] = [compute_map(method.name, self.model, image, label, None, request) for label in labels]
        return out


def score(model, image, label: int, saliency: np.ndarray, boxes: np.ndarray | None, args, key: str) -> dict[str, float]:
    """Every metric of one map. ``key`` names the (image, label, method): ROAD's imputation
    noise is seeded from it, so a method's scores do not depend on which others ran."""
    curves = perturbation_curves(model, image, label, saliency, args.steps)
    torch.manual_seed(zlib.crc32(f"{args.seed}/{key}".encode()))
    wanted = tuple(args.road_percentiles) + (GRADCAM_ROAD_PERCENTILES if getattr(args, "road_gradcam", False) else ())
    road = road_scores(model, image, label, saliency, tuple(sorted(set(wanted))))  # each percentile imputed once
    row = {"deletion": auc(curves["deletion"]), "insertion": auc(curves["insertion"]),
           "road": float(np.mean([road[p] for p in args.road_percentiles]))}  # fmt: skip
    if getattr(args, "road_gradcam", False):
        row["road_gradcam"] = float(np.mean([road[p] for p in GRADCAM_ROAD_PERCENTILES]))
    row |= {f"road@{p}": value for p, value in road.items()}
    if boxes is not None:
        row["pointing"] = float(pointing_game(saliency, boxes))
        row["box_mass"] = box_mass_share(saliency, boxes)
        row["chance"] = box_area_share(saliency.shape, boxes)
    return row


def evaluate_model(path: str, args, split, samples, device) -> dict[str, dict[str, list[float]]]:
    """Per method, per metric: the values over (image, label) pairs, in the order of
    :func:`pairs_of` (NaN where a metric does not apply to a pair)."""
    model, meta = load_checkpoint(path, device)
    model.eval()
    if meta.class_names != split.class_names:
        raise CheckpointError(
            f"{path}: trained on {meta.num_classes} labels ({', '.join(meta.class_names[:4])} ...), "
            f"which differ from the dataset's {len(split.class_names)}"
        )
    explainer = Explainer(model, meta, args.ig_steps)
    lacking = [depth for row in args.methods if (depth := row.partition("@")[2]) and depth not in model.spec.depths]
    if lacking:  # said before the work, the table then shows those rows empty
        print(f"{Path(path).name}: {meta.model} has no depth {', '.join(lacking)}; it has "
              f"{', '.join(model.spec.depths)}: its row{'s' if len(lacking) > 1 else ''} at "
              f"{', '.join(lacking)} stay{'' if len(lacking) > 1 else 's'} empty")
    values: dict[str, dict[str, list[float]]] = {m: {} for m in args.methods}
    done = 0
    for index, sample in enumerate(tqdm(samples, desc=Path(path).stem, leave=False)):
        raw = load_image(sample.path)
        image = preprocess(raw, meta.input_size, meta.mean, meta.std).to(device)
        labels = np.flatnonzero(sample.target == 1).tolist()
        methods = [m for m in args.methods if m != "scorecam" or not args.scorecam_limit or index < args.scorecam_limit]
        maps = explainer.maps(image, labels, methods)
        scale = np.array([meta.input_size / raw.shape[1], meta.input_size / raw.shape[0]] * 2)
        for i, label in enumerate(labels):
            corners = sample.boxes[sample.boxes[:, BOX_COLUMNS.index("label")] == label][:, CORNERS] * scale
            label_boxes = corners if len(corners) else None
            for method, per_label in maps.items():
                key = f"{sample.path.name}/{label}/{method}"
                for metric, value in score(model, image, label, per_label[i], label_boxes, args, key).items():
                    column = values[method].setdefault(metric, [])
                    column.extend([float("nan")] * (done - len(column)))  # a pair it did not apply to
                    column.append(value)
            done += 1
    for columns in values.values():
        for column in columns.values():
            column.extend([float("nan")] * (done - len(column)))
    return values


def pairs_of(samples) -> list[tuple[int, int]]:
    """The (image index, label) pairs scored, in order: each image's present labels."""
    return [(i, int(label)) for i, sample in enumerate(samples) for label in np.flatnonzero(sample.target == 1)]


#: The box columns (train_cli.data.BOX_COLUMNS) of a box's corners: x0, y0, x1, y1.
CORNERS = [BOX_COLUMNS.index(c) for c in ("x0", "y0", "x1", "y1")]


def paired_difference(values: list[float], reference: list[float], images: list[int], resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, float | int | None]:
    """Mean of ``values - reference`` over the pairs where both are finite, with the 95 %
    percentile interval of a bootstrap over images (``images[k]``: pair k's image; an image
    drawn brings all its pairs, so pairs of one image are not counted as independent)."""
    diff = np.asarray(values, np.float64) - np.asarray(reference, np.float64)
    keep = np.isfinite(diff)
    if not keep.any():
        return {"mean": None, "low": None, "high": None, "n": 0, "images": 0}
    ids, image = np.unique(np.asarray(images)[keep], return_inverse=True)
    sums = np.bincount(image, weights=diff[keep], minlength=len(ids))
    numbers = np.bincount(image, minlength=len(ids))
    low, high = interval(weighted_mean_counts(sums, numbers, bootstrap_counts(len(ids), resamples, seed)))
    return {"mean": float(diff[keep].mean()), "low": low, "high": high, "n": int(keep.sum()), "images": len(ids)}


def summarise(values: list[float]) -> dict[str, float | int]:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": None, "sem": None, "n": 0}
    return {"mean": float(v.mean()), "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0, "n": len(v)}


def format_table(results: list[dict]) -> str:
    columns = [m for m in METRICS if any(r.get(m, {}).get("n") for r in results)]
    names = {r["method"]: row_name(r["method"]) for r in results}
    width = max(len(f"{r['model']} / {names[r['method']]}") for r in results) + 2
    lines = [f"{'model / method':<{width}}{'pairs':>6}" + "".join(f"{HEADERS[c]:>16}" for c in columns)]
    for r in results:
        name = f"{r['model']} / {names[r['method']]}"
        cells = "".join(f"{r[c]['mean']:>16.3f}" if r.get(c, {}).get("n") else f"{'-':>16}" for c in columns)
        lines.append(f"{name:<{width}}{r['deletion']['n']:>6}" + cells)
    return "\n".join(lines)


def format_paired(results: list[dict]) -> str:
    """The paired differences from the reference row, mean [95 % interval], or "" without one."""
    rows = [r for r in results if r.get("paired")]
    if not rows:
        return ""
    columns = [m for m in PAIRED if any(r["paired"].get(m, {}).get("n") for r in rows)]
    names = {r["method"]: row_name(r["method"]) for r in rows}
    width = max(len(f"{r['model']} / {names[r['method']]}") for r in rows) + 2
    lines = [f"paired difference from {row_name(REFERENCE)}, mean [95 % bootstrap interval over images]; "
             "deletion: lower is better, the others: higher",
             f"{'model / method':<{width}}" + "".join(f"{HEADERS[c].rstrip(' ↑↓'):>26}" for c in columns)]
    for r in rows:
        cells = ""
        for c in columns:
            d = r["paired"].get(c, {})
            cells += f"{d['mean']:>+9.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if d.get("n") else f"{'-':>26}"
        lines.append(f"{r['model'] + ' / ' + names[r['method']]:<{width}}" + cells)
    return "\n".join(lines)


def left_out_line(results: list[dict]) -> str:
    """Which metrics were left out or scored on fewer pairs, and why (boxes are optional:
    the pointing game and the mass in the box need them), or ``""``."""
    pairs = max((r["deletion"]["n"] for r in results), default=0)
    boxed = max((r.get("pointing", {}).get("n", 0) for r in results), default=0)
    if not pairs or boxed == pairs:
        return ""
    if not boxed:
        return "left out: pointing game and mass in box (the dataset has no boxes for these labels)"
    return f"pointing game and mass in box: scored on the {boxed} of {pairs} pairs whose label has a box"


def run(args: argparse.Namespace) -> int:
    """Score every method's maps for each checkpoint, print the table (exit status 0); errors raise."""
    device = args.device
    metas = [read_meta(path) for path in args.checkpoints]  # every checkpoint checked before the dataset is read
    dataset = args.dataset or metas[0].dataset
    if not dataset:
        raise UsageError(f"{args.checkpoints[0]} does not say which dataset it was trained on; pass --dataset")
    val = load_split(dataset, args.data_root, "val")
    samples = [s for s in val.samples if (s.target == 1).any()][: args.limit or None]
    pairs = pairs_of(samples)
    images = [i for i, _ in pairs]
    results = []
    for path in args.checkpoints:
        per_method = evaluate_model(path, args, val, samples, device)
        model_name = f"{read_meta(path).model} ({Path(path).stem})"
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        reference = per_method.get(REFERENCE)
        for method, metrics in per_method.items():
            row = {"checkpoint": str(path), "sha256": digest, "model": model_name, "method": method,
                   **{k: summarise(metrics.get(k, [])) for k in METRICS}}  # fmt: skip
            if reference is not None and method != REFERENCE:
                row["paired"] = {m: paired_difference(metrics[m], reference[m], images, args.bootstrap, args.seed)
                                 for m in PAIRED if m in metrics and m in reference}
            row["per_pair"] = {k: [None if not np.isfinite(x) else round(float(x), 6) for x in v]
                               for k, v in metrics.items()}
            results.append(row)
    print(format_table(results))
    left_out = left_out_line(results)
    if left_out:
        print(left_out)
    paired = format_paired(results)
    if paired:
        print(paired)
    if args.json:
        settings = {k: (list(v) if isinstance(v, tuple) else str(v) if k == "device" else v)
                    for k, v in vars(args).items() if k not in ("json", "faithfulness")}  # fmt: skip
        report = {
            "dataset": dataset, "images": len(samples), "settings": settings, "methods": method_keys() | {r["method"]: row_name(r["method"]) for r in results},
            "protocol": {"deletion_fill": "0 in normalised space (dataset-mean colour)",
                         "insertion_start": "Gaussian blur, kernel 11, sigma 5",
                         "probability": "sigmoid of the label's logit",
                         "road": "pytorch-grad-cam ROADCombined per percentile, noisy linear imputation; road: mean "
                                 "over settings.road_percentiles, road_gradcam: over 10..90 (grad-cam's default)",
                         "ig_reference": "black image",
                         "occlusion": "window: input side // 8, stride: window // 2, black fill (deletion's fill "
                                      "is the dataset-mean colour: they differ)",
                         "paired": f"method - {REFERENCE} on the same pairs; 95 % percentile interval of "
                                   "settings.bootstrap resamples of images (seed settings.seed)"},
            "pairs": [[samples[i].path.name, label] for i, label in pairs],
            "left_out": left_out or None, "results": results}  # fmt: skip
        try:
            atomic_write(Path(args.json), lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
        except OSError as err:
            raise RunError(f"cannot write {args.json}: {err.strerror or err}") from err
    return 0
