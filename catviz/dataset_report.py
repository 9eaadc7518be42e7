"""Where CAT beats the baseline over a dataset: summary, per class, by object size, per image.

numpy only (the Qt view imports it; the torch side produces its inputs). Definitions:

- **Summary**: ``train_cli.metrics.multilabel_metrics`` of each model's probabilities
  over the scored images (decoded, and scored by both models) — what ``catviz-eval``
  prints for the same checkpoints and data — plus the mAP of each classifier level alone.
- **Object size**: every positive (image, label) gets the area of its largest instance
  (largest non-crowd box; a crowd region only when the label has nothing else; VOC's
  difficult objects are not counted). Areas are in pixels of the **evaluated input**:
  the box scaled as the image is by the test transform (resized to ``input_size`` x
  ``input_size``), i.e. ``w * h * S/W * S/H`` for an image of W x H and input size S.
  Buckets as COCO: small < 32², medium < 96², large. The same pairs are also bucketed by
  the object's share of the image's area (which does not depend on the input size).
  A positive with no box falls in ``no box``.
- **Per bucket**: *recall* = the share of the bucket's positive pairs whose probability is
  at least the threshold; *AP* = for each label, AP over the images whose (image, label)
  pair is in the bucket (the positives) and every image where the label is absent (the
  negatives), the label's positives in other buckets left out; the bucket's AP is the
  mean over labels with at least one positive in it.
- **Per image gain** of CAT over the baseline: ``F1 gain`` = per-image F1 of CAT minus
  the baseline's at the threshold (F1 of the predicted set against the ground-truth set;
  1 when both are empty), and ``probability gain`` = the summed change of probability on
  the ground-truth labels minus the summed change on the other labels. Images are ranked
  by F1 gain, then probability gain. CAT *fixes a miss* when a ground-truth label below
  the threshold for the baseline is at or above it for CAT; it *breaks a hit* in the
  opposite case. Both are kept per (image, label), so a filter on a label means that label's. VOC's difficult labels (-1) count in neither sum nor F1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from catviz.train_cli.metrics import average_precision, multilabel_metrics

PIXEL_BUCKETS = (("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, np.inf))
SHARE_BUCKETS = (("< 1%", 0.0, 0.01), ("1-5%", 0.01, 0.05), ("5-20%", 0.05, 0.2), ("≥ 20%", 0.2, np.inf))
NO_BOX = "no box"
SUMMARY_KEYS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
#: The threshold of catviz-eval's CP ... OF1 (``multilabel_metrics``' default); mAP and AP need none.
EVAL_THRESHOLD = 0.5


@dataclass
class ReportInput:
    """Everything the report reads, as numpy arrays over the split's N images and L labels."""

    class_names: list[str]
    paths: list[Path]
    targets: np.ndarray  # (N, L) int8: 1, 0, -1 (difficult)
    probabilities: dict[str, np.ndarray]  # role → (N, L), NaN where not scored
    level_logits: dict[str, dict[str, np.ndarray]]  # role → level → (N, L)
    boxes: list[np.ndarray]  # per image (K, 4): label, width, height, crowd (original pixels)
    sizes: np.ndarray  # (N, 2) decoded (height, width)
    input_size: int  # the evaluated input's side (CAT's; both models', when they agree)
    failed: dict[int, str]  # image index → reason it was not decoded
    scored: np.ndarray  # (N,) bool


def rekey(data: ReportInput, keys: dict[str, str]) -> ReportInput:
    """``data`` with its models renamed and chosen (``keys``: new key → key in ``data``, in the
    order wanted): e.g. ``{"baseline": a, "cat": b}`` for the two-model report of any two models."""
    return replace(data, probabilities={new: data.probabilities[old] for new, old in keys.items()},
                   level_logits={new: data.level_logits.get(old, {}) for new, old in keys.items()})


