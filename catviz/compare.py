"""``catviz-eval C1 C2 ... --compare --report DIR``: the Dataset tab's report, headless.

Any number (two or more) of checkpoints over one split, each against a reference
(``--reference NAME``, else the first baseline model given, else the first checkpoint):
Table 3 live with intervals (:mod:`catviz.study`, :mod:`catviz.stats`) and the complete
CAMs aggregated over the split (:mod:`catviz.explain_study`). Writes ``DIR/report.json``
(the contract in docs/compare.md), ``scores.npz`` (targets and every model's
probabilities, to recompute any number) and ``report.html``: a self-contained page (PNGs
embedded as base64). With two models, the two-model report too (columns ``baseline`` =
the reference, ``cat`` = the other): ``summary.json``, ``per_class.json``,
``by_size.json``, ``images.json`` (every scored image ranked by the gain) and, in the page,
per-class AP deltas, the size buckets and the 20 largest gains and losses with both
models' class activation maps. Definitions: :mod:`catviz.dataset_report`.

Under ``torchrun --nproc_per_node K -m catviz.eval_cli ... --compare`` each process runs
the pass and the explanations over one shard of the images (gloo on CPUs, NCCL on GPUs;
:mod:`catviz.dataset_shards`), all with the one results cache; rank 0 gathers them and
alone checks the report folder and writes the report, with the numbers of one process.
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
from catviz.models.checkpoint import TEMP_SUFFIX, CheckpointError, read_meta
from catviz.models.device import resolve_device
from catviz.models.preprocess import ImageLoadError, load_image, preprocess
from catviz.train_cli.data import DatasetError
from catviz.train_cli.distributed import DistInfo, env_info, gather_to_main, init_distributed
from catviz.train_cli.errors import RunError, UsageError, check_output_path, int_range, range_text
from catviz.train_cli.evaluate import format_table, row_names

from . import inference, render, stats, study
from .dataset_report import (
    SUMMARY_KEYS,
    Report,
    ReportInput,
    gains,
    losses,
    report_json,
)
from .dataset_results import Progress, file_sha256, report_input, run_dataset
from .dataset_shards import GATHER_TIMEOUT, merge_shards, run_shard
from .dataset_source import open_dataset
from .explain_study import explain_models
from .figure import colour_bar
from .roles import role_of

REPORT_FILES = ("summary.json", "per_class.json", "by_size.json", "images.json", "report.html")
#: Written for any number of models (report.html: the two-model page with these sections, or theirs alone).
STUDY_FILES = ("report.json", "scores.npz")
TOP = 20
LEGEND = "<span style='color:#999'>■</span> baseline, <span style='color:#2f6db5'>■</span> CAT"
THUMB = 128
SHOWN = 192  # the page draws every card image this tall (CSS below)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("comparing models over the dataset (Table 3 live)")
    group.add_argument("--compare", action="store_true",
                       help="compare two or more checkpoints, each against a reference: per class, per object size, "
                       "per level, per image, every difference with a 95%% interval (paired bootstrap over images); "
                       "needs --report DIR, where the report is written")
    group.add_argument("--report", metavar="DIR", type=Path,
                       help="with --compare: write report.json, scores.npz and report.html (two models: also the "
                       "JSON files of the two-model report) into DIR")
    group.add_argument("--reference", metavar="NAME",
                       help="with --compare: the model the others are compared with, by checkpoint path, file name "
                       "(with or without .safetensors) or model name (default: the first baseline model given, "
                       "else the first checkpoint)")
    group.add_argument("--bootstrap", metavar="N", type=int_range(stats.MIN_RESAMPLES, stats.MAX_RESAMPLES),
                       default=stats.RESAMPLES,
                       help="with --compare: bootstrap resamples of the images, in "
                       f"{range_text(stats.MIN_RESAMPLES, stats.MAX_RESAMPLES)} (default %(default)s)")
    group.add_argument("--seed", metavar="S", type=int_range(0, 2**32 - 1), default=stats.SEED,
                       help="with --compare: the bootstrap's random seed, in [0, 2**32 - 1] (default %(default)s); "
                       "the same seed gives the same intervals")
    group.add_argument("--no-explanations", action="store_true",
                       help="with --compare: skip the explanations aggregated over the split (complete CAMs of every "
                       "true label: layer share, evidence totals, share in the boxes, pointing game)")
    group.add_argument("--overwrite", action="store_true", help="replace the files of an existing --report folder or an existing --json file")


def check_arguments(args: argparse.Namespace) -> None:
    """:class:`UsageError` (exit 2) before any work: wrong count, the same checkpoint twice,
    bootstrap settings out of range, missing or occupied report folder."""
    if args.json and args.compare:
        raise UsageError("--json does not apply to --compare: the report folder (--report DIR) holds its JSON")
    if not args.compare:
        for flag, given in (("--report", args.report), ("--reference", args.reference),
                            ("--no-explanations", args.no_explanations),
                            ("--bootstrap", args.bootstrap != stats.RESAMPLES), ("--seed", args.seed != stats.SEED)):
            if given:
                raise UsageError(f"{flag}: need --compare (the report compares checkpoints)")
        return
    if len(args.checkpoints) < 2:
        raise UsageError(f"--compare takes two or more checkpoints (the first baseline, or --reference, is the "
                         f"reference), got {len(args.checkpoints)}")
    seen: dict[Path, str] = {}
    for path in args.checkpoints:
        resolved = Path(path).resolve()
        if resolved in seen:
            raise UsageError(f"--compare: {path} is given twice (as {seen[resolved]} and {path}); a model is not "
                             "compared with itself")
        seen[resolved] = path
    if args.report is None:
        raise UsageError("--compare needs --report DIR")
    if not env_info().is_main:  # under torchrun rank 0 alone writes the report, and checks its folder
        return
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
    """Run every model over the split (cached, see ``catviz.dataset_results``), compare each
    with the reference (:mod:`catviz.study`) and write the report."""
    device = resolve_device(args.device)
    info = init_distributed(device, GATHER_TIMEOUT)  # under torchrun: this process's shard, rank 0 writes
    try:
        return _run(args, device, info)
    finally:
        if info.enabled:
            torch.distributed.destroy_process_group()


def _run(args: argparse.Namespace, device: torch.device, info: DistInfo) -> int:
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    loaded = [inference.load_model(path, device) for path in args.checkpoints]
    names = row_names([m.meta.model for m in loaded], [m.path for m in loaded])
    reference = _reference(args.reference, loaded, names)
    _refuse_duplicates_and_other_labels(loaded, reference)
    if len(loaded) == 2:  # the two-model report's columns: "baseline" (the reference) and "cat"
        keys = ["baseline" if k == reference else "cat" for k in range(2)]
        if info.is_main and reference == 1 and args.reference is None:  # said once, by rank 0
            print(f"catviz-eval: {loaded[0].path} is the CAT model and {loaded[1].path} the baseline "
                  "(taken from their metadata)", file=sys.stderr)
        elif info.is_main and {role_of(m.meta) for m in loaded} != {"baseline", "cat"}:  # e.g. an ablation: said
            print(f"catviz-eval: {loaded[reference].path} takes the 'baseline' column (the reference) and "
                  f"{loaded[1 - reference].path} the 'cat' column", file=sys.stderr)
    else:
        keys = names
    models = dict(zip(keys, loaded, strict=True))
    titles = dict(zip(keys, names, strict=True))
    dataset = args.dataset or read_meta(args.checkpoints[0]).dataset
    if not dataset:
        raise DatasetError("the checkpoint does not say which dataset it was trained on; pass --dataset")
    source = open_dataset(dataset, args.data_root, args.limit_images, args.keep_unannotated)
    bars: list[tqdm] = []

    def progress(p: Progress) -> None:
        if not bars:
            desc = f"compare (shard 1 of {info.world_size})" if info.enabled else "compare"
            bars.append(tqdm(total=p.total, desc=desc, unit="img", leave=False))
        bars[0].update(p.done - bars[0].n)

    explained = None
    if info.enabled:
        shard = run_shard(source, models, info, args.batch_size, args.workers, not args.no_explanations,
                          progress if info.is_main else None)
        shards = gather_to_main(shard, info, GATHER_TIMEOUT)
        if not info.is_main:
            return 0
        results, explained = merge_shards(source, shards)
    else:
        results = run_dataset(source, models, args.batch_size, args.workers, progress=progress)
    for bar in bars:
        bar.close()
    data = report_input(results)
    if not data.scored.any():
        raise RunError(f"no image of the {source.split.name} split could be scored ({len(data.failed)} could not be "
                       "decoded); nothing written")
    try:
        found, files = export_report(args.report, results, data, models, titles, keys[reference], args.bootstrap,
                                     args.seed, not args.no_explanations, args.batch_size, args.workers,
                                     explained=explained)
    except OSError as err:
        raise RunError(f"cannot write the report into {args.report}: {err.strerror or err}") from err
    report = found.report
    rows = [(f"{key}: {name}" if len(titles) == 2 else name, report.summary[key])  # two: the columns' roles too
            for key, name in titles.items() if report.summary[key]]
    if rows:
        print(format_table(rows))
    for row in found.comparisons:
        print(f"{row['b']} − {row['a']}: ΔmAP {_signed(row['delta_mAP'], 2)} {_ci_text(row['ci95'])}, "
              f"ΔCF1 {_signed(row['delta_CF1'], 2)} {_ci_text(row['ci95_CF1'])}, "
              f"ΔOF1 {_signed(row['delta_OF1'], 2)} {_ci_text(row['ci95_OF1'])}; labels fixed "
              f"{row['labels']['fixed']}, broken {row['labels']['broken']} (exact McNemar p = {row['labels']['p']:.3g})")
    print(f"95% intervals: paired bootstrap over the images, {args.bootstrap} resamples, seed {args.seed}")
    print(f"\nscored on the {source.split.name} split: {len(report.images)} of {len(data.paths)} images" +
          (f" (the first {len(data.paths)}, --limit-images {args.limit_images})" if args.limit_images else "") +
          (f"; {len(report.failed)} could not be decoded (unreadable images, listed in report.json)" if report.failed else "") +
          (f"; {results.computed} computed, the rest from the cache" if results.computed < len(data.paths) else "") +
          (f"; {info.world_size} processes, each a shard of the images" if info.enabled else ""))
    print(f"report written to {args.report}/ ({', '.join(files)})")
    return 0


def export_report(folder: Path, results, data: ReportInput, models: dict, titles: dict[str, str], reference: str,
                  resamples: int = stats.RESAMPLES, seed: int = stats.SEED, explain: bool = True, batch_size: int = 32,
                  workers: int = 0, threshold: float = 0.5,
                  explained: dict[str, study.ExplanationPairs] | None = None) -> tuple[study.Study, tuple[str, ...]]:
    """The study of a finished pass (``results``, ``data``) written into ``folder``: what
    ``--compare --report`` and the app's Dataset tab (Write report…) both write. ``explained``:
    the scored images' explanation pairs when already computed (the shards of a torchrun pass)."""
    found = study.build_study(data, titles, reference, resamples, seed, threshold)
    explanations = None
    if explain:
        if explained is None:
            explained = explain_models(results.source, models, found.report.images, results.sizes, batch_size,
                                       workers)
        explanations = study.aggregate_explanations(explained, titles, reference, found.report, resamples, seed)
    described = [{"checkpoint": str(m.path), "sha256": results.scores[k].sha256, "model": m.meta.model}
                 for k, m in models.items()]
    files = write_report(folder, found, data, models, results.source.describe(), described, explanations)
    return found, files


