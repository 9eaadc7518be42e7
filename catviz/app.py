"""``catviz``: the desktop app, and ``catviz export`` for the figure without a window."""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from catviz.train_cli.data import DATASETS
from catviz.train_cli.errors import ArgumentParser, int_range, output_path_problem

# No torch at import (catviz.models, figure, inference): the window shows while a worker loads it.
from . import demo, system_libs
from .methods import CAM, DEFAULT_DEPTH, DEPTH_TITLES, METHODS
from .render import COLORMAPS, DIVERGING
from .roles import role_of
from .state import CHECKPOINT_SUFFIXES, expand_paths

if TYPE_CHECKING:
    from . import figure

_logger = logging.getLogger("catviz")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="catviz",
        description="Compare CAT with its baseline: predictions, per-level outputs, attention and CAMs. "
        "With no arguments it opens the bundled demo models and sample images. "
        "`catviz export --help` writes the Fig.-3-style figure without a window.",
    )
    parser.add_argument("paths", nargs="*", type=Path, help="images or folders to list; a checkpoint (.safetensors ...) here is loaded into the slot its metadata names, as if dropped")
    parser.add_argument("--baseline", type=Path, help="baseline checkpoint (.safetensors)")
    parser.add_argument("--cat", type=Path, help="CAT checkpoint (.safetensors)")
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda ...")
    parser.add_argument("--dataset", choices=DATASETS,
                        help="also list a dataset's validation split with its ground truth, and compare both "
                        "models over all of it in the Dataset tab")
    parser.add_argument("--data-root", help="dataset folder for --dataset")
    parser.add_argument("--limit", type=int, default=200, help="list at most N dataset images (the Dataset tab scores all of them)")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="ground truth for the images, matched by file name: a CSV (path,label;label) or a "
                        "COCO-style JSON file (File ▸ Open labels… does the same); names that match no image are "
                        "reported")
    parser.add_argument("--size", help="window size, WIDTHxHEIGHT (default: as the last session left it, "
                        "kept within the screen; 1280x800 on a first start and for --screenshot)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="once the first image's results are shown (with --dataset: and the pass has ended), save a picture "
                        "of the window at its size (--size) and quit")
    return parser