@dataclass
class Report:
    threshold: float
    class_names: list[str]
    input_size: int
    images: np.ndarray  # indices of the scored images (into ReportInput.paths)
    summary: dict  # role → metrics (multilabel_metrics) + "levels": level → mAP
    per_class: list[dict]
    by_size: dict[str, list[dict]]  # "pixels" / "share" → bucket rows
    area: np.ndarray  # (N, L) largest object's area in input pixels (NaN: not positive / no box)
    share: np.ndarray  # (N, L) its share of the image area
    pixel_bucket: np.ndarray  # (N, L) int: index into PIXEL_BUCKETS, -1 none, len(...) no box
    f1: dict[str, np.ndarray]  # role → (N,) per-image F1 at the threshold
    f1_gain: np.ndarray  # (N,)
    probability_gain: np.ndarray  # (N,)
    ranking: np.ndarray  # scored image indices, largest gain first
    failed: dict[int, str]
    fixed: np.ndarray  # (N, L) bool: a true label below the threshold for the baseline, at or above it for CAT
    broken: np.ndarray  # (N, L) bool: a true label at or above the threshold for the baseline, below it for CAT

    @property
    def fixes(self) -> np.ndarray:
        """(N,) bool: CAT fixes a miss of some label."""
        return self.fixed.any(1)

    @property
    def breaks(self) -> np.ndarray:
        """(N,) bool: CAT breaks a hit of some label."""
        return self.broken.any(1)


# object sizes --------------------------------------------------------------------------
def largest_objects(boxes: list[np.ndarray], sizes: np.ndarray, num_labels: int,
                    input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(area in input pixels, share of the image) of each (image, label)'s largest instance.

    NaN where the image has no box of that label or its size is unknown.
    """
    n = len(boxes)
    counts = np.array([len(b) for b in boxes], dtype=np.int64)
    if not counts.sum():
        return np.full((n, num_labels), np.nan), np.full((n, num_labels), np.nan)
    image = np.repeat(np.arange(n), counts)
    rows = np.concatenate([b for b in boxes if len(b)])
    label, box_area, crowd = rows[:, 0].astype(np.int64), rows[:, 1] * rows[:, 2], rows[:, 3] != 0
    image_area = sizes[:, 0].astype(np.float64) * sizes[:, 1]
    valid = (label >= 0) & (label < num_labels) & (image_area[image] > 0)

    def largest(keep: np.ndarray) -> np.ndarray:
        best = np.full((n, num_labels), -np.inf)
        np.maximum.at(best, (image[keep], label[keep]), box_area[keep])
        return best

    solid, crowd_region = largest(valid & ~crowd), largest(valid & crowd)
    best = np.where(np.isfinite(solid), solid, crowd_region)  # a crowd region only where nothing else
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(np.isfinite(best), best / image_area[:, None], np.nan)
    area = share * input_size * input_size
    return area, share


def bucket_index(values: np.ndarray, buckets: tuple) -> np.ndarray:
    """Index of each value's bucket (``len(buckets)`` for NaN: no box)."""
    result = np.full(values.shape, len(buckets), dtype=np.int64)
    for k, (_, low, high) in enumerate(buckets):
        result[(values >= low) & (values < high)] = k
    return result


def _describe_bucket(name: str, low: float, high: float, share: bool) -> str:
    def fmt(v: float) -> str:
        return f"{v * 100:g}%" if share else f"{int(round(np.sqrt(v)))}²"

    if np.isinf(high):
        return f"≥ {fmt(low)}"
    return f"< {fmt(high)}" if low == 0 else f"{fmt(low)} to {fmt(high)}"


def subset_average_precision(order: np.ndarray, positive: np.ndarray, keep: np.ndarray) -> float:
    """``average_precision(scores[keep], positive[keep])`` from the full column's ranking
    ``order = argsort(-scores, kind="stable")``: a stable sort keeps a subset's own order,
    so one sort per label serves every bucket."""
    hits = positive[order][keep[order]]
    if not hits.any():
        return float("nan")
    return float((np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)).mean())


