"""``catviz-eval B C --compare --report DIR``: the Dataset tab's report, headless.

Writes ``DIR/summary.json``, ``per_class.json``, ``by_size.json``, ``images.json`` (every
scored image ranked by CAT's gain) and ``report.html``: a self-contained page (PNGs
embedded as base64) with per-class AP deltas, the size buckets, and the 20 largest gains
and losses (only images where CAT does better / worse, with how many there are) with both
models' class activation maps. Definitions: :mod:`catviz.dataset_report`.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from catviz.models.cam import class_activation_maps
from catviz.models.checkpoint import TEMP_SUFFIX, read_meta
from catviz.models.device import resolve_device
from catviz.models.preprocess import ImageLoadError, load_image, preprocess
from catviz.train_cli.data import DatasetError
from catviz.train_cli.errors import RunError, UsageError, check_output_path
from catviz.train_cli.evaluate import format_table, row_names

from . import inference, render
from .dataset_report import (
    SUMMARY_KEYS,
    Report,
    ReportInput,
    build_report,
    gains,
    losses,
    report_json,
)
from .dataset_results import Progress, report_input, run_dataset
from .dataset_source import open_dataset
from .figure import colour_bar
from .roles import role_of

REPORT_FILES = ("summary.json", "per_class.json", "by_size.json", "images.json", "report.html")
TOP = 20
LEGEND = "<span style='color:#999'>■</span> baseline, <span style='color:#2f6db5'>■</span> CAT"
THUMB = 128
SHOWN = 192  # the page draws every card image this tall (CSS below)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("comparing two models (baseline, CAT) over the dataset")
    group.add_argument("--compare", action="store_true",
                       help="compare exactly two checkpoints (baseline, CAT): per class, per object size, per image; "
                       "needs --report DIR, where the report is written")
    group.add_argument("--report", metavar="DIR", type=Path,
                       help="with --compare: write the JSON files and report.html into DIR")
    group.add_argument("--overwrite", action="store_true", help="replace the files of an existing --report folder or an existing --json file")


def check_arguments(args: argparse.Namespace) -> None:
    """:class:`UsageError` (exit 2) before any work: wrong count, missing or occupied report folder."""
    if args.json and args.compare:
        raise UsageError("--json does not apply to --compare: the report folder (--report DIR) holds its JSON")
    if not args.compare:
        if args.report:
            raise UsageError("--report: need --compare (the report compares two checkpoints)")
        return
    if len(args.checkpoints) != 2:
        raise UsageError(f"--compare takes exactly two checkpoints (baseline, CAT), got {len(args.checkpoints)}")
    if args.report is None:
        raise UsageError("--compare needs --report DIR")
    check_output_path(args.report, "--report", folder=True)
    if args.report.exists() and not args.report.is_dir():
        raise UsageError(f"--report {args.report}: exists and is not a folder")
    if args.report.is_dir() and any(args.report.iterdir()) and not args.overwrite:
        raise UsageError(f"--report {args.report}: folder already holds files; choose another or pass --overwrite")
    try:
        args.report.mkdir(parents=True, exist_ok=True)
        probe = args.report / ".catviz-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UsageError(f"--report {args.report}: cannot write there ({err.strerror or err})") from err


def run(args: argparse.Namespace) -> int:
    """Run both models over the split (cached, see ``catviz.dataset_results``) and write the report."""
    device = resolve_device(args.device)
    loaded = [inference.load_model(path, device) for path in args.checkpoints]
    roles = _roles(loaded)
    dataset = args.dataset or read_meta(args.checkpoints[0]).dataset
    if not dataset:
        raise DatasetError("the checkpoint does not say which dataset it was trained on; pass --dataset")
    source = open_dataset(dataset, args.data_root, args.limit_images, args.keep_unannotated)
    bars: list[tqdm] = []

    def progress(p: Progress) -> None:
        if not bars:
            bars.append(tqdm(total=p.total, desc="compare", unit="img", leave=False))
        bars[0].update(p.done - bars[0].n)

    results = run_dataset(source, roles, args.batch_size, args.workers, progress=progress)
    for bar in bars:
        bar.close()
    data = report_input(results)
    report = build_report(data)
    try:
        write_report(args.report, report, data, roles, source.describe())
    except OSError as err:
        raise RunError(f"cannot write the report into {args.report}: {err.strerror or err}") from err
    names = row_names([roles[role].meta.model for role in roles], [roles[role].path for role in roles])
    rows = [(f"{role}: {name}", report.summary[role]) for role, name in zip(roles, names, strict=True)
            if report.summary[role]]
    if rows:
        print(format_table(rows))
    print(f"\nscored on the {source.split.name} split: {len(report.images)} of {len(data.paths)} images" +
          (f" (the first {len(data.paths)}, --limit-images {args.limit_images})" if args.limit_images else "") +
          (f"; {len(report.failed)} could not be decoded (unreadable images, listed in summary.json)" if report.failed else "") +
          (f"; {results.computed} computed, the rest from the cache" if results.computed < len(data.paths) else ""))
    print(f"report written to {args.report}/ ({', '.join(REPORT_FILES)})")
    return 0


def _roles(loaded: list[inference.LoadedModel]) -> dict[str, inference.LoadedModel]:
    """Roles from the checkpoints' metadata; the order given decides only between two of a kind."""
    kinds = [role_of(m.meta) for m in loaded]
    if kinds == ["cat", "baseline"]:
        print(f"catviz-eval: {loaded[0].path} is the CAT model and {loaded[1].path} the baseline "
              "(taken from their metadata)", file=sys.stderr)
        loaded = loaded[::-1]
    elif kinds[0] == kinds[1]:  # e.g. an ablation against CAT: allowed, but said
        print(f"catviz-eval: both checkpoints are {kinds[0]} models; {loaded[0].path} takes the "
              f"'baseline' column and {loaded[1].path} the 'cat' column (the order given)", file=sys.stderr)
    inference.check_compatible(loaded[1], loaded[0])
    return {"baseline": loaded[0], "cat": loaded[1]}