def _reference(name: str | None, loaded: list[inference.LoadedModel], names: list[str]) -> int:
    """The reference's index: ``--reference`` by path, file name or model name (exactly one
    must match), else the first baseline model, else the first checkpoint."""
    if name is None:
        return next((k for k, m in enumerate(loaded) if role_of(m.meta) == "baseline"), 0)

    def matches(m: inference.LoadedModel) -> bool:
        return name in (str(m.path), m.path.name, m.path.stem, m.meta.model) or \
            Path(name).resolve() == m.path.resolve()

    hits = [k for k, m in enumerate(loaded) if matches(m)]
    if len(hits) != 1:
        which = "; ".join(f"{m.path} (model {m.meta.model})" for m in loaded)
        raise UsageError(f"--reference {name!r} matches {'none' if not hits else 'several'} of the checkpoints: "
                         f"{which}" + ("; name its file instead" if hits else ""))
    return hits[0]


def _refuse_duplicates_and_other_labels(loaded: list[inference.LoadedModel], reference: int) -> None:
    """The same file content given twice is said (usage error); labels must be the reference's."""
    seen: dict[str, Path] = {}
    for m in loaded:
        digest = file_sha256(m.path)
        if digest in seen:
            raise UsageError(f"--compare: {seen[digest]} and {m.path} are the same checkpoint (sha256 "
                             f"{digest[:12]}...); a model is not compared with itself")
        seen[digest] = m.path
    ref = loaded[reference]
    for m in loaded:
        if m.meta.class_names != ref.meta.class_names:
            raise CheckpointError(
                f"{m.path}: its {m.meta.num_classes} labels ({', '.join(m.meta.class_names[:5])} ...) differ from "
                f"those of the reference {ref.path} ({', '.join(ref.meta.class_names[:5])} ...)")