def build_export_parser() -> argparse.ArgumentParser:
    from . import figure

    parser = ArgumentParser(
        prog="catviz export",
        description="Write the Fig.-3-style figure headless: per image, the baseline's and CAT's maps of each "
        "label (the ground truth when known, else the predicted labels), drawn as the app draws them.",
        epilog="Roles come from each checkpoint's own metadata: a CAT checkpoint given as --baseline (or a "
        "baseline given as --cat) is refused. Exit status: 0 figure written; 1 nothing could be drawn or the "
        "figure could not be written; 2 usage error (a bad flag, no image to draw or an unusable checkpoint), before any work.",
    )
    parser.add_argument("paths", nargs="*", type=Path, help="images or folders")
    parser.add_argument("--baseline", type=Path, help="baseline checkpoint")
    parser.add_argument("--cat", type=Path, help="CAT checkpoint")
    parser.add_argument("--demo", action="store_true", help="the bundled demo models and sample images")
    parser.add_argument("--out", type=Path, required=True,
                        help=f"figure file to write; the format follows the suffix ({', '.join(figure.ENCODINGS)}). "
                        "More images than --per-page give one figure per page, named after it: fig.png gives "
                        "fig-001.png, fig-002.png ...")
    parser.add_argument("--per-page", metavar="N", type=int_range(1, MAX_PER_PAGE), default=PER_PAGE,
                        help=f"images per figure, in [1, {MAX_PER_PAGE}] (default {PER_PAGE}); memory grows with N, "
                        f"not with the number of images. At most {MAX_EXPORT_IMAGES} images in all, refused before "
                        "any is decoded")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out (or its page files) if they exist (else refused before any work)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability threshold in (0, 1): ground-truth labels below it are captioned in red")
    parser.add_argument("--method", choices=METHODS, default=CAM,
                        help="map method (default: the complete CAM, in logit units)")
    parser.add_argument("--depth", choices=DEPTH_TITLES, default=DEFAULT_DEPTH,
                        help=f"the complete CAM's depth (default {DEFAULT_DEPTH}: input pixels; tokens: the positions "
                        "the classifiers read, the cheapest). Each shown label below the tokens costs about one "
                        "backward pass (the levels summed). A depth one of the models lacks is refused (the baseline has "
                        "tokens, s3, input)")
    parser.add_argument("--colormap", choices=COLORMAPS, default=DIVERGING,
                        help="colour map (default: diverging, centred on zero; unsigned maps use a sequential one)")
    parser.add_argument("--scale", choices=("shared", "each"), default="shared",
                        help="shared: one zero-centred scale per image for baseline and CAT (default); each: one per map")
    parser.add_argument("--opacity", type=float, default=0.75, help="the most opaque a map gets, in (0, 1]")
    parser.add_argument("--difference", action="store_true",
                        help="a third row per image: CAT - baseline of each label's complete CAM on the input pixels "
                        "(its mean plus the difference of the offsets is the logit difference); --method CAM only")
    parser.add_argument("--show-small-values", action="store_true",
                        help="draw every non-zero value of a signed map visibly (the captions say how much of a map's "
                        "|mass| is drawn faint without it)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    return parser


def _check_export_args(parser: argparse.ArgumentParser, args) -> None:
    """Every flag checked before any model or image is read (usage errors exit 2)."""
    from . import figure

    if not (math.isfinite(args.threshold) and 0 < args.threshold < 1):
        parser.error(f"--threshold must be a number in (0, 1), not {args.threshold}")
    if not (math.isfinite(args.opacity) and 0 < args.opacity <= 1):
        parser.error(f"--opacity must be a number in (0, 1], not {args.opacity}")
    if args.difference and args.method != CAM:
        parser.error(f"--difference compares complete CAMs (--method CAM), not {args.method} maps: they have no "
                     "offset and logit to add up to")
    out = args.out
    problem = output_path_problem(out)  # first: a name too long makes even exists() fail
    if problem:
        parser.error(f"--out {str(out)[:80]}{'...' if len(str(out)) > 80 else ''}: {problem}")
    if out.suffix.lower() not in figure.ENCODINGS:
        parser.error(f"--out {out}: unknown figure format {out.suffix!r}; use one of {', '.join(figure.ENCODINGS)}")
    if out.is_dir():
        parser.error(f"--out {out} is a folder; give a file name such as {out / 'figure.png'}")
    if out.exists() and not args.overwrite:
        parser.error(f"--out {out} exists; pass --overwrite to replace it")
    folder = out.absolute().parent
    if not folder.is_dir():  # a mistyped folder is not created: say so
        parser.error(f"--out {out}: cannot write into {folder} ({'not a folder' if folder.exists() else 'no such folder'})")
    try:  # a real probe: access() says yes to root in folders like /proc that refuse new files
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        parser.error(f"--out {out}: cannot write into {folder} ({err.strerror or err})")


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
    from catviz.models.checkpoint import CheckpointError, read_meta
    from catviz.models.device import resolve_device
    from catviz.models.preprocess import ImageLoadError, read_header

    from . import figure, inference

    parser = build_export_parser()
    args = parser.parse_args(argv)
    _check_export_args(parser, args)
    checkpoints, paths, truth = _sources(args)
    if not checkpoints:
        parser.error("give --baseline and/or --cat, or --demo")
    if args.difference and len(checkpoints) < 2:
        parser.error("--difference needs both models: give --baseline and --cat")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    images = expand_paths(paths)
    if not images:
        parser.error(f"no image to draw: {', '.join(map(str, paths))} holds no image files" if paths
                     else "no image to draw: give image files or folders (or --demo for the sample images)")
    if len(images) > MAX_EXPORT_IMAGES:
        parser.error(f"{len(images)} images to draw; catviz export draws at most {MAX_EXPORT_IMAGES} "
                     "(choose a subfolder)")
    outs = page_files(args.out, len(images), args.per_page)
    problem = output_path_problem(outs[-1]) if len(outs) > 1 else None
    if problem:
        parser.error(f"--out: the page file {outs[-1].name[:60]}...: {problem}")
    taken = [str(p) for p in outs if p.exists()] if len(outs) > 1 and not args.overwrite else []
    if taken:
        parser.error(f"--out: {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''} exist(s); "
                     "pass --overwrite to replace them")
    try:
        device = resolve_device(args.device)
    except (RuntimeError, ValueError) as err:
        parser.error(f"--device {args.device}: {err}")
    unreadable = []
    for path in images:  # headers only, before any model is loaded
        try:
            read_header(path)
        except ImageLoadError as err:
            unreadable.append(path)
            print(f"catviz export: skipped {err}", file=sys.stderr)
    if len(unreadable) == len(images):
        print("catviz export: no readable image; nothing drawn (no model was loaded)", file=sys.stderr)
        return 1
    try:
        metas = {role: read_meta(path) for role, path in checkpoints.items()}
        for role, meta in metas.items():
            if role_of(meta) != role:
                raise CheckpointError(
                    f"{checkpoints[role]} holds a {role_of(meta)} model ({meta.model}) but was given as --{role}; "
                    f"pass it as --{role_of(meta)}"
                )
        if len(metas) == 2 and metas["baseline"].class_names != metas["cat"].class_names:
            raise CheckpointError(
                f"{checkpoints['baseline']} and {checkpoints['cat']}: the models' labels differ "
                f"({metas['baseline'].num_classes} vs {metas['cat'].num_classes}); both rows must compare the same labels"
            )
        loaded = {role: inference.load_model(path, device) for role, path in checkpoints.items()}
    except CheckpointError as err:
        print(f"catviz export: {err}", file=sys.stderr)
        return 2
    lacking = {role: m.model.spec.depths for role, m in loaded.items() if args.depth not in m.model.spec.depths}
    if args.method == CAM and lacking:
        role, depths = next(iter(lacking.items()))
        print(f"catviz export: --depth {args.depth}: the {role} model has no such depth; it has {', '.join(depths)}",
              file=sys.stderr)
        return 2
    class_names = next(iter(loaded.values())).meta.class_names
    skip = set(unreadable)
    readable = [path for path in images if path not in skip]
    pages = [readable[i:i + args.per_page] for i in range(0, len(readable), args.per_page)]
    outs = page_files(args.out, len(readable), args.per_page)
    drawn_images, written = 0, []
    bar = tqdm(total=len(readable), desc="catviz export", unit="image", file=sys.stderr)
    for page, out in zip(pages, outs, strict=True):  # one page in memory at a time
        rows = []
        for path in page:
            try:
                rows.append(_figure_row(path, loaded, truth.get(path), class_names, args))
            except ImageLoadError as err:
                tqdm.write(f"catviz export: skipped {err}", file=sys.stderr)
            except (RuntimeError, ValueError) as err:  # e.g. out of memory on the device
                tqdm.write(f"catviz export: skipped {path}: the model failed on it ({err})", file=sys.stderr)
            bar.update()
        if not rows:
            continue
        drawn = figure.render_figure(rows, class_names, args.threshold, args.opacity, args.colormap, args.method,
                                     shared_scale=args.scale == "shared",
                                     depth=args.depth if args.method == CAM else None,
                                     difference=args.difference, small_values=args.show_small_values)
        if out.exists() and not args.overwrite:  # appeared while we worked: still never replaced
            print(f"catviz export: {out} appeared meanwhile; not replaced (pass --overwrite)", file=sys.stderr)
            return 1
        try:
            figure.save_figure(out, drawn)
        except OSError as err:
            print(f"catviz export: cannot write {out}: {err}", file=sys.stderr)
            return 1
        drawn_images, written = drawn_images + len(rows), [*written, out]
        del rows, drawn
    bar.close()
    if not written:
        print("catviz export: no readable image; nothing drawn", file=sys.stderr)
        return 1
    skipped = len(images) - drawn_images
    names = str(written[0]) if len(written) == 1 else f"{len(written)} figures, {written[0]} ... {written[-1]}"
    print(f"wrote {names} ({drawn_images} image{'s' * (drawn_images != 1)}"
          + (f"; {skipped} skipped, see above)" if skipped else ")"))
    return 0


#: catviz export: images per figure (--per-page), its largest value, and the most images in all.
PER_PAGE, MAX_PER_PAGE, MAX_EXPORT_IMAGES = 50, 200, 10_000


def page_files(out: Path, images: int, per_page: int) -> list[Path]:
    """The figure files of ``images`` images: ``out`` itself when one page holds them, else
    ``<stem>-001<suffix>``, ``<stem>-002<suffix>`` ... beside it."""
    pages = max(1, math.ceil(images / per_page))
    if pages == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{k:03d}{out.suffix}") for k in range(1, pages + 1)]


def _figure_row(path: Path, loaded: dict, truth: set[str] | None, class_names: list[str], args) -> figure.FigureRow:
    """One image's row: decoded at display size, then kept only as a thumbnail and small maps."""
    from catviz.models.preprocess import load_image

    from . import figure, inference

    image = load_image(path)
    results = {role: replace(inference.run_model(m, image), attention={}) for role, m in loaded.items()}
    row = figure.FigureRow(path.name, figure.thumbnail(image), results, truth,
                           input_size=max(m.meta.input_size for m in loaded.values()))
    if args.method != CAM or args.depth != "tokens":  # token-depth CAMs came with the forward pass
        for label in figure.labels_to_show(row, class_names, args.threshold):
            for role, m in loaded.items():
                level = None if args.method == CAM else m.spec.levels[-1].name  # CAM: combined; else the finest
                row.maps.setdefault(role, {})[label] = inference.run_attribution(m, image, label, level, args.method,
                                                                                 depth=args.depth)
    return row


def dataset_images(dataset: str, data_root: str | None, limit: int) -> tuple[list[Path], dict[Path, set[str]]]:
    """The first ``limit`` images of the val split, the one the Dataset tab scores (no train split needed)."""
    from catviz.train_cli.data import load_split

    val = load_split(dataset, data_root, "val")
    samples = val.samples[:limit]
    truth = {s.path: {val.class_names[i] for i in (s.target == 1).nonzero()[0]} for s in samples}
    return [s.path for s in samples], truth


#: Data sets read in the background once the window is up (the demo set is generated on a
#: first start, ~30 s): their first --limit images join the list when the Dataset tab has read them.
DEFERRED_DATASETS = ("demo",)


def app_sources(args) -> tuple[dict[str, Path], list[Path], dict[Path, set[str]]]:
    """What the window opens: checkpoints, images and ground truth. The demo data set comes
    with the demo models when no checkpoint is given; a bad dataset raises DatasetError."""
    checkpoints, paths, truth = _sources(args)
    if not checkpoints and args.dataset == "demo" and demo.demo_available():
        checkpoints = dict(demo.DEMO_CHECKPOINTS)
    if args.dataset and args.dataset not in DEFERRED_DATASETS:
        more, more_truth = dataset_images(args.dataset, args.data_root, args.limit)
        paths, truth = paths + more, {**truth, **more_truth}
    return checkpoints, paths, truth


def main(argv: list[str] | None = None) -> int:
    argv_given = argv is not None  # called from Python (tests): return; as the program: exit at once
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    if argv[:1] == ["runs"]:  # training curves without a window (catviz/runs_cli.py)
        from .qt_runs_plot import write_image
        from .runs_cli import main as runs_main

        return runs_main(argv[1:], write_image)
    parser = build_parser()
    args = parser.parse_args(argv)
    size = re.fullmatch(r"(\d{2,5})x(\d{2,5})", (args.size or "1280x800").lower())
    if size is None:
        parser.error(f"--size must be WIDTHxHEIGHT in pixels, e.g. 1280x800, not {args.size!r}")
    from .qt_main_window import MINIMUM_SIZE  # Qt's widgets module only: no display needed yet

    if int(size.group(1)) < MINIMUM_SIZE[0] or int(size.group(2)) < MINIMUM_SIZE[1]:
        parser.error(f"--size {args.size}: the window needs at least {MINIMUM_SIZE[0]}x{MINIMUM_SIZE[1]} "
                     "(below it the maps and the label table are cut)")
    if args.limit < 1:
        parser.error(f"--limit must be at least 1, not {args.limit}")
    if args.dataset is not None and DATASETS[args.dataset].needs_root and args.data_root is None:
        parser.error(f"--dataset {args.dataset} needs --data-root, the dataset's folder")
    if args.data_root is not None and args.dataset is None:
        names = list(DATASETS)
        parser.error(f"--data-root is read only with --dataset ({', '.join(names[:-1])} or {names[-1]})")
    if args.screenshot:  # checked before anything loads; an existing picture is never replaced
        shot = args.screenshot
        problem = output_path_problem(shot)  # first: a name too long makes even exists() fail
        if problem:
            parser.error(f"--screenshot {str(shot)[:80]}: {problem}")
        if shot.suffix.lower() != ".png":
            parser.error(f"--screenshot {shot}: write a .png file")
        if shot.exists():
            parser.error(f"--screenshot {shot}: the file exists; remove it or choose another name")
        try:
            with tempfile.TemporaryFile(dir=shot.parent):
                pass
        except OSError as err:
            parser.error(f"--screenshot {shot}: cannot write into {shot.parent} ({err.strerror or err})")
    if args.device not in LAZY_DEVICES:  # checked now, torch loaded first; auto and cpu in the worker
        from catviz.models.device import resolve_device

        try:
            resolve_device(args.device)
        except (RuntimeError, ValueError) as err:
            parser.error(f"--device {args.device}: {err}")
    from catviz.train_cli.data import DatasetError

    from .runs import is_run

    run_folders = [p for p in args.paths if is_run(p)]  # shown in the Runs tab
    args.paths = [p for p in args.paths if p not in run_folders]
    try:
        checkpoints, paths, truth = app_sources(args)
    except DatasetError as err:
        print(f"catviz: {err}", file=sys.stderr)
        return 1
    from .labels import truth_beside

    beside, label_errors = truth_beside(paths)  # a folder's own labels file (the samples' ground truth)
    truth = {**beside, **truth}
    unmatched: list[str] = []
    if args.labels is not None:
        from .labels import LabelsError, match, read_labels

        try:
            labelled, unmatched = match(expand_paths(paths), read_labels(args.labels))
        except LabelsError as err:
            parser.error(f"--labels {err}")
        truth = {**truth, **labelled}
    if system_libs.main() != 0:  # Qt would abort on a missing xcb library: say which to install
        return 1

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
    controller = InferenceController(state, args.device, held=True)  # released once the window has painted
    window = QtMainWindow(state, controller)
    window.show_on_screen((int(size.group(1)), int(size.group(2))) if args.size or args.screenshot else None)
    named = [p for p in paths if p.suffix.lower() in CHECKPOINT_SUFFIXES]  # as if dropped: the slot from metadata
    if checkpoints or named:
        controller.load_checkpoints([*checkpoints.values(), *named], {path: role for role, path in checkpoints.items()})
    state.add_images([p for p in paths if p not in named], truth)
    for error in label_errors:
        state.report(error)
    if unmatched:
        state.report(f"{args.labels.name}: {len(unmatched)} name{'s' * (len(unmatched) != 1)} match no listed image: "
                     + ", ".join(unmatched[:10]) + (" …" if len(unmatched) > 10 else ""))
    if run_folders:
        window.open_runs(run_folders)
    dataset_view = None
    if args.dataset:  # both models over the whole split, in the background
        from .qt_dataset_view import QtDatasetView

        dataset_view = QtDatasetView(state, on_open=lambda: window.tabs.setCurrentWidget(window.cam_view))
        window.tabs.addTab(dataset_view, "Dataset")
        window.tabs.setCurrentWidget(dataset_view)
        dataset_view.open(args.dataset, args.data_root)
        if args.dataset in DEFERRED_DATASETS:  # its images join the list once the tab has read the split
            _list_when_opened(state, args.limit)
    if args.screenshot:
        _screenshot_when_ready(app, window, args.screenshot, dataset_view)
    _release_after_first_paint(window, controller.workers)
    _close_on_signals(window)
    code = app.exec()
    controller.shutdown(QUIT_WAIT_MS)  # closeEvent did, unless the app quit another way
    if argv_given:
        gc.collect()  # cycles of Qt wrappers freed while Qt is still up (see catviz.qt_gc)
        return code
    _exit_now(code)


#: --device values that need no check before the window opens (auto: the worker picks one).
LAZY_DEVICES = ("auto", "cpu")
#: On quit, running work gets this long to stop (a model's forward pass cannot be interrupted).
QUIT_WAIT_MS = 300


def _exit_now(code: int) -> None:
    """End the process once the window is closed: settings written, logs flushed, then no
    interpreter teardown (freeing torch, Qt and thread pools took 3-6 s, work still running
    was waited for). Nothing is lost: settings are synced here, files are written atomically."""
    from PySide6.QtCore import QSettings

    QSettings().sync()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _list_when_opened(state, limit: int) -> None:
    """The first ``limit`` images of the split the Dataset tab opens, listed with their ground truth."""
    from .dataset_state import DatasetEvent

    def opened(source) -> None:
        samples, names = source.split.samples[:limit], source.split.class_names
        truth = {s.path: {names[i] for i in (s.target == 1).nonzero()[0]} for s in samples}
        state.add_images([s.path for s in samples], truth)

    state.dataset.subscribe(DatasetEvent.OPENED, opened)


#: The workers start at the latest this long after the window is shown, painted or not.
RELEASE_FALLBACK_MS = 1500


def _release_after_first_paint(window, workers) -> None:
    """Start the workers (the first imports torch, timm and the models: seconds during which a
    long C call holds the interpreter) once the window has painted, so it shows at once."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class FirstPaint(QObject):
        def eventFilter(self, watched, event) -> bool:
            if event.type() == QEvent.Type.Paint:
                window.removeEventFilter(self)
                QTimer.singleShot(0, workers.release)  # after this paint and its children's
            return False

    window._first_paint = FirstPaint(window)
    window.installEventFilter(window._first_paint)
    QTimer.singleShot(RELEASE_FALLBACK_MS, workers.release)  # a window that never paints (minimised)


def _close_on_signals(window) -> None:
    """Ctrl+C and SIGTERM close the window as File ▸ Quit does: settings and geometry saved,
    workers stopped, exit 0. Python runs a signal handler only when it next runs bytecode;
    the timer gives it that chance while Qt's event loop waits."""
    import signal

    from PySide6.QtCore import QTimer

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: window.close())
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(200)


