"""App latency: ``python bench/app.py [--baseline B --cat C | --full-size] [--images N]`` (offscreen Qt).

For each image: time from adding it to the app until both models' results are in and
painted, against a bare forward pass of both models on the same image in the same run
(target <= 1.3x), then until the maps at the chosen depth (the input pixels by default:
backward passes) and last the path share chart are painted; the time for the complete CAMs of all
labels at every level (``models.cam.class_activation_maps``, its own forward pass
included) against one bare CAT forward (target <= 1.2x); and the app's default map, the
complete CAM at the input pixels of one label (levels summed), of both models against the
bare forward of both (target <= 3x; every depth: ``bench/cam_depth.py``). Defaults to the bundled demo
models and samples; ``--full-size`` writes untrained full-size checkpoints (ResNeXt50,
1024 FPN channels, 80 labels, 448²) to a temporary folder and uses those (the cost does
not depend on the weights). Writes bench/results/app-<device>-<cat model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pyqtgraph as pg
import torch
from PySide6.QtWidgets import QApplication

from catviz import demo, inference, models
from catviz.models.cam import class_activation_maps
from catviz.models.checkpoint import CheckpointMeta, atomic_write_text, save_checkpoint
from catviz.models.preprocess import (
    load_image,
    preprocess,
)
from catviz.qt_main_window import QtMainWindow
from catviz.qt_workers import InferenceController
from catviz.state import AppState
from catviz.train_cli.errors import int_range


def wait(app, condition, timeout=600.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        app.processEvents()
        if time.perf_counter() > deadline:
            raise TimeoutError("app did not finish in time")
        time.sleep(0.001)


def full_size_checkpoints(folder: Path, num_classes: int = 80, size: int = 448) -> dict[str, Path]:
    """Untrained full-size baseline and CAT checkpoints, as the app would load them."""
    names = [f"label {i}" for i in range(num_classes)]
    paths = {}
    for role, name in (("baseline", "baseline"), ("cat", "cat")):
        paths[role] = folder / f"{name}.safetensors"
        model = models.create_model(name, num_classes)
        save_checkpoint(paths[role], model, CheckpointMeta(model=name, class_names=names, input_size=size))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=demo.DEMO_CHECKPOINTS["baseline"])
    parser.add_argument("--cat", type=Path, default=demo.DEMO_CHECKPOINTS["cat"])
    parser.add_argument("--full-size", action="store_true",
                        help="untrained full-size models (80 labels, 448²) instead of --baseline/--cat")
    parser.add_argument("--images", type=int_range(1, 1000), default=6, help="in [1, 1000]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--startup", type=int_range(1, 20), metavar="RUNS",
                        help="instead: time start-up in fresh processes (import to first paint, to all panels)")
    parser.add_argument("--json", type=Path, help="results file (default bench/results/app-<device>-<cat model>.json)")
    args = parser.parse_args()
    if args.startup:
        result = startup(args.startup)
        out = args.json or Path(__file__).parent / "results" / "app-startup-cpu.json"
        atomic_write_text(out, json.dumps({"runs": args.startup, **result}, indent=1) + "\n")
        return
    if args.full_size:
        with tempfile.TemporaryDirectory() as folder:
            paths = full_size_checkpoints(Path(folder))
            run(args, paths["baseline"], paths["cat"])
    else:
        run(args, args.baseline, args.cat)


def run(args: argparse.Namespace, baseline: Path, cat: Path) -> None:
    device = models.resolve_device(args.device)
    pg.setConfigOptions(imageAxisOrder="row-major")
    app = QApplication.instance() or QApplication([])
    state = AppState()
    controller = InferenceController(state, device)
    window = QtMainWindow(state, controller)
    window.resize(1280, 800)
    window.show()
    controller.load_checkpoint(baseline, "baseline")
    controller.load_checkpoint(cat, "cat")
    wait(app, lambda: len(state.models) == 2)
    paths, _ = demo.sample_images()
    paths = paths[: args.images]
    loaded = dict(state.models)

    app_times, bare_times, cam_times, forward_times, input_times = [], [], [], [], []
    map_times, all_times = [], []
    for path in paths:
        image = load_image(path)
        for m in loaded.values():  # warm caches for this image size
            inference.run_model(m, image)
        bare, input_map = 0.0, 0.0
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
                start = time.perf_counter()  # the app's default map: input pixels, one label, levels summed
                class_activation_maps(m.model, tensor, depth="input", labels=[0], split_levels=False,
                                      path_share=False)
                input_map += time.perf_counter() - start
            if m.spec.role == "cat":
                cam_times.append(cam)
                forward_times.append(forward)
        bare_times.append(bare)
        input_times.append(input_map)
        start = time.perf_counter()
        state.add_images([path])
        state.select(len(state.images) - 1)
        wait(app, lambda path=path: all((path, r) in state.results for r in loaded))
        window.repaint()
        app.processEvents()
        app_times.append(time.perf_counter() - start)  # results: labels, logits, token-depth maps, attention
        wait(app, lambda: all(state.attribution_key(r) is None or state.attribution(r) is not None for r in loaded))
        window.repaint()
        app.processEvents()
        map_times.append(time.perf_counter() - start)  # the maps at the chosen depth (default: input pixels)
        wait(app, lambda: controller.pending == 0)
        window.repaint()
        app.processEvents()
        all_times.append(time.perf_counter() - start)  # and the path share chart: nothing left to do

    result = {
        "device": str(device), "images": len(paths),
        "app_ms": 1000 * statistics.median(app_times), "bare_forward_both_ms": 1000 * statistics.median(bare_times),
        "cat_all_label_cams_ms": 1000 * statistics.median(cam_times), "cat_forward_ms": 1000 * statistics.median(forward_times),
        "input_map_both_ms": 1000 * statistics.median(input_times),
        "app_maps_ms": 1000 * statistics.median(map_times), "app_all_ms": 1000 * statistics.median(all_times),
        "depth": state.settings.cam_depth,
    }
    result["input_map_vs_bare"] = result["input_map_both_ms"] / result["bare_forward_both_ms"]
    result["app_vs_bare"] = result["app_ms"] / result["bare_forward_both_ms"]
    result["cams_vs_forward"] = result["cat_all_label_cams_ms"] / result["cat_forward_ms"]
    print(f"device {device}, {len(paths)} images (median):")
    print(f"  image added → both results painted: {result['app_ms']:.0f} ms; bare forward of both models: "
          f"{result['bare_forward_both_ms']:.0f} ms; ratio {result['app_vs_bare']:.2f} (target <= 1.3)")
    print(f"  → the maps at the {result['depth']} depth painted: {result['app_maps_ms']:.0f} ms "
          f"({result['app_maps_ms'] / result['bare_forward_both_ms']:.2f}x); → the path share too, nothing left: "
          f"{result['app_all_ms']:.0f} ms ({result['app_all_ms'] / result['bare_forward_both_ms']:.2f}x)")
    print(f"  CAT complete CAMs of all {len(state.class_names)} labels, every level: "
          f"{result['cat_all_label_cams_ms']:.0f} ms; one CAT forward: {result['cat_forward_ms']:.0f} ms; "
          f"ratio {result['cams_vs_forward']:.2f} (target <= 1.2)")
    print(f"  complete CAM at the input pixels, one label, levels summed, both models: "
          f"{result['input_map_both_ms']:.0f} ms; ratio to the bare forward of both "
          f"{result['input_map_vs_bare']:.2f} (target <= 3; every depth: bench/cam_depth.py)")
    out = args.json or Path(__file__).parent / "results" / f"app-{device.type}-{loaded['cat'].meta.model}.json"
    out.parent.mkdir(exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2))
    print(f"wrote {out}")
    window.close()


STARTUP_CHILD = r"""
import time
t0 = time.perf_counter()
import json, os, sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication
from catviz import app, qt_main_window
marks = {"imports": time.perf_counter() - t0}

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and "window" not in marks:
            marks["window"] = time.perf_counter() - t0
        return False