def _ci_text(ci) -> str:
    return "[–]" if ci is None or ci[0] is None or not math.isfinite(ci[0]) else \
        f"[{_signed(ci[0], 2)}, {_signed(ci[1], 2)}]"


# writing ---------------------------------------------------------------------------------
def write_report(folder: Path, found: study.Study, data: ReportInput, models: dict, dataset: str,
                 described: list[dict], explanations: dict | None) -> tuple[str, ...]:
    """All of the report's files or none: each is written into a staging folder inside
    ``folder`` first and moved into place only when every one is complete, so a full disk
    or an interrupt leaves the folder as it was (the staging folder is removed). Two
    models: :data:`REPORT_FILES` too (the two-model report, columns ``baseline`` and ``cat``)."""
    report = found.report
    contract = study.study_json(found, data, described)
    contract["dataset"] = dataset
    contract["explanations"] = explanations
    contract["failed_images"] = {str(data.paths[i]): why for i, why in sorted(report.failed.items())}
    contents: dict[str, object] = {"report.json": contract}  # JSON objects, or the page's text
    sections = study_html(contract)
    if set(models) == {"baseline", "cat"}:
        objects = report_json(report, data)
        objects["summary"]["dataset"] = dataset
        objects["summary"]["checkpoints"] = {role: str(m.path) for role, m in models.items()}
        contents |= {f"{name}.json": objects[name] for name in ("summary", "per_class", "by_size", "images")}
        contents["report.html"] = render_html(report, data, models, objects["summary"], sections)
    else:
        contents["report.html"] = study_page(contract, sections)
    names = (*(n for n in REPORT_FILES if n in contents), *STUDY_FILES)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".report.", suffix=TEMP_SUFFIX))
    try:
        for name in names:
            if name == "scores.npz":
                write_scores(staging / name, found, data)
            elif name == "report.html":
                (staging / name).write_text(contents[name], encoding="utf-8")
            else:  # streamed: at COCO scale images.json is 10^8 bytes, not held twice more as text
                with open(staging / name, "w", encoding="utf-8") as f:
                    json.dump(contents[name], f, indent=1, ensure_ascii=False)
                    f.write("\n")
        for name in names:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return names


