"""The app with many large images: ``python bench/app_images.py``.

Opens the main window offscreen with the demo models (or ``--baseline``/``--cat``), drops
30 photos of 6000x6000 (JPEG, generated in a temporary folder) and reports: the time
until the first image's results are on screen, whether that image was decoded before
any other, the time until every image is decoded (thumbnails), the memory the decoded
copies hold and the process's peak RSS, and one opacity step (the views redraw; no
work is started). Targets (issue 11): peak RSS < 1.5 GB; the image on screen decoded
first. Writes bench/results/app_images.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg
from PySide6.QtWidgets import QApplication

from catviz import demo
from catviz.models.checkpoint import atomic_write_text
from catviz.qt_main_window import QtMainWindow
from catviz.qt_workers import InferenceController
from catviz.state import AppState, Event
from catviz.train_cli.errors import int_range

GB = 2**30


def wait(app: QApplication, condition, timeout: float = 600.0) -> float:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the app did not get there in time")
        app.processEvents()
        time.sleep(0.002)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, default=demo.DEMO_CHECKPOINTS["baseline"])
    parser.add_argument("--cat", type=Path, default=demo.DEMO_CHECKPOINTS["cat"])
    parser.add_argument("--photos", type=int_range(1, 1000), default=30, help="number of 6000x6000 photos, in [1, 1000]")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    app.setOrganizationName("catviz-bench")
    pg.setConfigOptions(imageAxisOrder="row-major")
    state = AppState()
    controller = InferenceController(state, args.device)
    window = QtMainWindow(state, controller)
    window.resize(1280, 800)
    window.show()
    controller.load_checkpoints([args.baseline, args.cat])
    wait(app, lambda: len(state.models) == 2)
    decoded = []
    state.subscribe(Event.IMAGE_LOADED, lambda entry: decoded.append(entry.path))
    with tempfile.TemporaryDirectory(prefix="catviz-app-images-") as tmp:
        folder = Path(tmp)
        # Written by another process: its 6000² arrays must not count in this one's peak RSS.
        code = f"from tests.catviz.hostile_images import write_photo_jpeg as w; w(__import__('pathlib').Path({str(folder / 'photo_00.jpg')!r}), 6000)"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
        first = folder / "photo_00.jpg"
        for i in range(1, args.photos):
            shutil.copyfile(first, folder / f"photo_{i:02d}.jpg")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        start = time.perf_counter()
        state.add_images([folder])
        first_shown = wait(app, lambda: all(state.result(r) is not None for r in state.models))
        decoded_first = decoded[0] == state.images[0].path
        others_before_first = len(decoded) - 1
        all_decoded = wait(app, lambda: len(decoded) >= args.photos) + first_shown
        wait(app, lambda: controller.pending == 0)
        elapsed = time.perf_counter() - start
        started = []
        controller.busy_changed.connect(started.append)
        steps, cpu = [], []
        for value in (20, 40, 60, 80):
            t, c = time.perf_counter(), time.thread_time()
            window.cam_view.opacity.setValue(value)  # the views redraw synchronously
            app.processEvents()
            steps.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
        row = dict(
            photos=args.photos,
            first_results_s=round(first_shown, 2),
            decoded_first=decoded_first,
            decoded_before_first_results=others_before_first,
            all_decoded_s=round(all_decoded, 2),
            total_s=round(elapsed, 2),
            display_copies_mb=round(state.decoded_bytes / 2**20, 1),
            copies_kept=sum(e.image is not None for e in state.images),
            peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            rss_before_gb=round(rss_before, 3),
            opacity_step_ms=round(1000 * max(steps), 1),
            opacity_step_cpu_ms=round(1000 * max(cpu), 1),  # GUI-thread CPU: what a quiet machine would take
            opacity_started_tasks=len(started),
        )
    controller.shutdown()
    print(f"\n{args.photos} photos of 6000² JPEG dropped on the window (demo models, {args.device})")
    for key, value in row.items():
        print(f"  {key:<30} {value}")
    print(f"  target: peak RSS < 1.5 GB: {'met' if row['peak_rss_gb'] < 1.5 else 'NOT met'}; "
          f"image on screen decoded first: {'yes' if decoded_first else 'NO'}")
    result = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(), device=args.device,
                  baseline=str(args.baseline), cat=str(args.cat), **row)
    out = Path(__file__).parent / "results" / "app_images.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
