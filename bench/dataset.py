"""Dataset comparison throughput and GUI responsiveness: ``python bench/dataset.py``.

1. **Runner vs bare forward.** ``catviz.dataset_results.run_dataset`` over a split with an
   empty cache (everything computed: sigmoid, copies to numpy, chunked cache writes,
   progress) against a bare loop over *the same DataLoader* that only runs both models'
   forward passes, on the same device, both on a worker thread as in the app. Rounds
   alternate bare / runner and the best of each is kept, so a busy machine penalises both
   alike. Target: ratio >= 0.9.
2. **GUI tick latency.** The Dataset tab (offscreen Qt) runs the same pass on its worker
   thread while a 10 ms QTimer on the GUI thread records the gaps between its ticks.
   Target: max and p99 gap < 100 ms.

Defaults: the demo val split (600 images, 128²) with the bundled demo models, batch 32,
no DataLoader worker processes (as the app). Writes bench/results/dataset-<device>.json.

``--coco-scale``: instead, COCO 2014 val's size. A synthetic COCO-format split (40,504
64x48 JPEGs, 80 labels, boxes; :func:`coco_scale_set`) is generated once under
``--scale-root`` (not shipped) and scored by randomly initialised tiny models at their own
small input (``--scale-input``, 32). Stages (``--scale-stages``): ``pass`` (empty cache:
img/s, cache size on disk), ``report`` (``catviz-eval --compare``'s files without the
explanations: build time), ``explain`` (the explanations over the first images, rate and
extrapolation), ``wide`` (the report of ``--scale-report-models`` models, the extra ones
synthetic), ``table`` (the Dataset tab's per-image table with every image as a row: filter,
scroll, sort, rows painted), ``ratio`` (runner vs bare forward, as 1.). Every stage records
the load, the resident memory and the peak so far, merged into
bench/results/dataset-coco-scale-<device>.json as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2
import numpy as np
import torch

from catviz import demo
from catviz.dataset_results import make_loader, run_dataset
from catviz.dataset_source import open_dataset
from catviz.inference import load_model
from catviz.models.checkpoint import atomic_write_text
from catviz.models.device import resolve_device
from catviz.train_cli.errors import int_range


def in_worker_thread(fn, *args):
    """Run ``fn`` on a worker thread, as the app does. (On the 2-core CI machine torch's forward
    ran ~3x faster on a non-main thread than on the main one; both loops run alike here.)"""
    result = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)))
    thread.start()
    thread.join()
    return result[0]


def bare_forward(source, models, batch_size: int, workers: int, device) -> float:
    """Images/s of both models' forward passes over the runner's own DataLoader, nothing else."""
    first = next(iter(models.values()))  # every model here shares its input size and normalisation
    loader = make_loader(source, list(range(len(source.split.samples))), first.meta, batch_size, workers)
    start, count = time.perf_counter(), 0
    with torch.no_grad():
        for batch, indices, _, failures in loader:
            count += len(indices) + len(failures)
            if batch is None:
                continue
            batch = batch.to(device, non_blocking=True)
            for loaded in models.values():
                loaded.model(batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def runner(source, models, batch_size: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        results = run_dataset(source, models, batch_size, workers, Path(cache), progress=lambda p: None)
        assert results.computed == len(source.split.samples)
        return results.computed / (time.perf_counter() - start)


def gui_ticks(source_args: tuple, models, batch_size: int, interval_ms: int = 10) -> dict:
    """Gaps between ticks of a GUI-thread timer while the Dataset tab runs a full pass."""
    import pyqtgraph as pg
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from catviz.qt_dataset_view import QtDatasetView
    from catviz.state import AppState

    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication([])
    state = AppState()
    for role, loaded in models.items():
        state.set_model(role, loaded)
    with tempfile.TemporaryDirectory() as cache:
        view = QtDatasetView(state, batch_size=batch_size, cache_dir=Path(cache))
        view.resize(1280, 800)
        view.show()
        ticks: list[float] = []
        timer = QTimer()
        timer.setInterval(interval_ms)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        done, progressed = [], []
        view.progress.valueChanged.connect(lambda _: progressed.append(time.perf_counter()))
        view.report_ready.connect(lambda: done.append(time.perf_counter()))
        view.report_ready.connect(lambda: QTimer.singleShot(500, app.quit))  # keep ticking while it is drawn
        timer.start()
        start = time.perf_counter()
        view.open(*source_args)
        app.exec()
        timer.stop()
        view.shutdown()
        results = view.results
    ticks = np.array(ticks)
    during = np.diff(ticks[(ticks >= progressed[0]) & (ticks <= done[0])]) * 1000  # while the models run
    whole = np.diff(ticks) * 1000  # also opening the dataset and drawing the report
    return {"seconds": done[0] - start, "images": results.computed, "ticks": len(ticks),
            "gap_max_ms": float(during.max()), "gap_p99_ms": float(np.percentile(during, 99)),
            "gap_median_ms": float(np.median(during)), "whole_gap_max_ms": float(whole.max()),
            "whole_gap_p99_ms": float(np.percentile(whole, 99)), "timer_interval_ms": interval_ms}


# COCO scale ------------------------------------------------------------------------------
COCO_VAL_IMAGES = 40_504  # COCO 2014 val
COCO_LABELS = 80
SCALE_VERSION = 1


def rss_mib() -> float:
    """Resident memory now (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def coco_scale_set(root: Path, images: int = COCO_VAL_IMAGES, labels: int = COCO_LABELS, seed: int = 0) -> Path:
    """A COCO-format val split shaped like COCO 2014 val: ``images`` JPEGs of 64 x 48 (COCO's
    4:3), 1-12 instances each (mean ~7, as COCO's 7.3) of ~2.9 distinct labels drawn from a
    skewed distribution over ``labels`` categories (one label in ~4 instances: COCO's
    'person'), boxes from 0.1 % to 80 % of the image area (log-uniform). Generated once into
    ``root`` (reused while its ``done.json`` matches), never shipped."""
    stamp = {"version": SCALE_VERSION, "images": images, "labels": labels, "seed": seed}
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()) == stamp:
        return root
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, labels + 1) ** 0.8
    weights[0] = weights[1:].sum() / 3
    weights /= weights.sum()
    categories = [{"id": k + 1, "name": f"class{k:02d}"} for k in range(labels)]
    width, height = 64, 48
    folder = root / "images" / "val"
    folder.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    palette = rng.integers(0, 255, (labels, 3))
    for i in range(images):
        image = np.full((height, width, 3), rng.integers(0, 255, 3), np.uint8)
        distinct = rng.choice(labels, size=min(labels, 1 + rng.poisson(1.9)), replace=False, p=weights)
        for _ in range(max(1, rng.poisson(7.3))):
            label = int(rng.choice(distinct))
            share = np.exp(rng.uniform(np.log(0.001), np.log(0.8)))
            aspect = np.exp(rng.uniform(-0.7, 0.7))
            w = min(width, np.sqrt(share * width * height * aspect))
            h = min(height, share * width * height / max(w, 1e-6))
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            image[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = palette[label]
            annotations.append({"id": len(annotations), "image_id": i, "category_id": label + 1,
                                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "iscrowd": 0})
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        name = f"{i:06d}.jpg"
        cv2.imwrite(str(folder / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        entries.append({"id": i, "file_name": name, "width": width, "height": height})
    (root / "annotations").mkdir(exist_ok=True)
    text = json.dumps({"images": entries, "annotations": annotations, "categories": categories})
    for split in ("val", "train"):  # train: read by nothing here, present for the format
        atomic_write_text(root / "annotations" / f"{split}.json", text)
    atomic_write_text(done, json.dumps(stamp))
    return root


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the synthetic models'
CALIBRATION_IMAGES = 256  # the images the synthetic models' biases are set on
#: Labels a trained COCO model predicts per image at 0.5, about: what the synthetic models are set to.
LABELS_PER_IMAGE = 3


def scale_checkpoints(folder: Path, names: list[str], input_size: int, labels: int = COCO_LABELS,
                      calibration: torch.Tensor | None = None) -> list[Path]:
    """Randomly initialised tiny checkpoints (seeded) with the set's labels. With
    ``calibration`` (normalised images at ``input_size``), each label's classifier bias is
    shifted so that its logit is above 0 on ~``LABELS_PER_IMAGE``/``labels`` of them (its mean
    there plus z standard deviations below 0): untouched, random models predict about half
    the labels, which made the report's per-image file ~20x larger than trained models'."""
    from statistics import NormalDist

    from catviz import models as registry
    from catviz.models.checkpoint import CheckpointMeta, save_checkpoint

    paths = []
    for k, name in enumerate(names):
        path = folder / f"{name}-{input_size}{'-calibrated' if calibration is not None else ''}.safetensors"
        if not path.exists():
            torch.manual_seed(k)
            model = registry.create_model(name, labels).eval()
            if calibration is not None:
                z = NormalDist().inv_cdf(1 - LABELS_PER_IMAGE / labels)
                with torch.no_grad():
                    logits = model(calibration).logits
                    shift = -(logits.mean(0) + z * logits.std(0))
                    for classifier in model.classifiers.values():  # the levels' logits add up
                        classifier.bias += shift / len(model.classifiers)
            save_checkpoint(path, model, CheckpointMeta(
                model=name, class_names=[f"class{c:02d}" for c in range(labels)], input_size=input_size,
                mean=IMAGENET_MEAN, std=IMAGENET_STD, dataset="coco-format"))
        paths.append(path)
    return paths


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def synthetic_models(data, count: int, seed: int = 0) -> dict[str, str]:
    """``data`` widened to ``count`` models: the extra ones are the real models' probabilities
    with noise (for timing and memory of the report only; said in the results)."""
    rng = np.random.default_rng(seed)
    real = list(data.probabilities)
    names = {key: key for key in real}
    for k in range(len(real), count):
        base = data.probabilities[real[k % len(real)]]
        logits = np.log(np.clip(base, 1e-6, 1 - 1e-6)) - np.log1p(-np.clip(base, 1e-6, 1 - 1e-6))
        noisy = 1 / (1 + np.exp(-(logits + rng.normal(0, 0.5, base.shape))))
        key = f"synthetic{k}"
        data.probabilities[key] = noisy.astype(np.float32)
        data.level_logits[key] = {}
        names[key] = key
    return names


def table_response(report, data, repeats: int = 5) -> dict:
    """The Dataset tab's per-image table (qt_dataset_tables.ImagesModel in a QTableView set up
    as the tab does) and its per-class table, offscreen, with every scored image as a row:
    ms to filter (dataset_report.filter_images + set_rows + column widths, as the tab's
    filters), to scroll (jump to the middle and the end, each painted), to sort the per-class
    table; and how many rows the scroll painted (virtualised: only the visible ones)."""
    from PySide6.QtCore import QSize, Qt
    from PySide6.QtWidgets import (
        QAbstractItemView,
        QApplication,
        QHeaderView,
        QTableView,
        QTableWidgetItem,
    )

    from catviz.dataset_report import filter_images
    from catviz.qt_dataset_tables import THUMB, ImagesModel, NumberItem, make_table

    app = QApplication.instance() or QApplication([])
    asked: list[Path] = []
    model = ImagesModel(lambda path: asked.append(path))  # thumbnails: counted, none drawn
    view = QTableView()
    view.setModel(model)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(THUMB + 4)
    view.setIconSize(QSize(THUMB * 2, THUMB))
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
    view.horizontalHeader().setResizeContentsPrecision(40)
    view.resize(1200, 700)
    view.show()
    app.processEvents()

    def show(label=None, bucket=None, fixes=False, breaks=False) -> int:
        rows = filter_images(report, label, bucket, fixes, breaks)
        model.set_rows(report, data, rows)
        for column in range(1, model.columnCount()):
            view.resizeColumnToContents(column)
        view.viewport().repaint()
        return len(rows)

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * min(times), 1000 * max(times)

    common = int(np.argmax((data.targets[report.images] == 1).sum(0)))
    filters = {"all rows": {}, f"label {data.class_names[common]} (most common)": {"label": common},
               "size: small": {"bucket": 0}, "fixes a miss": {"fixes": True}}
    out = {"rows": int(len(report.images)), "filter_ms": {}}
    for name, kwargs in filters.items():
        shown = show(**kwargs)
        low, high = best(lambda kwargs=kwargs: show(**kwargs))
        out["filter_ms"][name] = {"rows": shown, "best": low, "worst": high}
    show()
    scroll = view.verticalScrollBar()

    def jump(value: int) -> None:
        scroll.setValue(value)
        view.viewport().repaint()

    asked.clear()
    positions = [scroll.maximum() // 2, scroll.maximum(), 0, scroll.maximum() // 3]
    times = []
    for value in positions * repeats:
        start = time.perf_counter()
        jump(value)
        times.append(1000 * (time.perf_counter() - start))
    out["scroll_ms"] = {"best": min(times), "worst": max(times), "jumps": len(times)}
    out["rows_painted_per_jump"] = len(asked) / len(times)
    steps = []
    for _ in range(50):  # wheel-like: one page down at a time
        start = time.perf_counter()
        jump(scroll.value() + scroll.pageStep())
        steps.append(1000 * (time.perf_counter() - start))
    out["page_down_ms"] = {"median": float(np.median(steps)), "worst": max(steps)}
    per_class = make_table(["label", "positives", "AP baseline", "AP CAT", "Δ AP"])
    per_class.setRowCount(len(report.per_class))
    for r, row in enumerate(report.per_class):
        per_class.setItem(r, 0, QTableWidgetItem(row["label"]))
        per_class.setItem(r, 1, NumberItem(row["positives"], 0))
        for c, key in enumerate(("AP_baseline", "AP_cat", "delta"), start=2):
            per_class.setItem(r, c, NumberItem(row.get(key), signed=key == "delta"))
    per_class.show()
    orders = [Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder]
    sort_times = []
    for k in range(2 * repeats):
        start = time.perf_counter()
        per_class.sortItems(2 + k % 3, orders[k % 2])
        per_class.viewport().repaint()
        sort_times.append(1000 * (time.perf_counter() - start))
    out["per_class_sort_ms"] = {"rows": len(report.per_class), "best": min(sort_times), "worst": max(sort_times)}
    view.close()
    per_class.close()
    return out


STAGES = ("pass", "report", "explain", "wide", "table", "ratio")


def coco_scale(args, device) -> None:
    """The COCO-scale figures (see the module docstring) of the ``--scale-stages`` asked, each
    merged into dataset-coco-scale-<device>.json as soon as it is measured (a stage not run
    keeps its last figures; without ``pass`` the pass's cache is reused, read back)."""
    from dataclasses import replace

    from catviz import compare, study
    from catviz.dataset_report import build_report
    from catviz.dataset_results import report_input
    from catviz.explain_study import explain_models

    stages = args.scale_stages.split(",")
    path = args.out / f"dataset-coco-scale-{device.type}.json"
    out = json.loads(path.read_text()) if path.exists() else {}

    def save(stage: str, figures: dict) -> None:
        out[stage] = {**figures, "load": os.getloadavg(), "rss_mib": rss_mib(), "peak_rss_mib": peak_rss_mib(),
                      "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(out, indent=2))
        print(f"{stage}: {json.dumps(out[stage])}", flush=True)

    names = args.scale_models.split(",")
    root = args.scale_root / f"coco-scale-{args.scale_images}"
    _, generated = timed(coco_scale_set, root, args.scale_images)
    source = open_dataset("coco-format", root)
    from catviz.models.preprocess import load_image, preprocess

    calibration = torch.cat([preprocess(load_image(sample.path), args.scale_input, IMAGENET_MEAN, IMAGENET_STD)
                             for sample in source.split.samples[:CALIBRATION_IMAGES]])
    paths = scale_checkpoints(root / "checkpoints", names, args.scale_input, calibration=calibration)
    keys = ["baseline" if n.startswith("baseline") else "cat" if n == "cat_tiny" else n for n in names]
    models = {key: load_model(path, device) for key, path in zip(keys, paths, strict=True)}
    titles = {key: m.meta.model for key, m in models.items()}
    out.update({"machine": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                "device": str(device), "threads": torch.get_num_threads(), "dataset": source.describe(),
                "images": args.scale_images, "image_size": "64 x 48 JPEG", "input_size": args.scale_input,
                "batch_size": args.batch_size, "workers": args.workers, "models": titles,
                "rss_mib_after_loading": rss_mib()})
    print(f"{source.describe()}; models {', '.join(titles.values())} at {args.scale_input}² input; "
          f"load {os.getloadavg()}; stages {stages}", flush=True)
    cache = root / "cache"
    if "pass" in stages:
        shutil.rmtree(cache, ignore_errors=True)
        last = [time.perf_counter()]

        def progress(p) -> None:
            if time.perf_counter() - last[0] > 60:
                last[0] = time.perf_counter()
                print(f"  pass: {p.done}/{p.total} images, {p.images_per_second:.0f} img/s", flush=True)

        results, seconds = in_worker_thread(lambda: timed(run_dataset, source, models, args.batch_size,
                                                          args.workers, cache, progress))
        save("pass", {"seconds": seconds, "images_per_s": results.computed / seconds, "computed": results.computed,
                      "generated_s": generated, "cache_bytes": folder_bytes(cache),
                      "cache_files": sum(1 for _ in cache.rglob("chunk-*.npz"))})
    results, seconds = timed(run_dataset, source, models, args.batch_size, args.workers, cache)
    out["from_cache_s"] = seconds
    assert results.computed == 0, "no cached pass: run the pass stage"
    # Pixel buckets at CAT's COCO input (448²), so the size tables hold small, medium and large as on COCO.
    data = replace(report_input(results), input_size=448)
    reference = keys[0]
    report = None
    if "report" in stages:
        folder = root / "report"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (found, files), seconds = timed(compare.export_report, folder, results, data, models, titles, reference,
                                        args.scale_resamples, explain=False, batch_size=args.batch_size)
        save("report", {"models": len(models), "resamples": args.scale_resamples, "seconds": seconds,
                        "files_bytes": {name: (folder / name).stat().st_size for name in files}})
        report = found.report
    report = build_report(data) if report is None else report  # the scored images and their ranking
    if "explain" in stages:
        subset = report.images[: args.scale_explain]
        explained, seconds = in_worker_thread(lambda: timed(explain_models, source, models, subset, results.sizes,
                                                            args.batch_size, args.workers))
        _, aggregated = timed(study.aggregate_explanations, explained, titles, reference, report,
                              args.scale_resamples)
        save("explain", {"images": int(len(subset)), "seconds": seconds, "images_per_s": len(subset) / seconds,
                         "pairs": int(len(next(iter(explained.values())).image)), "aggregate_s": aggregated,
                         "extrapolated_all_images_s": seconds * len(report.images) / max(len(subset), 1)})
    if "wide" in stages:
        wide = replace(data, probabilities=dict(data.probabilities), level_logits=dict(data.level_logits))
        wide_titles = synthetic_models(wide, args.scale_report_models)
        folder = root / "report-wide"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        found_wide, seconds = timed(study.build_study, wide, wide_titles, reference, args.scale_resamples)
        described = [{"checkpoint": "", "sha256": "", "model": key} for key in wide_titles]
        _, written = timed(compare.write_report, folder, found_wide, wide, wide_titles, source.describe(), described,
                           None)
        save("wide", {"models": len(wide_titles), "synthetic": len(wide_titles) - len(models),
                      "resamples": args.scale_resamples, "study_s": seconds, "write_s": written,
                      "files_bytes": {p.name: p.stat().st_size for p in folder.iterdir()}})
    if "table" in stages:
        save("table", table_response(report, data))
    if "ratio" in stages:
        subset_source = open_dataset("coco-format", root, args.scale_ratio_images)
        in_worker_thread(bare_forward, subset_source, models, args.batch_size, args.workers, device)  # warm-up
        bare, ran = [], []
        for _ in range(args.rounds):
            bare.append(in_worker_thread(bare_forward, subset_source, models, args.batch_size, args.workers, device))
            ran.append(in_worker_thread(runner, subset_source, models, args.batch_size, args.workers))
        save("ratio", {"images": args.scale_ratio_images, "bare_images_per_s": bare, "runner_images_per_s": ran,
                       "ratio_best": max(ran) / max(bare),
                       "ratio_rounds": [r / b for r, b in zip(ran, bare, strict=True)]})
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--data-root")
    parser.add_argument("--baseline", type=Path, default=demo.DEMO_CHECKPOINTS["baseline"])
    parser.add_argument("--cat", type=Path, default=demo.DEMO_CHECKPOINTS["cat"])
    parser.add_argument("--batch-size", type=int_range(1, 4096), default=32, help="in [1, 4096]")
    parser.add_argument("--workers", type=int_range(0, 64), default=0, help="DataLoader worker processes, in [0, 64] (the app uses 0)")
    parser.add_argument("--limit", type=int_range(0, 10**9), default=0, help="first N images only, in [0, 1e9] (0: all)")
    parser.add_argument("--rounds", type=int_range(1, 100), default=3, help="alternating bare / runner rounds (best of each), in [1, 100]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    scale = parser.add_argument_group("COCO scale (--coco-scale)")
    scale.add_argument("--coco-scale", action="store_true", help="instead, the COCO-scale figures")
    scale.add_argument("--scale-root", type=Path, default=Path.home() / ".cache" / "catviz" / "bench",
                       help="where the synthetic set, its checkpoints, cache and reports are generated")
    scale.add_argument("--scale-images", type=int_range(1, 10**6), default=COCO_VAL_IMAGES)
    scale.add_argument("--scale-input", type=int_range(16, 1024), default=32, help="the models' input side")
    scale.add_argument("--scale-models", default="baseline_tiny,cat_tiny", help="tiny variants run over the set")
    scale.add_argument("--scale-report-models", type=int_range(2, 64), default=6,
                       help="models in the widened report (the extra ones synthetic)")
    scale.add_argument("--scale-resamples", type=int_range(100, 100_000), default=1000)
    scale.add_argument("--scale-explain", type=int_range(1, 10**6), default=2048,
                       help="images whose explanations are timed (extrapolated to all)")
    scale.add_argument("--scale-ratio-images", type=int_range(64, 10**6), default=1024,
                       help="images of the bare-forward / runner rounds")
    scale.add_argument("--scale-stages", default=",".join(STAGES),
                       help=f"which figures to measure, of {','.join(STAGES)} (the others keep their last figures)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.coco_scale:
        coco_scale(args, device)
        return
    source = open_dataset(args.dataset, args.data_root, args.limit)
    models = {"baseline": load_model(args.baseline, device), "cat": load_model(args.cat, device)}
    warm = open_dataset(args.dataset, args.data_root, 2 * args.batch_size)
    in_worker_thread(bare_forward, warm, models, args.batch_size, args.workers, device)  # warm-up
    bare, ran = [], []
    for _ in range(args.rounds):
        bare.append(in_worker_thread(bare_forward, source, models, args.batch_size, args.workers, device))
        ran.append(in_worker_thread(runner, source, models, args.batch_size, args.workers))
    gui = gui_ticks((args.dataset, args.data_root, args.limit), models, args.batch_size)
    ratio = max(ran) / max(bare)
    rows = [("bare forward of both models (img/s, best)", f"{max(bare):.0f}"),
            ("runner: forward + cache + progress (img/s, best)", f"{max(ran):.0f}"),
            ("ratio (target >= 0.9)", f"{ratio:.2f}"),
            ("Dataset tab: full pass (img/s)", f"{gui['images'] / gui['seconds']:.0f}"),
            ("GUI tick gap while the models run: max / p99 / median (ms, target < 100)",
             f"{gui['gap_max_ms']:.0f} / {gui['gap_p99_ms']:.0f} / {gui['gap_median_ms']:.0f}"),
            ("GUI tick gap incl. opening and drawing the report: max / p99 (ms)",
             f"{gui['whole_gap_max_ms']:.0f} / {gui['whole_gap_p99_ms']:.0f}")]
    width = max(len(name) for name, _ in rows)
    print(f"{source.describe()}; batch {args.batch_size}, {args.workers} workers, {device}")
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"dataset-{device.type}.json"
    atomic_write_text(path, json.dumps({
        "machine": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__, "device": str(device),
        "dataset": source.describe(), "batch_size": args.batch_size, "workers": args.workers,
        "models": {role: m.meta.model for role, m in models.items()},
        "bare_images_per_s": bare, "runner_images_per_s": ran, "ratio_best": ratio, "gui": gui,
    }, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