def write_scores(path: Path, found: study.Study, data: ReportInput) -> None:
    """``scores.npz``: ``targets`` (images x labels, 1/0/-1) and ``probabilities`` (models x
    images x labels) over the scored images, ``models`` and ``class_names`` beside them, so
    every number of the report can be recomputed."""
    scored = found.report.images
    with open(path, "wb") as f:
        np.savez(f, targets=data.targets[scored].astype(np.int8),
                 probabilities=np.stack([data.probabilities[k][scored] for k in found.names]).astype(np.float32),
                 models=np.array(list(found.names.values()), dtype=str),
                 class_names=np.array(data.class_names, dtype=str),
                 images=np.array([str(data.paths[i]) for i in scored], dtype=str),
                 reference=np.array([found.names[found.reference]], dtype=str))


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


def render_html(report: Report, data: ReportInput, roles: dict, summary: dict, sections: str = "") -> str:
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
{sections}
{'<h2>Images that could not be decoded</h2><ul>' + failed + '</ul>' if failed else ''}
</body></html>
"""


# any number of models: the sections from report.json ---------------------------------------
def _v(value, digits: int = 1) -> str:
    return _fmt(value if value is not None else float("nan"), digits)


def _d(value, ci, digits: int = 1) -> str:
    """A difference with its interval; a zero-spanning interval is marked (≈0)."""
    if value is None:
        return "–"
    mark = " <span class='zero' title='the 95% interval contains 0'>≈0</span>" if ci and ci[0] is not None \
        and not (ci[0] > 0 or ci[1] < 0) else ""
    return f"{_signed(value, digits)} {_ci_text(ci if ci and ci[0] is not None else None)}{mark}"


def _error_bars_svg(rows: list[tuple[str, float | None, list | None]], width: int = 620) -> str:
    """Per row a point (the difference) and a line (its 95 % interval); grey when it spans 0."""
    ends = [abs(x) for _, v, ci in rows for x in ([v] + list(ci or [])) if x is not None and math.isfinite(x)]
    limit = max(ends, default=1.0) or 1.0
    height, label_w = 16, 150
    half = (width - label_w - 90) / 2
    mid = label_w + half

    def x(value: float) -> float:
        return mid + half * value / limit

    parts = [f'<svg width="{width}" height="{height * len(rows) + 4}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="sans-serif" font-size="11">',
             f'<line x1="{mid}" x2="{mid}" y1="0" y2="{height * len(rows)}" stroke="#888"/>']
    for k, (name, value, ci) in enumerate(rows):
        y = k * height + height / 2
        parts.append(f'<text x="{label_w - 6}" y="{y + 4}" text-anchor="end">{html.escape(name[:24])}</text>')
        if value is None or not math.isfinite(value):
            continue
        zero = not ci or ci[0] is None or not (ci[0] > 0 or ci[1] < 0)
        color = "#999" if zero else ("#2a9d4a" if value > 0 else "#d0453a")
        if ci and ci[0] is not None:
            parts.append(f'<line x1="{x(ci[0]):.1f}" x2="{x(ci[1]):.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(value):.1f}" cy="{y}" r="3.5" fill="{color}"/>')
        parts.append(f'<text x="{width - 4}" y="{y + 4}" text-anchor="end">{_signed(value)}{" ≈0" if zero else ""}</text>')
    return "".join(parts) + "</svg>"


def study_html(contract: dict) -> str:
    """The N-model sections: models, comparisons, per class and per size with intervals, explanations."""
    boot = contract["bootstrap"]
    keys = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
    head = "".join(f"<th>{k}</th>" for k in keys)
    models = "".join(
        f"<tr><td>{html.escape(m['name'])}{' (reference)' if m['reference'] else ''}</td>"
        + "".join(f"<td>{_v(m.get(k))}</td>" for k in keys)
        + "<td>" + ", ".join(f"{html.escape(lv)} {_v(v['mAP'])} {_ci_text(v['ci95'])}" for lv, v in m["levels"].items())
        + "</td></tr>" for m in contract["models"])
    comparisons = "".join(
        f"<tr><td>{html.escape(c['b'])} − {html.escape(c['a'])}</td><td>{_d(c['delta_mAP'], c['ci95'], 2)}</td>"
        f"<td>{_d(c['delta_CF1'], c['ci95_CF1'], 2)}</td><td>{_d(c['delta_OF1'], c['ci95_OF1'], 2)}</td>"
        f"<td>{c['labels']['fixed']} / {c['labels']['broken']} (p = {c['labels']['p']:.3g})</td>"
        f"<td>{c['decisions']['fixed']} / {c['decisions']['broken']} (p = {c['decisions']['p']:.3g})</td></tr>"
        for c in contract["comparisons"])
    others = [c["b"] for c in contract["comparisons"]]
    per_class = "".join(
        f"<h3>{html.escape(name)} − {html.escape(contract['reference'])}: AP per class (positives)</h3>"
        + _error_bars_svg([(f"{r['label']} ({r['positives']})", r["delta"].get(name), r["ci95"].get(name))
                           for r in contract["per_class"]]) for name in others)
    spanning = {name: [r["label"] for r in contract["per_class"] if r["spans_zero"].get(name)] for name in others}
    spans = "".join(f"<li>{html.escape(n)}: {html.escape(', '.join(v)) or 'none'}</li>" for n, v in spanning.items())
    sizes = []
    for kind, rows in contract["by_size"].items():
        body = "".join(f"<tr><td>{html.escape(r['bucket'])}</td><td>{html.escape(r['range'])}</td><td>{r['pairs']}</td>"
                       + "".join(f"<td>{_v(r['AP'].get(m['name']))}</td>" for m in contract["models"])
                       + "".join(f"<td>{_d(r['delta'].get(n), r['ci95'].get(n))}</td>" for n in others) + "</tr>"
                       for r in rows)
        sizes.append(f"<h3>By {'area in input pixels' if kind == 'pixels' else 'share of the image'}</h3><table><tr>"
                     "<th>bucket</th><th>range</th><th>pairs</th>"
                     + "".join(f"<th>AP {html.escape(m['name'])}</th>" for m in contract["models"])
                     + "".join(f"<th>ΔAP {html.escape(n)} [95%]</th>" for n in others) + f"</tr>{body}</table>")
    return f"""<h2>Every model against {html.escape(contract['reference'])}, with 95% intervals</h2>
