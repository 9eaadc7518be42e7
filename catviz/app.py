"""``catviz``: the desktop app, and ``catviz export`` for the figure without a window."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from models.checkpoint import CheckpointError
from models.device import resolve_device
from models.preprocess import ImageLoadError, load_image

from . import demo, figure, inference
from .state import expand_paths

_logger = logging.getLogger("catviz")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catviz",
        description="Compare CAT with its baseline: predictions, per-level outputs, attention and CAMs. "
        "With no arguments it opens the bundled demo models and sample images. "
        "`catviz export --help` writes the Fig.-3-style figure without a window.",
    )
    parser.add_argument("paths", nargs="*", type=Path, help="images or folders to list")
    parser.add_argument("--baseline", type=Path, help="baseline checkpoint (.safetensors)")
    parser.add_argument("--cat", type=Path, help="CAT checkpoint (.safetensors)")
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda ...")
    parser.add_argument("--dataset", choices=["coco", "voc", "coco-format", "demo"],
                        help="also list a dataset's validation split with its ground truth, and compare both "
                        "models over all of it in the Dataset tab")
    parser.add_argument("--data-root", help="dataset folder for --dataset")
    parser.add_argument("--limit", type=int, default=200, help="list at most N dataset images")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="once the first image's results are shown, save a screenshot of the screen and quit")
    return parser


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catviz export", description="Write the Fig.-3-style figure headless.")
    parser.add_argument("paths", nargs="*", type=Path, help="images or folders")
    parser.add_argument("--baseline", type=Path, help="baseline checkpoint")
    parser.add_argument("--cat", type=Path, help="CAT checkpoint")
    parser.add_argument("--demo", action="store_true", help="the bundled demo models and sample images")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (missed labels in red)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    return parser


def _sources(args) -> tuple[dict[str, Path], list[Path], dict[Path, set[str]]]:
    """Checkpoints, images and ground truth from the arguments, or the demo's."""
    checkpoints = {role: path for role, path in (("baseline", args.baseline), ("cat", args.cat)) if path}
    paths, truth = list(args.paths), {}
    use_demo = getattr(args, "demo", False) or (not checkpoints and not paths and not getattr(args, "dataset", None))
    if use_demo:
        if not demo.demo_available():
            raise SystemExit("catviz: the demo checkpoints are missing from assets/; run `make demo-models`")
        checkpoints = checkpoints or dict(demo.DEMO_CHECKPOINTS)
        if not paths:
            paths, truth = demo.sample_images()
    return checkpoints, paths, truth


def export_main(argv: list[str]) -> int:
    args = build_export_parser().parse_args(argv)
    checkpoints, paths, truth = _sources(args)
    if not checkpoints:
        print("catviz export: give --baseline and/or --cat, or --demo", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    try:
        loaded = {role: inference.load_model(path, device) for role, path in checkpoints.items()}
        if len(loaded) == 2:
            inference.check_compatible(loaded["cat"], loaded["baseline"])
    except CheckpointError as err:
        print(f"catviz export: {err}", file=sys.stderr)
        return 2
    rows = []
    for path in expand_paths(paths):
        try:
            image = load_image(path)
        except ImageLoadError as err:
            print(f"catviz export: skipped {err}", file=sys.stderr)
            continue
        results = {role: inference.run_model(m, image) for role, m in loaded.items()}
        rows.append(figure.FigureRow(path.name, image, results, truth.get(path)))
    if not rows:
        print("catviz export: no readable image; nothing drawn", file=sys.stderr)
        return 1
    class_names = next(iter(loaded.values())).meta.class_names
    figure.save_png(args.out, figure.render_figure(rows, class_names, args.threshold))
    print(f"wrote {args.out} ({len(rows)} images)")
    return 0


def dataset_images(dataset: str, data_root: str | None, limit: int) -> tuple[list[Path], dict[Path, set[str]]]:
    from train_cli.data import load_splits

    _, val = load_splits(dataset, data_root)
    samples = val.samples[:limit]
    truth = {s.path: {val.class_names[i] for i in (s.target == 1).nonzero()[0]} for s in samples}
    return [s.path for s in samples], truth


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    args = build_parser().parse_args(argv)
    checkpoints, paths, truth = _sources(args)
    if args.dataset:
        more, more_truth = dataset_images(args.dataset, args.data_root, args.limit)
        paths, truth = paths + more, {**truth, **more_truth}

    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from .qt_main_window import QtMainWindow
    from .qt_workers import InferenceController
    from .state import AppState

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("catviz")
    app.setApplicationName("catviz")
    state = AppState()
    controller = InferenceController(state, args.device)
    sources = {role: "(bundled demo)" if path == demo.DEMO_CHECKPOINTS.get(role) else "" for role, path in checkpoints.items()}
    window = QtMainWindow(state, controller, sources)
    width, height = (int(v) for v in args.size.lower().split("x"))
    window.resize(width, height)
    window.show()
    for role, path in checkpoints.items():
        controller.load_checkpoint(path, role)
    state.add_images(paths, truth)
    if args.dataset:  # both models over the whole split, in the background
        from .qt_dataset_view import QtDatasetView

        dataset_view = QtDatasetView(state, on_open=lambda: window.tabs.setCurrentWidget(window.cam_view))
        window.tabs.addTab(dataset_view, "Dataset")
        window.tabs.setCurrentWidget(dataset_view)
        dataset_view.open(args.dataset, args.data_root)
    if args.screenshot:
        _screenshot_when_ready(app, window, args.screenshot)
    return app.exec()


def _screenshot_when_ready(app, window, path: Path) -> None:
    """Poll until every loaded model's result for the current image is shown, then grab."""
    from PySide6.QtCore import QTimer

    def check() -> None:
        state = window.state
        ready = state.models and all(state.result(r) is not None for r in state.models)
        if ready and window.controller.pending == 0:
            timer.stop()
            QTimer.singleShot(500, lambda: (window.screen().grabWindow(0).save(str(path)), app.quit()))

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)


if __name__ == "__main__":
    sys.exit(main())
