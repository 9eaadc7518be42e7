"""Any number of models over one split, each against a reference, with intervals (numpy only).

Table 3 live: every model's mAP, CF1, OF1, per class, per object size and per classifier
level (each level's logits alone), from :func:`catviz.dataset_report.build_report` (the
same numbers as ``catviz-eval``). Every difference against the reference carries a 95 %
interval from a paired bootstrap over the scored images (:mod:`catviz.stats`: the same
resampled images for both models); a class or bucket whose interval contains 0 says so
(``spans_zero``). Per (image, true label), a model *fixes* a miss of the reference (below
the threshold there, at or above it here) or *breaks* a hit; their totals get the exact
McNemar test (two-sided binomial at 1/2). The same counts over every counted decision
(true and absent labels) are given as ``decisions``. McNemar treats the pairs as
independent; labels of one image are not, so read its p-value beside the bootstrap
intervals, which resample whole images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stats
from .dataset_report import (
    PIXEL_BUCKETS,
    SHARE_BUCKETS,
    Report,
    ReportInput,
    bucket_index,
    build_report,
    reaches,
)


@dataclass
class Study:
    names: dict[str, str]  # model key → display name, command-line order
    reference: str
    resamples: int
    seed: int
    report: Report  # point estimates for every model (build_report)
    comparisons: list[dict]
    per_class: list[dict]
    by_size: dict[str, list[dict]]
    levels: dict[str, dict[str, dict]]  # key → level → {"mAP", "ci95"}
    fixed: dict[str, np.ndarray]  # key → (N, L) bool, against the reference
    broken: dict[str, np.ndarray]

    @property
    def others(self) -> list[str]:
        return [key for key in self.names if key != self.reference]


def _ci(values: np.ndarray) -> list[float]:
    return list(stats.interval(values))


def build_study(data: ReportInput, names: dict[str, str], reference: str, resamples: int = stats.RESAMPLES,
                seed: int = stats.SEED, threshold: float = 0.5) -> Study:
    """Every model of ``data.probabilities`` (keys of ``names``) against ``reference``."""
    report = build_report(data, threshold)
    scored = report.images
    targets = data.targets[scored]
    probs = {key: data.probabilities[key][scored] for key in names}  # float32 as stored: they only rank
    hit = {key: reaches(p, threshold) for key, p in probs.items()}
    counts = stats.bootstrap_counts(len(scored), resamples, seed)
    drawn = stats.by_image(counts)  # made once: every AP below gathers images from it
    aps, maps, f1s = {}, {}, {}
    for key, p in probs.items():
        aps[key], maps[key] = stats.mean_ap_counts(p, targets, counts, drawn)
        f1s[key] = stats.f1_counts(hit[key], targets, counts)
    positives, counted = targets == 1, targets != -1
    n, num_labels = len(data.paths), len(data.class_names)
    fixed = {key: np.zeros((n, num_labels), bool) for key in names}
    broken = {key: np.zeros((n, num_labels), bool) for key in names}
    comparisons = []
    ref = reference
    for key in names:
        if key == ref:
            continue
        fixed[key][scored] = positives & ~hit[ref] & hit[key]
        broken[key][scored] = positives & hit[ref] & ~hit[key]
        right_ref, right = hit[ref] == positives, hit[key] == positives
        decisions_fixed = int((counted & ~right_ref & right).sum())
        decisions_broken = int((counted & right_ref & ~right).sum())
        b, c = int(fixed[key].sum()), int(broken[key].sum())
        a_sum, b_sum = report.summary[ref], report.summary[key]
        row = {"a": names[ref], "b": names[key], "resamples": resamples, "seed": seed, "level": stats.LEVEL,
               "images": int(len(scored)),
               "delta_mAP": b_sum["mAP"] - a_sum["mAP"], "ci95": _ci(maps[key] - maps[ref])}
        for metric in ("CF1", "OF1"):
            row[f"delta_{metric}"] = b_sum[metric] - a_sum[metric]
            row[f"ci95_{metric}"] = _ci(f1s[key][metric] - f1s[ref][metric])
        row["spans_zero"] = stats.spans_zero(row["ci95"])
        row["labels"] = {"fixed": b, "broken": c, "p": stats.mcnemar_exact(b, c)}
        row["decisions"] = {"fixed": decisions_fixed, "broken": decisions_broken,
                            "p": stats.mcnemar_exact(decisions_fixed, decisions_broken)}
        comparisons.append(row)

    per_class = []
    for c, name in enumerate(data.class_names):
        row = {"label": name, "positives": int(positives[:, c].sum()),
               "AP": {names[k]: report.summary[k]["AP"][c] if len(scored) else float("nan") for k in names},
               "delta": {}, "ci95": {}, "spans_zero": {}}
        for key in names:
            if key == ref:
                continue
            row["delta"][names[key]] = row["AP"][names[key]] - row["AP"][names[ref]]
            ci = _ci(aps[key][:, c] - aps[ref][:, c])
            row["ci95"][names[key]], row["spans_zero"][names[key]] = ci, stats.spans_zero(ci)
        per_class.append(row)

    by_size = _by_size(data, report, names, ref, probs, targets, counts, drawn)
    levels = {}
    for key in names:
        level_logits = data.level_logits.get(key, {})
        levels[key] = {}
        if len(level_logits) > 1:
            for lv, logits in level_logits.items():
                _, m = stats.mean_ap_counts(logits[scored].astype(np.float64), targets, counts, drawn)
                levels[key][lv] = {"mAP": report.summary[key].get("levels", {}).get(lv, float("nan")), "ci95": _ci(m)}
    return Study(dict(names), ref, resamples, seed, report, comparisons, per_class, by_size, levels, fixed, broken)


def _by_size(data: ReportInput, report: Report, names: dict[str, str], ref: str, probs: dict[str, np.ndarray],
             targets: np.ndarray, counts: np.ndarray, drawn: np.ndarray) -> dict[str, list[dict]]:
    """The report's size buckets, each with every model's AP and recall and ΔAP [interval]."""
    scored = report.images
    positives = targets == 1
    indices = {"pixels": report.pixel_bucket[scored],
               "share": np.where(data.targets[scored] == 1, bucket_index(report.share[scored], SHARE_BUCKETS), -1)}
    buckets = {"pixels": PIXEL_BUCKETS, "share": SHARE_BUCKETS}
    groups = [(kind, j, j if row["bucket"] != "no box" else len(buckets[kind]))
              for kind, rows in report.by_size.items() for j, row in enumerate(rows)]
    in_buckets = [positives & (indices[kind] == code) for kind, _, code in groups]
    # Each label's AP in every bucket at once: one ranking and one pass over its negatives per model.
    aps = {key: np.full((len(groups), len(counts), targets.shape[1]), np.nan) for key in probs}
    for c in range(targets.shape[1]):
        wanted = [g for g, mask in enumerate(in_buckets) if mask[:, c].any()]
        for key, p in probs.items() if wanted else ():
            aps[key][wanted, :, c] = stats.average_precision_sets(
                p[:, c], [in_buckets[g][:, c] for g in wanted], targets[:, c] == 0, counts, drawn).T
    result: dict[str, list[dict]] = {kind: [] for kind in report.by_size}
    for g, (kind, j, _) in enumerate(groups):
        row = report.by_size[kind][j]
        labels = np.flatnonzero(in_buckets[g].any(0))
        resampled = {}
        for key in probs:
            per_label = aps[key][g][:, labels]
            found = np.isfinite(per_label)
            resampled[key] = 100 * np.where(found.any(1), np.where(found, per_label, 0).sum(1)
                                            / np.maximum(found.sum(1), 1), np.nan)
        out = {key: row[key] for key in ("bucket", "range", "pairs", "images", "labels")}
        out["AP"] = {names[key]: row[f"AP_{key}"] for key in names}
        out["recall"] = {names[key]: row[f"recall_{key}"] for key in names}
        out["delta"], out["ci95"], out["spans_zero"] = {}, {}, {}
        for key in names:
            if key != ref:
                out["delta"][names[key]] = row[f"AP_{key}"] - row[f"AP_{ref}"]
                ci = _ci(resampled[key] - resampled[ref])
                out["ci95"][names[key]], out["spans_zero"][names[key]] = ci, stats.spans_zero(ci)
        result[kind].append(out)
    return result


def study_json(study: Study, data: ReportInput, models: list[dict]) -> dict:
    """``report.json`` (the contract in docs/compare.md): ``models`` in command-line order
    (``models``: each model's name, checkpoint, sha256 ... from the caller, completed here),
    ``reference``, ``bootstrap``, ``comparisons``, ``per_class``, ``by_size``, ``images``."""
    report = study.report
    keys = list(study.names)
    rows = []
    for key, extra in zip(keys, models, strict=True):
        summary = report.summary[key]
        rows.append({**extra, "name": study.names[key], "reference": key == study.reference,
                     **{k: summary.get(k) for k in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")},
                     "AP": dict(zip(data.class_names, summary.get("AP", []), strict=False)),
                     "levels": study.levels[key]})
    images = []
    for i in report.images:
        entry = {"path": str(data.paths[i]),
                 "f1": {study.names[k]: report.f1[k][i] for k in keys}}
        for key in study.others:
            entry.setdefault("fixed", {})[study.names[key]] = [data.class_names[c] for c in np.flatnonzero(study.fixed[key][i])]
            entry.setdefault("broken", {})[study.names[key]] = [data.class_names[c] for c in np.flatnonzero(study.broken[key][i])]
        images.append(entry)
    return clean({
        "reference": study.names[study.reference],
        "bootstrap": {"resamples": study.resamples, "seed": study.seed, "level": stats.LEVEL,
                      "method": "paired percentile bootstrap over the scored images"},
        "threshold": report.threshold, "input_size": report.input_size,
        "images_scored": int(len(report.images)), "images_total": len(data.paths),
        "models": rows, "comparisons": study.comparisons, "per_class": study.per_class,
        "by_size": study.by_size, "images": images,
    })


def clean(value):
    """JSON-ready: NaN/inf → None, numpy scalars → Python, tuples → lists."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        return clean(value.item())
    return value


# explanations over the split ------------------------------------------------------------
@dataclass
class ExplanationPairs:
    """One model's complete CAMs reduced per (image, true label) and level
    (:func:`catviz.explain_study.explain_split` defines the measures)."""

    image: np.ndarray  # (P,) index into the split
    label: np.ndarray  # (P,)
    levels: list[str]  # coarse to fine
    sources: dict[str, list[str]]  # level → its source layers and "offset"
    values: dict[str, np.ndarray]  # "<level>/<measure>" or "<level>/share/<source>" → (P,)
    chance: np.ndarray  # (P,) the boxes' share of the image (NaN: no box)


#: Measures averaged per group; "<m>_over_chance" is the measure minus its chance level.
EVIDENCE = ("positive", "negative", "in_box", "in_box_chance", "in_box_over_chance", "pointing",
            "pointing_chance", "pointing_over_chance")
ALL = "all"


def _pair_values(pairs: ExplanationPairs, level: str) -> dict[str, np.ndarray]:
    v = {m: pairs.values[f"{level}/{m}"] for m in ("positive", "negative", "in_box", "pointing", "pointing_chance")}
    v["in_box_chance"] = pairs.chance
    v["in_box_over_chance"] = v["in_box"] - pairs.chance
    v["pointing_over_chance"] = v["pointing"] - v["pointing_chance"]
    return v


def _group_mean(values: np.ndarray, position: np.ndarray, keep: np.ndarray, n: int,
                counts: np.ndarray, drawn: np.ndarray) -> dict:
    """Mean over the kept pairs with finite values, and its bootstrap interval (images resampled)."""
    ok = keep & np.isfinite(values)
    sums = np.bincount(position[ok], weights=values[ok], minlength=n)
    numbers = np.bincount(position[ok], minlength=n)
    mean = float(values[ok].mean()) if ok.any() else float("nan")
    return {"mean": mean, "ci95": list(stats.interval(stats.weighted_mean_counts(sums, numbers, counts, drawn))),
            "n": int(ok.sum())}


def aggregate_explanations(explained: dict[str, ExplanationPairs], names: dict[str, str], reference: str,
                           report: Report, resamples: int = stats.RESAMPLES, seed: int = stats.SEED) -> dict:
    """``layer_share``, ``evidence`` (per model, level, object-size bucket and ``all``),
    ``evidence_by_class`` and the paired contrasts ``fine_minus_coarse`` (each model's
    finest level − its coarsest) and ``against_reference`` (each model's finest level −
    the reference's finest), with 95 % intervals from the same paired bootstrap over images
    as the scores (the same seed: the same resampled images)."""
    scored = report.images
    position = np.full(len(report.pixel_bucket), -1, np.int64)
    position[scored] = np.arange(len(scored))
    counts = stats.bootstrap_counts(len(scored), resamples, seed)
    drawn = stats.by_image(counts)  # made once for every mean below
    buckets = [name for name, _, _ in PIXEL_BUCKETS] + ["no box"]
    layer_share, evidence, by_class = {}, {}, {}
    finest: dict[str, dict[str, np.ndarray]] = {}
    groups_of: dict[str, dict[str, np.ndarray]] = {}
    for key, pairs in explained.items():
        name = names[key]
        where = position[pairs.image]
        bucket = report.pixel_bucket[pairs.image, pairs.label]
        groups = {ALL: where >= 0} | {b: (where >= 0) & (bucket == k) for k, b in enumerate(buckets)}
        groups = {g: keep for g, keep in groups.items() if keep.any() or g == ALL}
        groups_of[key] = groups
        classes = {c: (where >= 0) & (pairs.label == k) for k, c in enumerate(report.class_names)}
        layer_share[name], evidence[name], by_class[name] = {}, {}, {}
        for level in pairs.levels:
            logit = pairs.values[f"{level}/logit"]
            layer_share[name][level] = {}
            for g, keep in groups.items():
                row = {"logit": _group_mean(logit, where, keep, len(scored), counts, drawn)["mean"]}
                cis = {}
                for src in pairs.sources[level]:
                    got = _group_mean(pairs.values[f"{level}/share/{src}"], where, keep, len(scored), counts, drawn)
                    row[src], cis[src] = got["mean"], got["ci95"]
                row["n"], row["ci95"] = int(keep.sum()), cis
                layer_share[name][level][g] = row
            values = _pair_values(pairs, level)
            evidence[name][level] = {g: {m: _group_mean(values[m], where, keep, len(scored), counts, drawn) for m in EVIDENCE}
                                     for g, keep in groups.items()}
            by_class[name][level] = {c: {m: _group_mean(values[m], where, keep, len(scored), counts, drawn)
                                         for m in ("positive", "negative", "in_box", "pointing")}
                                     for c, keep in classes.items() if keep.any()}
        finest[key] = _pair_values(pairs, pairs.levels[-1])
    contrasts = {"fine_minus_coarse": {}, "against_reference": {}}
    for key, pairs in explained.items():
        where, groups = position[pairs.image], groups_of[key]
        if len(pairs.levels) > 1:
            fine, coarse = _pair_values(pairs, pairs.levels[-1]), _pair_values(pairs, pairs.levels[0])
            contrasts["fine_minus_coarse"][names[key]] = {
                "levels": [pairs.levels[-1], pairs.levels[0]],
                **{g: {m: _group_mean(fine[m] - coarse[m], where, keep, len(scored), counts, drawn)
                       for m in ("in_box", "pointing", "positive", "negative")} for g, keep in groups.items()}}
        ref = explained.get(reference)
        if key != reference and ref is not None and np.array_equal(ref.image, pairs.image) \
                and np.array_equal(ref.label, pairs.label):  # the same (image, label) pairs: paired
            contrasts["against_reference"][names[key]] = {
                "levels": [pairs.levels[-1], ref.levels[-1]],
                **{g: {m: _group_mean(finest[key][m] - finest[reference][m], where, keep, len(scored), counts, drawn)
                       for m in ("in_box", "pointing")} for g, keep in groups.items()}}
    return clean({"resamples": resamples, "seed": seed, "layer_share": layer_share, "evidence": evidence,
                  "evidence_by_class": by_class, **contrasts})


def report_with_intervals(data: ReportInput, threshold: float = 0.5, resamples: int = stats.RESAMPLES,
                          seed: int = stats.SEED, found: Study | None = None, other: str = "cat") -> Report:
    """The Dataset tab's report of its two slots (``baseline`` the reference, ``cat``), each
    per-class and pixel-bucket row carrying ``ci95`` (of CAT − baseline) and ``spans_zero``.
    ``found``: a study of more models (same images, threshold) whose reference is ``baseline``
    and where ``cat`` is named ``other``: its intervals are taken, not computed again."""
    if not {"baseline", "cat"} <= set(data.probabilities) or not data.scored.any():  # e.g. cancelled at once
        return build_report(data, threshold)
    if found is None:
        found = build_study(data, {"baseline": "baseline", "cat": "cat"}, "baseline", resamples, seed, threshold)
        report, other = found.report, "cat"
    else:
        report = build_report(data, threshold)
    for row, interval_row in zip(report.per_class, found.per_class, strict=True):
        row["ci95"], row["spans_zero"] = interval_row["ci95"][other], interval_row["spans_zero"][other]
    for kind, rows in report.by_size.items():
        for row, interval_row in zip(rows, found.by_size[kind], strict=True):
            row["ci95"], row["spans_zero"] = interval_row["ci95"].get(other), interval_row["spans_zero"].get(other)
    comparison = next(c for c in found.comparisons if c["b"] == other)
    report.summary["cat"]["intervals"] = {"resamples": found.resamples, "seed": found.seed, **comparison}
    return report