def _bucket_rows(buckets: tuple, index: np.ndarray, positives: np.ndarray, targets: np.ndarray,
                 probabilities: dict[str, np.ndarray], orders: dict[str, np.ndarray], threshold: float,
                 share: bool) -> list[dict]:
    rows = []
    names = [*buckets, (NO_BOX, np.nan, np.nan)]
    for k, (name, low, high) in enumerate(names):
        in_bucket = positives & (index == k)
        if k == len(buckets) and not in_bucket.any():
            continue  # every positive has a box
        row = {"bucket": name, "range": NO_BOX if k == len(buckets) else _describe_bucket(name, low, high, share),
               "pairs": int(in_bucket.sum()), "images": int(in_bucket.any(1).sum()),
               "labels": int(in_bucket.any(0).sum())}
        for role, probs in probabilities.items():
            row[f"recall_{role}"] = 100 * float((probs[in_bucket] >= threshold).mean()) if in_bucket.any() else float("nan")
            aps = []
            for label in np.flatnonzero(in_bucket.any(0)):
                keep = in_bucket[:, label] | (targets[:, label] == 0)
                aps.append(subset_average_precision(orders[role][:, label], in_bucket[:, label], keep))
            row[f"AP_{role}"] = 100 * float(np.mean(aps)) if aps else float("nan")
        rows.append(row)
    return rows


def _mean_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """mAP (percent) as ``multilabel_metrics`` computes it: classes without positives left out."""
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1]) if (targets[:, c] == 1).any()]
    return 100 * float(np.mean(aps)) if aps else float("nan")