# writing ---------------------------------------------------------------------------------
def write_report(folder: Path, report: Report, data: ReportInput, roles: dict, dataset: str) -> None:
    """All of :data:`REPORT_FILES` or none: each is written into a staging folder inside
    ``folder`` first and moved into place only when every one is complete, so a full disk
    or an interrupt leaves the folder as it was (the staging folder is removed)."""
    objects = report_json(report, data)
    objects["summary"]["dataset"] = dataset
    objects["summary"]["checkpoints"] = {role: str(m.path) for role, m in roles.items()}
    texts = {f"{name}.json": json.dumps(objects[name], indent=1, ensure_ascii=False) + "\n"
             for name in ("summary", "per_class", "by_size", "images")}
    texts["report.html"] = render_html(report, data, roles, objects["summary"])
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".report.", suffix=TEMP_SUFFIX))
    try:
        for name in REPORT_FILES:
            (staging / name).write_text(texts[name], encoding="utf-8")
        for name in REPORT_FILES:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _png(image: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode() if ok else ""


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _signed(value, digits: int = 1) -> str:
    """A difference with its sign, "0.0" when it rounds to zero (never "-0.0")."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:+.{digits}f}"
    return f"{0:.{digits}f}" if float(text) == 0 else text


def _bars_svg(rows: list[tuple[str, float]], width: int = 560) -> str:
    """Horizontal bars of signed values (green: CAT ahead, red: behind), one row each."""
    finite = [abs(v) for _, v in rows if math.isfinite(v)]
    limit = max(finite, default=1.0) or 1.0
    height, label_w, mid = 16, 130, 130 + (width - 130 - 60) / 2
    half = (width - label_w - 60) / 2
    parts = [f'<svg width="{width}" height="{height * len(rows) + 4}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="sans-serif" font-size="11">',
             f'<line x1="{mid}" x2="{mid}" y1="0" y2="{height * len(rows)}" stroke="#888"/>']
    for k, (name, value) in enumerate(rows):
        y = k * height
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{html.escape(name[:20])}</text>')
        if math.isfinite(value):
            w = half * abs(value) / limit
            x = mid if value >= 0 else mid - w
            color = "#2a9d4a" if value >= 0 else "#d0453a"
            parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{height - 4}" fill="{color}"/>')
            parts.append(f'<text x="{width - 4}" y="{y + 12}" text-anchor="end">{_signed(value)}</text>')
    return "".join(parts) + "</svg>"


def _bucket_svg(rows: list[dict], key: str, width: int = 420) -> str:
    """Grouped bars (baseline grey, CAT blue) of one measure per bucket, 0-100."""
    group_w = width / max(len(rows), 1)
    height = 140
    parts = [f'<svg width="{width}" height="{height + 34}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="sans-serif" font-size="11">']
    for k, row in enumerate(rows):
        x0 = k * group_w + group_w * 0.15
        for j, (role, color) in enumerate((("baseline", "#999"), ("cat", "#2f6db5"))):
            value = row.get(f"{key}_{role}")
            if value is None or not math.isfinite(value):
                continue
            h = height * value / 100
            x = x0 + j * group_w * 0.35
            parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{group_w * 0.33:.1f}" height="{h:.1f}" fill="{color}"/>')
            parts.append(f'<text x="{x + group_w * 0.16:.1f}" y="{height - h - 3:.1f}" text-anchor="middle">{value:.0f}</text>')
        parts.append(f'<text x="{k * group_w + group_w / 2:.1f}" y="{height + 14}" text-anchor="middle">'
                     f'{html.escape(row["bucket"])}</text>')
        parts.append(f'<text x="{k * group_w + group_w / 2:.1f}" y="{height + 28}" text-anchor="middle" fill="#666">'
                     f'{row["pairs"]} pairs</text>')
    return "".join(parts) + "</svg>"


def _example_cards(indices: np.ndarray, report: Report, data: ReportInput, roles: dict, gain: bool) -> str:
    """Image | baseline CAM | CAT CAM of the ground-truth label whose probability changed most."""
    examples = []
    for i in indices:
        try:
            image = load_image(data.paths[i])
        except ImageLoadError:
            continue
        truth = np.flatnonzero(data.targets[i] == 1)
        change = data.probabilities["cat"][i] - data.probabilities["baseline"][i]
        candidates = truth if len(truth) else np.arange(len(data.class_names))
        label = int(candidates[np.argmax(change[candidates] if gain else -change[candidates])])
        examples.append((int(i), image, label, truth))
    maps = {role: _label_maps(loaded, [(image, label) for _, image, label, _ in examples])
            for role, loaded in roles.items()}
    cards = []
    for k, (i, image, label, truth) in enumerate(examples):
        scale = render.symmetric_scale([maps[role][k] for role in roles])
        thumb = cv2.resize(image, (round(THUMB * image.shape[1] / image.shape[0]), THUMB), interpolation=cv2.INTER_AREA)
        panels = [f'<img src="{_png(thumb)}" title="{html.escape(str(data.paths[i]))}">']
        for role in ("baseline", "cat"):
            p = data.probabilities[role][i, label]
            shown = render.overlay(thumb, maps[role][k], 0.6, render.DIVERGING, scale)
            share = render.own_share(maps[role][k], scale)
            faint = f"; reaches {share:.0%} of the scale" if share < render.FAINT_SHARE else ""
            panels.append(f'<figure><img src="{_png(shown)}"><figcaption>{role}: p={p:.2f}{faint}</figcaption></figure>')
        bar = colour_bar(SHOWN, scale, render.DIVERGING)
        panels.append(f'<figure><img class="bar" src="{_png(bar)}"><figcaption>logit units</figcaption></figure>')
        names = ", ".join(data.class_names[c] for c in truth) or "none"
        cards.append(
            f'<div class="card"><div class="row">{"".join(panels)}</div>'
            f'<div class="cap"><b>{html.escape(data.paths[i].name)}</b> map of <b>{html.escape(data.class_names[label])}</b>; '
            f'truth: {html.escape(names)}; F1 {_fmt(report.f1["baseline"][i], 2)} → {_fmt(report.f1["cat"][i], 2)} '
            f'({_signed(report.f1_gain[i], 2)}), probability gain {_signed(report.probability_gain[i], 2)}</div></div>')
    return "".join(cards)


def _label_maps(loaded: inference.LoadedModel, items: list[tuple[np.ndarray, int]], batch: int = 16) -> list[np.ndarray]:
    """The complete CAM (sum over levels, logit units) of one label per image, batched."""
    meta, maps = loaded.meta, []
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        tensor = torch.cat([preprocess(image, meta.input_size, meta.mean, meta.std) for image, _ in chunk])
        with torch.no_grad():
            combined = class_activation_maps(loaded.model, tensor.to(loaded.device)).combined
        maps.extend(combined[k, label] for k, (_, label) in enumerate(chunk))
    return maps


def _how_many(images: np.ndarray, side: str) -> str:
    """How many images the list draws from; the ones shown are the first :data:`TOP`."""
    count = f"{len(images)} image{'s' * (len(images) != 1)} where CAT does {side} (F1 gain, ties: probability gain)"
    return count + (f"; the {TOP} largest shown" if len(images) > TOP else "")


def render_html(report: Report, data: ReportInput, roles: dict, summary: dict) -> str:
    models = summary["models"]
    head = "".join(f"<th>{k}</th>" for k in SUMMARY_KEYS)
    table = [f"<tr><th>model</th>{head}</tr>"]
    for role in ("baseline", "cat"):
        m = models.get(role, {})
        table.append(f"<tr><td>{role}: {html.escape(roles[role].meta.model)}</td>"
                     + "".join(f"<td>{_fmt(m.get(k))}</td>" for k in SUMMARY_KEYS) + "</tr>")
    if models.get("baseline") and models.get("cat"):
        deltas = [models["cat"][k] - models["baseline"][k] if models["cat"][k] is not None
                  and models["baseline"][k] is not None else None for k in SUMMARY_KEYS]
        table.append("<tr><td><b>CAT − baseline</b></td>"
                     + "".join(f"<td><b>{_signed(d)}</b></td>" for d in deltas) + "</tr>")
    levels = models.get("cat", {}).get("levels") or {}
    levels_text = ", ".join(f"{lv} alone {_fmt(v)}" for lv, v in levels.items())
    per_class = sorted(report.per_class, key=lambda r: -r.get("delta", 0) if math.isfinite(r.get("delta", 0)) else 1e9)
    delta_rows = [(f"{r['label']} ({r['positives']})", r.get("delta", float("nan"))) for r in per_class]
    size_tables = []
    for key, title in (("pixels", f"largest object's area in pixels of the {report.input_size}² input"),
                       ("share", "largest object's share of the image area")):
        rows = report.by_size[key]
        body = "".join(
            f"<tr><td>{html.escape(r['bucket'])}</td><td>{html.escape(r['range'])}</td><td>{r['pairs']}</td>"
            f"<td>{_fmt(r['recall_baseline'])}</td><td>{_fmt(r['recall_cat'])}</td>"
            f"<td>{_fmt(r['AP_baseline'])}</td><td>{_fmt(r['AP_cat'])}</td></tr>" for r in rows)
        size_tables.append(
            f"<h3>By {title}</h3><table><tr><th>bucket</th><th>range</th><th>positive pairs</th>"
            f"<th>recall baseline</th><th>recall CAT</th><th>AP baseline</th><th>AP CAT</th></tr>{body}</table>"
            f"<div class='row'><div><p>recall at {report.threshold:g} ({LEGEND})</p>{_bucket_svg(rows, 'recall')}</div>"
            f"<div><p>AP ({LEGEND})</p>{_bucket_svg(rows, 'AP')}</div></div>")
    better, worse = gains(report), losses(report)
    failed = "".join(f"<li>{html.escape(why)}</li>" for why in summary["failed_images"].values())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>catviz: CAT vs baseline</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 8px 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} .row {{ display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }}
.card {{ border: 1px solid #ddd; padding: 6px; margin: 6px 0; }} .card img {{ height: {SHOWN}px; }} figure {{ margin: 0; }} figcaption, .cap {{ font-size: 12px; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>CAT vs baseline over {html.escape(summary.get('dataset', ''))}</h1>
<p>{len(report.images)} of {summary['images']} images scored; {summary['failed']} could not be decoded.
Threshold {report.threshold:g}. Baseline: {html.escape(str(roles['baseline'].path))}. CAT: {html.escape(str(roles['cat'].path))}.</p>
<h2>Summary</h2><table>{''.join(table)}</table>
<p class="note">Same numbers as <code>catviz-eval</code> for these checkpoints and data. {'CAT levels: ' + levels_text if levels_text else ''}</p>
<h2>Per class: AP of CAT − AP of the baseline (positives in brackets)</h2>{_bars_svg(delta_rows)}
<h2>By object size</h2>
<p class="note">Each positive (image, label) is placed by its largest instance. Recall: share of the bucket's
positive pairs at or above the threshold. AP: per label, the bucket's positives against every image without the
label (positives in other buckets left out), averaged over labels with a positive in the bucket.</p>
{''.join(size_tables)}
<h2>Largest gains of CAT</h2>
<p class="note">Gain = per-image F1 of CAT − F1 of the baseline at the threshold; ties broken by the probability
gain (summed change of probability on the ground-truth labels minus that on the others). Maps: complete CAMs
(sum over levels), red adds to the label's logit, blue takes away, one scale per pair (its colour bar
beside the maps, in logit units).</p>
<p>{_how_many(better, "better")}</p>
{_example_cards(better[:TOP], report, data, roles, gain=True)}
<h2>Largest losses</h2>
<p>{_how_many(worse, "worse")}</p>
{_example_cards(worse[:TOP], report, data, roles, gain=False)}
{'<h2>Images that could not be decoded</h2><ul>' + failed + '</ul>' if failed else ''}
</body></html>
"""