#: ``--screenshot`` grabs the screen at the latest this long after start, ready or not;
#: with ``--dataset`` the pass over the split is waited for too, for longer.
SCREENSHOT_TIMEOUT_S = 120
DATASET_SCREENSHOT_TIMEOUT_S = 1800


def _screenshot_when_ready(app, window, path: Path, dataset_view=None) -> None:
    """Poll until the current image and every loaded model's result for it are shown (or
    there is nothing to wait for), and the dataset pass if one runs has ended, then grab the
    screen and quit; exit status 1 if it timed out."""
    from PySide6.QtCore import QTimer

    started = time.monotonic()
    timeout = SCREENSHOT_TIMEOUT_S if dataset_view is None else DATASET_SCREENSHOT_TIMEOUT_S

    def ready() -> bool:
        state, entry = window.state, window.state.current_entry
        if window.controller.pending or (dataset_view is not None and dataset_view.busy):
            return False
        if entry is None or entry.error:
            return True
        return entry.image is not None and all(state.result(r) is not None for r in state.models)

    def check() -> None:
        timed_out = time.monotonic() - started > timeout
        if ready() or timed_out:
            timer.stop()
            if timed_out:
                _logger.warning("--screenshot: still not ready after %d s; grabbing the screen as it is", timeout)

            def grab() -> None:
                if not window.grab().save(str(path)):  # the window at its size, on any Qt platform
                    _logger.error("--screenshot: could not write %s", path)
                    app.exit(1)
                else:
                    app.exit(1 if timed_out else 0)

            QTimer.singleShot(500, grab)

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)


if __name__ == "__main__":
    sys.exit(main())
