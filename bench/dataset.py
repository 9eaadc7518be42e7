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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

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
    loader = make_loader(source, list(range(len(source.split.samples))), models["cat"].meta, batch_size, workers)
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
    args = parser.parse_args()
    device = resolve_device(args.device)
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
