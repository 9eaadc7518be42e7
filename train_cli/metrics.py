"""The field's multi-label metrics, defined as ML-GCN's ``AveragePrecisionMeter`` does.

- AP of a class: the mean, over its positive images, of the precision at each
  positive's rank when images are sorted by score (non-interpolated). mAP = mean AP x 100.
- At a threshold (probability 0.5, ML-GCN's logit 0): per class, Ng ground-truth
  positives, Np predicted positives, Nc correct. OP = ΣNc/ΣNp, OR = ΣNc/ΣNg,
  CP = mean(Nc/Np), CR = mean(Nc/Ng), each F1 the harmonic mean of its P and R.
- Top-3 variant: a label counts as predicted only if it is among the image's three
  highest scores *and* above the threshold (ML-GCN ``overall_topk``).

Targets are 1 (present), 0 (absent) or -1 (difficult, VOC). Difficult entries are
ignored by AP; in the threshold metrics they count as negatives, as in ML-GCN.
A class with no positive is excluded from mAP and CR and listed in ``excluded``.
"""

from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Non-interpolated AP of one class; entries with target -1 are ignored."""
    keep = targets != -1
    scores, targets = scores[keep], targets[keep]
    order = np.argsort(-scores, kind="stable")
    hits = targets[order] == 1
    if not hits.any():
        return float("nan")
    precision_at_hits = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(precision_at_hits.mean())


def _threshold_metrics(predicted: np.ndarray, positives: np.ndarray, valid: np.ndarray) -> dict:
    n_correct = (predicted & positives).sum(0).astype(float)
    n_predicted = predicted.sum(0).astype(float)
    n_truth = positives.sum(0).astype(float)
    op = n_correct.sum() / max(n_predicted.sum(), 1.0)
    orec = n_correct.sum() / max(n_truth.sum(), 1.0)
    cp = float(np.mean(n_correct / np.maximum(n_predicted, 1.0)))
    cr = float(np.mean(n_correct[valid] / n_truth[valid])) if valid.any() else 0.0
    return {
        "CP": 100 * cp,
        "CR": 100 * cr,
        "CF1": 100 * _f1(cp, cr),
        "OP": 100 * op,
        "OR": 100 * orec,
        "OF1": 100 * _f1(op, orec),
    }


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def multilabel_metrics(
    scores: np.ndarray, targets: np.ndarray, threshold: float = 0.5, top_k: int = 3
) -> dict:
    """Metrics of (N, C) **probabilities** against (N, C) targets in {1, 0, -1}.

    Returns ``mAP, CP, CR, CF1, OP, OR, OF1`` (percent), ``AP`` (per-class, percent,
    NaN for excluded classes), ``top{k}``: the threshold metrics restricted to each
    image's top-k labels, and ``excluded``: indices of classes with no positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must both be (N, C)")
    if scores.size and (scores.min() < 0 or scores.max() > 1):
        raise ValueError("scores must be probabilities in [0, 1] (apply a sigmoid to logits)")
    ap = np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])
    positives = targets == 1
    valid = positives.any(0)
    predicted = scores >= threshold
    result = {"mAP": 100 * float(np.nanmean(ap)) if valid.any() else float("nan")}
    result |= _threshold_metrics(predicted, positives, valid)
    k = min(top_k, scores.shape[1])
    top = np.zeros_like(predicted)
    np.put_along_axis(top, np.argsort(-scores, axis=1)[:, :k], True, axis=1)
    result[f"top{k}"] = _threshold_metrics(predicted & top, positives, valid)
    result["AP"] = (100 * ap).tolist()
    result["excluded"] = np.flatnonzero(~valid).tolist()
    return result