# per image -----------------------------------------------------------------------------
def per_image_f1(predicted: np.ndarray, truth: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """F1 of each row's predicted set against its true set over the ``counted`` labels (1 if both empty)."""
    predicted, truth = predicted & counted, truth & counted
    hits = (predicted & truth).sum(1)
    total = predicted.sum(1) + truth.sum(1)
    return np.where(total > 0, 2 * hits / np.maximum(total, 1), 1.0)


def reaches(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """``probabilities >= threshold`` compared in float64, as the tables show them: a float32
    array against a Python float compares in float32 (NumPy 2), where 0.21 is 0.2099999934."""
    return np.asarray(probabilities, np.float64) >= threshold


# the report ----------------------------------------------------------------------------
def build_report(data: ReportInput, threshold: float = 0.5) -> Report:
    """The whole report over the scored images (see the module docstring for definitions)."""
    scored = np.flatnonzero(data.scored)
    targets = data.targets[scored]
    probs = {role: data.probabilities[role][scored].astype(np.float64) for role in data.probabilities}
    summary = {}
    for role, p in probs.items():
        metrics = multilabel_metrics(p, targets, threshold) if len(scored) else {}
        levels = data.level_logits.get(role, {})
        if len(scored) and len(levels) > 1:  # each level's mAP alone (logits rank as probabilities do)
            metrics["levels"] = {lv: _mean_ap(v[scored], targets) for lv, v in levels.items()}
        summary[role] = metrics
    per_class = []
    for c, name in enumerate(data.class_names):
        row = {"label": name, "positives": int((targets[:, c] == 1).sum())}
        for role in probs:
            row[f"AP_{role}"] = summary[role]["AP"][c] if len(scored) else float("nan")
        if {"baseline", "cat"} <= set(probs):
            row["delta"] = row["AP_cat"] - row["AP_baseline"]
        per_class.append(row)

    num_labels = len(data.class_names)
    area, share = largest_objects(data.boxes, data.sizes, num_labels, data.input_size)
    positives_all = data.targets == 1
    pixel_all = np.where(positives_all, bucket_index(area, PIXEL_BUCKETS), -1)
    positives = positives_all[scored]
    # each label's ranking, int32 (half of argsort's int64: 13 MB a model at COCO's val split)
    orders = {role: np.argsort(-p, axis=0, kind="stable").astype(np.int32) for role, p in probs.items()}
    by_size = {
        "pixels": _bucket_rows(PIXEL_BUCKETS, pixel_all[scored], positives, targets, probs, orders, threshold,
                               share=False),
        "share": _bucket_rows(SHARE_BUCKETS, bucket_index(share, SHARE_BUCKETS)[scored], positives, targets, probs,
                              orders, threshold, share=True),
    }

    n = len(data.paths)
    counted = targets != -1
    f1 = {role: np.full(n, np.nan) for role in probs}
    for role, p in probs.items():
        f1[role][scored] = per_image_f1(p >= threshold, positives, counted)
    f1_gain, probability_gain = np.full(n, np.nan), np.full(n, np.nan)
    fixed, broken = np.zeros((n, num_labels), bool), np.zeros((n, num_labels), bool)
    if {"baseline", "cat"} <= set(probs):
        f1_gain[scored] = f1["cat"][scored] - f1["baseline"][scored]
        change = probs["cat"] - probs["baseline"]
        negatives = counted & ~positives
        probability_gain[scored] = (change * positives).sum(1) - (change * negatives).sum(1)
        base_hit, cat_hit = probs["baseline"] >= threshold, probs["cat"] >= threshold
        fixed[scored] = positives & ~base_hit & cat_hit
        broken[scored] = positives & base_hit & ~cat_hit
    order = np.lexsort((-np.nan_to_num(probability_gain[scored]), -np.nan_to_num(f1_gain[scored])))
    return Report(threshold, list(data.class_names), data.input_size, scored, summary, per_class, by_size,
                  area, share, pixel_all, f1, f1_gain, probability_gain, scored[order],
                  dict(data.failed), fixed, broken)


def filter_images(report: Report, label: int | None = None, bucket: int | None = None,
                  fixes: bool = False, breaks: bool = False) -> np.ndarray:
    """The ranking restricted to images with a positive ``label`` (in pixel ``bucket``,
    if given; a bucket alone: any label in it) where CAT fixes a miss / breaks a hit of
    such a pair: with a label chosen, a miss or hit of that label, not of another one."""
    ranking = report.ranking
    columns = slice(None) if label is None else slice(label, label + 1)  # the label's column before the rows
    buckets = report.pixel_bucket[:, columns][ranking]
    pairs = (buckets >= 0) if bucket is None else (buckets == bucket)
    keep = pairs.any(1) if label is not None or bucket is not None else np.ones(len(ranking), bool)
    if fixes:
        keep &= (pairs & report.fixed[:, columns][ranking]).any(1)
    if breaks:
        keep &= (pairs & report.broken[:, columns][ranking]).any(1)
    return ranking[keep]


def gains(report: Report) -> np.ndarray:
    """The ranked images where CAT does better: F1 gain > 0, or equal F1 and probability gain > 0; best first."""
    return _one_side(report, 1)


def losses(report: Report) -> np.ndarray:
    """The ranked images where CAT does worse: F1 gain < 0, or equal F1 and probability gain < 0; worst first."""
    return _one_side(report, -1)[::-1]


def _one_side(report: Report, sign: int) -> np.ndarray:
    f1_gain, probability_gain = report.f1_gain[report.ranking], report.probability_gain[report.ranking]
    keep = (sign * f1_gain > 0) | ((f1_gain == 0) & (sign * probability_gain > 0))
    return report.ranking[keep]


def bucket_names() -> list[str]:
    """Pixel bucket names by index, ``no box`` last (the values of ``Report.pixel_bucket``)."""
    return [name for name, _, _ in PIXEL_BUCKETS] + [NO_BOX]


def report_json(report: Report, data: ReportInput) -> dict[str, object]:
    """The report as JSON-ready objects: ``summary``, ``per_class``, ``by_size``, ``images``."""
    names = data.class_names

    def clean(value):
        if isinstance(value, float) and not np.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    summary = {
        "threshold": report.threshold, "input_size": report.input_size, "images": len(data.paths),
        "scored": int(len(report.images)), "failed": len(report.failed),
        "failed_images": {str(data.paths[i]): why for i, why in sorted(report.failed.items())},
        "models": {role: {k: m[k] for k in (*SUMMARY_KEYS, "top3", "levels", "excluded") if k in m}
                   for role, m in report.summary.items()},
    }
    images = []
    roles = list(data.probabilities)
    for rank, i in enumerate(report.ranking):
        truth = np.flatnonzero(data.targets[i] == 1)
        # Probabilities of the labels that matter for this image (true or predicted by either
        # model), so the file stays O(images x labels per image) on 80-label data.
        shown = np.flatnonzero((data.targets[i] == 1) | np.any(
            [reaches(data.probabilities[role][i], report.threshold) for role in roles], axis=0))
        images.append({
            "rank": rank, "path": str(data.paths[i]), "f1_gain": report.f1_gain[i],
            "probability_gain": report.probability_gain[i],
            **{f"f1_{role}": report.f1[role][i] for role in report.f1},
            "fixes_a_miss": bool(report.fixed[i].any()), "breaks_a_hit": bool(report.broken[i].any()),
            "ground_truth": [names[c] for c in truth],
            "objects": {names[c]: {"area": report.area[i, c], "share": report.share[i, c],
                                   "bucket": bucket_names()[report.pixel_bucket[i, c]]} for c in truth},
            "probabilities": {names[c]: {role: float(data.probabilities[role][i, c]) for role in roles} for c in shown},
        })
    return clean({"summary": summary, "per_class": report.per_class, "by_size": report.by_size, "images": images})


# what one image's row is about ---------------------------------------------------------------
def _changes(report: Report, data: ReportInput, i: int) -> dict[str, np.ndarray]:
    """Label indices of image ``i`` by what CAT changes at the report's threshold, each sorted
    by how much the probability moved (most first)."""
    probs = {role: np.nan_to_num(data.probabilities[role][i]) for role in ("baseline", "cat")}
    counted, positives = data.targets[i] != -1, data.targets[i] == 1
    base_hit, cat_hit = reaches(probs["baseline"], report.threshold), reaches(probs["cat"], report.threshold)
    masks = {"fixes a miss": report.fixed[i], "breaks a hit": report.broken[i],
             "drops a false positive": counted & ~positives & base_hit & ~cat_hit,
             "adds a false positive": counted & ~positives & ~base_hit & cat_hit}
    moved = np.abs(probs["cat"] - probs["baseline"])
    return {what: sorted(np.flatnonzero(mask), key=lambda c: -moved[c]) for what, mask in masks.items()}


def change_notes(report: Report, data: ReportInput, i: int) -> str:
    """What CAT changes for image ``i``, with the labels: "fixes a miss: dog; drops a false positive: car"."""
    return "; ".join(f"{what}: {', '.join(data.class_names[c] for c in labels)}"
                     for what, labels in _changes(report, data, i).items() if labels)


def focus_label(report: Report, data: ReportInput, i: int, label: int | None = None) -> int | None:
    """The label image ``i``'s row is about: the filtered ``label``, else the first label CAT
    fixes, breaks, or whose false positive it drops or adds, else the ground-truth label whose
    probability moved most; None when the image has none of these."""
    if label is not None:
        return label
    for labels in _changes(report, data, i).values():
        if labels:
            return int(labels[0])
    positives = np.flatnonzero(data.targets[i] == 1)
    if not len(positives):
        return None
    moved = np.abs(np.nan_to_num(data.probabilities["cat"][i] - data.probabilities["baseline"][i]))
    return int(positives[np.argmax(moved[positives])])