<p class="note">Intervals: {boot['method']}, {boot['resamples']} resamples, seed {boot['seed']} (<code>--bootstrap</code>,
<code>--seed</code>); ≈0 marks an interval that contains 0. Fixed / broken: true labels the reference misses and
the model finds / the reference finds and the model misses (decisions: every counted image-label decision), with the
exact McNemar p-value (pairs taken as independent). Levels: each classifier's logits alone.</p>
<table><tr><th>model</th>{head}<th>levels alone (mAP [95%])</th></tr>{models}</table>
<table><tr><th>comparison</th><th>ΔmAP [95%]</th><th>ΔCF1 [95%]</th><th>ΔOF1 [95%]</th><th>labels fixed / broken</th>
<th>decisions fixed / broken</th></tr>{comparisons}</table>
<h2>Per class, with intervals</h2>{per_class}
<p class="note">Classes whose interval contains 0:</p><ul>{spans}</ul>
<h2>By object size, with intervals</h2>{''.join(sizes)}
{_explanations_html(contract.get('explanations'))}"""


def _explanations_html(ex: dict | None) -> str:
    if not ex:
        return ""
    share_rows, evidence_rows = [], []
    for model, levels in ex["layer_share"].items():
        for level, buckets in levels.items():
            for bucket, row in buckets.items():
                sources = [k for k in row if k not in ("logit", "n", "ci95")]
                share_rows.append(
                    f"<tr><td>{html.escape(model)}</td><td>{html.escape(level)}</td><td>{html.escape(bucket)}</td>"
                    f"<td>{row['n']}</td><td>{_v(row['logit'], 2)}</td><td>"
                    + ", ".join(f"{html.escape(s)} {_v(row[s], 2)} {_ci_text(row['ci95'][s])}" for s in sources)
                    + "</td></tr>")
    for model, levels in ex["evidence"].items():
        for level, buckets in levels.items():
            for bucket, row in buckets.items():
                evidence_rows.append(
                    f"<tr><td>{html.escape(model)}</td><td>{html.escape(level)}</td><td>{html.escape(bucket)}</td>"
                    + "".join(f"<td>{_v(row[m]['mean'], 2)} {_ci_text(row[m]['ci95'])}</td>"
                              for m in ("positive", "negative", "in_box", "in_box_chance", "pointing", "pointing_chance"))
                    + "</tr>")
    contrasts = []
    for kind, title in (("fine_minus_coarse", "finest − coarsest level of each model"),
                        ("against_reference", "each model's finest level − the reference's finest")):
        for model, groups in ex[kind].items():
            levels = groups["levels"]
            for bucket, row in groups.items():
                if bucket == "levels":
                    continue
                contrasts.append(f"<tr><td>{title}</td><td>{html.escape(model)} ({' − '.join(levels)})</td>"
                                 f"<td>{html.escape(bucket)}</td>"
                                 + "".join(f"<td>{_d(row[m]['mean'], row[m]['ci95'], 3)}</td>" for m in ("in_box", "pointing"))
                                 + "</tr>")
    return f"""<h2>Explanations over the split</h2>
