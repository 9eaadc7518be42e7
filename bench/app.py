"""App latency: ``python bench/app.py [--baseline B --cat C] [--images N]`` (offscreen Qt).

For each image: time from adding it to the app until both models' results are in and
every panel has painted, against a bare forward pass of both models on the same
image in the same run (target <= 1.3x); and the time for the CAMs of all labels at
every level, against one forward pass (target: about one forward). Defaults to the
bundled demo models and samples. Writes bench/results/app-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import _path  # noqa: F401  (must come first: see bench/_path.py)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg
import torch
from PySide6.QtWidgets import QApplication

import models
from catviz import demo, inference
from catviz.qt_main_window import QtMainWindow
from catviz.qt_workers import InferenceController
from catviz.state import AppState
from models.cam import class_activation_maps
from models.preprocess import (
    load_image,
    preprocess,
)


def wait(app, condition, timeout=60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        app.processEvents()
        if time.perf_counter() > deadline:
            raise TimeoutError("app did not finish in time")
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=demo.DEMO_CHECKPOINTS["baseline"])
    parser.add_argument("--cat", type=Path, default=demo.DEMO_CHECKPOINTS["cat"])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = models.resolve_device(args.device)
    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication([])
    state = AppState()
    controller = InferenceController(state, device)
    window = QtMainWindow(state, controller)
    window.resize(1280, 800)
    window.show()
    controller.load_checkpoint(args.baseline, "baseline")
    controller.load_checkpoint(args.cat, "cat")
    wait(app, lambda: len(state.models) == 2)
    paths, _ = demo.sample_images()
    paths = paths[: args.images]
    loaded = dict(state.models)

    app_times, bare_times, cam_times, forward_times = [], [], [], []
    for path in paths:
        image = load_image(path)
        for m in loaded.values():  # warm caches for this image size
            inference.run_model(m, image)
        bare = 0.0
        for m in loaded.values():
            tensor = preprocess(image, m.meta.input_size, m.meta.mean, m.meta.std).to(device)
            with torch.no_grad():
                start = time.perf_counter()
                m.model(tensor)
                forward = time.perf_counter() - start
                bare += forward
                start = time.perf_counter()
                class_activation_maps(m.model, tensor)
                cam = time.perf_counter() - start
            if m.kind == "cat":
                cam_times.append(cam)
                forward_times.append(forward)
        bare_times.append(bare)
        start = time.perf_counter()
        state.add_images([path])
        state.select(len(state.images) - 1)
        wait(app, lambda path=path: all((path, r) in state.results for r in loaded) and controller.pending == 0)
        window.repaint()
        app.processEvents()
        app_times.append(time.perf_counter() - start)

    result = {
        "device": str(device), "images": len(paths),
        "app_ms": 1000 * statistics.median(app_times), "bare_forward_both_ms": 1000 * statistics.median(bare_times),
        "cat_all_label_cams_ms": 1000 * statistics.median(cam_times), "cat_forward_ms": 1000 * statistics.median(forward_times),
    }
    result["app_vs_bare"] = result["app_ms"] / result["bare_forward_both_ms"]
    result["cams_vs_forward"] = result["cat_all_label_cams_ms"] / result["cat_forward_ms"]
    print(f"device {device}, {len(paths)} images (median):")
    print(f"  image added → all panels painted: {result['app_ms']:.0f} ms; bare forward of both models: "
          f"{result['bare_forward_both_ms']:.0f} ms; ratio {result['app_vs_bare']:.2f} (target <= 1.3)")
    print(f"  CAT CAMs of all {len(state.class_names)} labels at every level: {result['cat_all_label_cams_ms']:.0f} ms; "
          f"one CAT forward: {result['cat_forward_ms']:.0f} ms; ratio {result['cams_vs_forward']:.2f}")
    out = Path(__file__).parent / "results" / f"app-{device.type}-{loaded['cat'].meta.model}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    window.close()


if __name__ == "__main__":
    main()
