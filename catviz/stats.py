"""Intervals for a comparison over images: a paired bootstrap and the exact McNemar test.

numpy only (the Dataset tab imports it). The bootstrap resamples **images** with
replacement, the same draw for every model, so a difference is computed on the same
images for both sides (paired). A resample is a row of counts (how often each image was
drawn, :func:`bootstrap_counts`); every statistic below is computed from the counts as it
would be on the resampled list of images with each image's copies next to each other in
the original order, so no resampled array is ever built. The interval is the percentile
interval: the 2.5th and 97.5th percentiles of the resampled values.
"""

from __future__ import annotations

import math

import numpy as np

#: Defaults of ``--bootstrap`` and ``--seed``.
RESAMPLES = 1000
SEED = 0
#: What ``--bootstrap`` accepts.
MIN_RESAMPLES, MAX_RESAMPLES = 100, 100_000
LEVEL = 0.95
_CHUNK = 256  # resamples per block: memory O(block x images)
EXACT_TRIALS = 2000  # McNemar: integer arithmetic up to this many discordant pairs


def bootstrap_counts(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, n): how often each of ``n`` images is drawn in each resample, as uint8
    (int32 in the rare draw where an image comes up more than 255 times).

    Drawn :data:`_CHUNK` resamples at a time (the same stream as one call: numpy draws the
    rows in turn), so numpy's int64 draws never hold more than a block. At a COCO split's
    40,504 images and 1,000 resamples: 41 MB kept, 83 MB at a time, where one call and
    int32 took 324 MB and kept 162 MB."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((resamples, n), np.uint8)
    if n:
        for start in range(0, resamples, _CHUNK):
            block = rng.multinomial(n, np.full(n, 1.0 / n), size=min(_CHUNK, resamples - start))
            if counts.dtype == np.uint8 and block.max() > np.iinfo(np.uint8).max:
                counts = counts.astype(np.int32)
            counts[start:start + len(block)] = block
    return counts


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of resampled values (NaN resamples left out)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return (float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def spans_zero(ci: tuple[float, float]) -> bool:
    """An interval that contains 0 (or is undefined): the difference is not shown to be real."""
    return not (ci[0] > 0 or ci[1] < 0)


def _harmonic(n: int) -> np.ndarray:
    """H[k] = 1 + 1/2 + ... + 1/k for k = 0..n (H[0] = 0)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def by_image(counts: np.ndarray) -> np.ndarray:
    """``counts`` (R, n) as (n, R), contiguous, in the smallest type that holds them (uint8
    unless an image is drawn 256 times): the layout :func:`average_precision_sets` gathers
    images from (one image's draws are one contiguous row). Make it once per draw."""
    dtype = np.uint8 if not counts.size or counts.max() <= np.iinfo(np.uint8).max else np.int32
    return np.ascontiguousarray(counts.T, dtype=dtype)


def average_precision_counts(scores: np.ndarray, positive: np.ndarray, keep: np.ndarray,
                             counts: np.ndarray, drawn: np.ndarray | None = None) -> np.ndarray:
    """Non-interpolated AP of one label (as ``train_cli.metrics.average_precision``) in each resample.

    ``scores, positive, keep``: (n,) over the images; only ``keep`` images count (e.g. not
    difficult). ``counts``: (R, n) from :func:`bootstrap_counts`; ``drawn``: its
    :func:`by_image` when made already. NaN where a resample has no positive. See
    :func:`average_precision_sets`.
    """
    keep = np.asarray(keep, bool)
    hits = np.asarray(positive, bool) & keep
    return average_precision_sets(scores, [hits], keep & ~hits, counts, drawn)[:, 0]


def average_precision_sets(scores: np.ndarray, positives: list[np.ndarray], negative: np.ndarray,
                           counts: np.ndarray, drawn: np.ndarray | None = None) -> np.ndarray:
    """(R, S): in each resample, the AP of each set of positives (``positives[s]``, (n,) bool)
    against the same ``negative`` images, one ranking by ``scores`` (e.g. a label's AP over
    all its positives and over those of each object-size bucket, at the cost of about one).
    ``drawn``: ``by_image(counts)`` when made already (once for many calls).

    Image i drawn c times at a place where N kept images (TP of them positive) rank above
    it contributes, if positive, ``sum_{j=1..c} (TP + j) / (N + j) = c - (N - TP) (H[N + c] - H[N])``
    to the sum of precisions at the hits; ``N - TP`` is the negatives drawn above it. Those
    are summed in one pass over the negatives' draws in ranking order, per run of negatives
    between two positives (shared by every set); the rest is over the positives only.
    """
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    negative = np.asarray(negative, bool)[order]
    below = np.cumsum(negative)  # negatives ranked at or above each place
    result = np.full((len(counts), len(positives)), np.nan)
    sets = [np.flatnonzero(np.asarray(p, bool)[order]) for p in positives]  # places in the ranking
    used = [s for s in sets if len(s)]
    if not used or not len(counts):
        return result
    drawn = by_image(counts) if drawn is None else drawn
    places = np.unique(np.concatenate(used))
    before = below[places]  # negatives ranked above each positive place
    ends = np.unique(before[before > 0])  # where a run of negatives ends (ranking order)
    run = np.searchsorted(ends, before)  # the run ending just above each place (ends[run] == before)
    negatives = order[negative][: ends[-1] if len(ends) else 0]  # none below the last positive is needed
    harmonic = _harmonic(int(counts.sum(1).max()))
    for start in range(0, len(counts), _CHUNK):
        columns = slice(start, start + _CHUNK)
        neg_above = np.zeros((len(places), min(_CHUNK, len(counts) - start)), np.int64)
        if len(ends):
            runs = np.add.reduceat(drawn[negatives, columns], np.concatenate([[0], ends[:-1]]), axis=0, dtype=np.int64)
            sums = np.cumsum(runs, axis=0)  # negatives drawn above the end of each run
            neg_above[before > 0] = sums[run[before > 0]]
        for s, places_s in enumerate(sets):
            if not len(places_s):
                continue
            k = np.searchsorted(places, places_s)
            w = drawn[order[places_s], columns].astype(np.int64)  # (positives, r)
            above = neg_above[k] + np.cumsum(w, 0) - w
            gained = w - neg_above[k] * (harmonic[above + w] - harmonic[above])
            hits = w.sum(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                result[columns, s] = np.where(hits > 0, gained.sum(0) / hits, np.nan)
    return result


def mean_ap_counts(scores: np.ndarray, targets: np.ndarray, counts: np.ndarray,
                   drawn: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(per-label AP (R, L), mAP (R,)) in percent, per resample; labels without a positive
    in a resample are left out of its mAP, as ``multilabel_metrics`` does. ``drawn``: as
    :func:`average_precision_sets`."""
    drawn = by_image(counts) if drawn is None else drawn
    aps = np.stack([average_precision_counts(scores[:, c], targets[:, c] == 1, targets[:, c] != -1, counts, drawn)
                    for c in range(scores.shape[1])], axis=1) * 100 if scores.shape[1] else np.zeros((len(counts), 0))
    found = np.isfinite(aps)
    m = np.where(found.any(1), np.where(found, aps, 0).sum(1) / np.maximum(found.sum(1), 1), np.nan)
    return aps, m


def f1_counts(predicted: np.ndarray, targets: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """CF1 and OF1 (percent, ``train_cli.metrics``' definitions) per resample: the per-label
    counts Nc, Np, Ng of a resample are the counts-weighted sums over images."""
    positives = (targets == 1).astype(np.float64)
    pred = predicted.astype(np.float64)  # a predicted difficult label counts in Np, as in multilabel_metrics
    correct = pred * positives
    shape = (len(counts), targets.shape[1])
    n_correct, n_predicted, n_truth = np.empty(shape), np.empty(shape), np.empty(shape)
    for start in range(0, len(counts), _CHUNK):  # a block of resamples in float64 at a time, not all
        rows = slice(start, start + _CHUNK)
        w = counts[rows].astype(np.float64)
        n_correct[rows], n_predicted[rows], n_truth[rows] = w @ correct, w @ pred, w @ positives
    valid = n_truth > 0
    op = n_correct.sum(1) / np.maximum(n_predicted.sum(1), 1.0)
    orec = n_correct.sum(1) / np.maximum(n_truth.sum(1), 1.0)
    cp = (n_correct / np.maximum(n_predicted, 1.0)).mean(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cr = np.where(valid.any(1), np.where(valid, n_correct / np.where(valid, n_truth, 1), 0).sum(1)
                      / np.maximum(valid.sum(1), 1), 0.0)
    return {"CF1": 100 * _f1(cp, cr), "OF1": 100 * _f1(op, orec)}


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)


def weighted_mean_counts(sums: np.ndarray, numbers: np.ndarray, counts: np.ndarray,
                         drawn: np.ndarray | None = None) -> np.ndarray:
    """A mean over pairs grouped by image (``sums[i]``: the image's summed values,
    ``numbers[i]``: its pairs) in each resample; NaN where a resample draws no pair.
    ``drawn``: ``by_image(counts)`` when made already; only the images with pairs are read
    (a class's pairs touch a few of a COCO split's images)."""
    numbers, sums = np.asarray(numbers, np.float64), np.asarray(sums, np.float64)
    drawn = by_image(counts) if drawn is None else drawn
    images = np.flatnonzero(numbers)
    w = drawn[images].astype(np.float64)  # (images with pairs, R)
    total = numbers[images] @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (sums[images] @ w) / np.where(total > 0, total, 1), np.nan)


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar test: the binomial test of ``fixed`` successes in
    ``fixed + broken`` trials at p = 1/2, p = min(1, 2 P(X <= min(b, c))). Up to
    :data:`EXACT_TRIALS` trials in integers; beyond, the same sum in logarithms (float64:
    ~1e-12 relative; the integer sum took minutes at a COCO split's 10^5 discordant pairs)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    low = min(fixed, broken)
    if n <= EXACT_TRIALS:
        tail = sum(math.comb(n, k) for k in range(low + 1))
        return min(1.0, 2 * tail / 2**n)
    k = np.arange(1, low + 1, dtype=np.float64)
    logs = np.concatenate([[0.0], np.cumsum(np.log(n - k + 1) - np.log(k))])  # log C(n, k), k = 0..low
    top = logs.max()
    log_tail = top + math.log(np.exp(logs - top).sum()) - n * math.log(2)
    return min(1.0, 2 * math.exp(log_tail)) if log_tail < 0 else 1.0