<p class="note">Complete CAMs of every true (image, label) pair, per level, by the largest object's size bucket
(mean over pairs [95% bootstrap interval over images]). Layer share: the level logit split by source layer and
offset (the parts sum to the logit). Positive / negative: the map's positive and negative parts (mean over the
grid, logit units). At token depth (each level's own grid): in box = share of the positive evidence inside the
label's boxes (cells weighted by their covered fraction), against its chance (the boxes' share of the image);
pointing = the largest cell touches a box, against its chance (the share of cells that touch one).</p>
<h3>Layer share of the level logit</h3><table><tr><th>model</th><th>level</th><th>bucket</th><th>pairs</th>
<th>logit</th><th>sources</th></tr>{''.join(share_rows)}</table>
<h3>Evidence and localisation</h3><table><tr><th>model</th><th>level</th><th>bucket</th><th>positive</th>
<th>negative</th><th>in box</th><th>chance</th><th>pointing</th><th>chance</th></tr>{''.join(evidence_rows)}</table>
<h3>Paired contrasts</h3><table><tr><th>contrast</th><th>model</th><th>bucket</th><th>Δ in box</th><th>Δ pointing</th></tr>
{''.join(contrasts)}</table>"""


def study_page(contract: dict, sections: str) -> str:
    """The report page for three or more models: the sections above, self-contained."""
    failed = "".join(f"<li>{html.escape(why)}</li>" for why in contract["failed_images"].values())
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>catviz: {len(contract['models'])} models compared</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 8px 0; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} .note {{ color: #555; font-size: 13px; }} .zero {{ color: #999; }}
</style></head><body>
<h1>{len(contract['models'])} models over {html.escape(contract.get('dataset', ''))}</h1>
<p>{contract['images_scored']} of {contract['images_total']} images scored. Threshold {contract['threshold']:g}.
Reference: {html.escape(contract['reference'])}.</p>
{sections}
{'<h2>Images that could not be decoded</h2><ul>' + failed + '</ul>' if failed else ''}
</body></html>
"""