painted = FirstPaint()
show = qt_main_window.QtMainWindow.show

def shown(window):
    window.installEventFilter(painted)
    show(window)

    def check():
        s, panels = window.state, window.cam_view.panels
        if "panels" not in marks and s.current_entry is not None and s.current_entry.image is not None \
                and len(s.models) == 2 and all(s.result(r) is not None for r in s.models) \
                and all(p.heat is not None for p in panels.values()):
            marks["panels"] = time.perf_counter() - t0
        if "panels" in marks and all(s.path_share_key(r) is None or s.path_share(r) is not None for r in s.models):
            marks["path share"] = time.perf_counter() - t0  # the chart below the labels, after the maps
            timer.stop()
            print(json.dumps(marks), flush=True)
            QApplication.instance().exit(0)

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(10)

qt_main_window.QtMainWindow.show = shown
app.main(["--device", "cpu", "--size", "1280x800"])
os._exit(0)  # as the app itself ends (catviz.app._exit_now): no interpreter teardown
"""


#: The model side alone in a fresh process, timed as the child times the app's imports: a
#: yardstick for a shared machine (start-up is reported as a ratio to it too).
TORCH_CHILD = r"""
import time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import catviz.inference  # timm, torchvision and the models on top of torch
print({"torch": t1 - t0, "model side": time.perf_counter() - t0})
"""


def startup(runs: int) -> dict:
    """Seconds from the interpreter's first import to the window's first paint, to every panel
    of the demo drawn (both models' results and maps) and to the path share chart filled
    (computed after the maps), each in a fresh process; beside each run,
    a fresh process that only imports torch (then the model side), for a ratio that a busy
    machine changes less. Medians of ``runs``, every run kept, the load average before and after."""
    import ast
    import subprocess
    import sys

    load_before = os.getloadavg()
    times, torch_times = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": home}
            done = subprocess.run([sys.executable, "-c", STARTUP_CHILD], env=env, capture_output=True, text=True,
                                  timeout=300, check=True)
            times.append(json.loads(done.stdout.strip().splitlines()[-1]))
        done = subprocess.run([sys.executable, "-c", TORCH_CHILD], capture_output=True, text=True, timeout=300,
                              check=True)
        torch_times.append(ast.literal_eval(done.stdout.strip().splitlines()[-1]))
    median = {key: statistics.median(t[key] for t in times) for key in times[0]}
    torch_median = {key: statistics.median(t[key] for t in torch_times) for key in torch_times[0]}
    result = {
        "seconds": median,
        "import_alone_seconds": torch_median,
        "ratio_to_torch_import": {key: median[key] / torch_median["torch"] for key in ("window", "panels")},
        "every_run": times, "every_import_alone": torch_times,
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "cpus": os.cpu_count(),
    }
    print(f"start-up (median of {runs}, fresh process, demo): imports {median['imports']:.2f} s, "
          f"window painted {median['window']:.2f} s, all panels {median['panels']:.2f} s, "
          f"path share chart {median['path share']:.2f} s; "
          f"import torch alone {torch_median['torch']:.2f} s (with timm and the models "
          f"{torch_median['model side']:.2f} s); load average {load_before[0]:.1f} → {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    return result


if __name__ == "__main__":
    main()
