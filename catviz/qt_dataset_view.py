"""The Dataset tab: both loaded models over a whole split — summary, per class, by object
size, per image — with a progress bar (images/s, ETA) and a cancel.

The pass and the report run on this view's own worker pool (one thread): the GUI thread
only draws tables. The worker side (:mod:`catviz.dataset_results`, torch) is imported
inside the jobs, so importing this module loads no torch. Selecting an image opens it in
the compare view with its ground truth. Definitions: :mod:`catviz.dataset_report`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import (
    QAbstractTableModel,
    QCoreApplication,
    QModelIndex,
    QObject,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .dataset_report import (
    EVAL_THRESHOLD,
    SUMMARY_KEYS,
    Report,
    ReportInput,
    bucket_names,
    build_report,
    filter_images,
)
from .qt_events import unsubscribe_on_close
from .qt_gc import collect_garbage_on_gui_thread
from .state import AppState, Event

_logger = logging.getLogger(__name__)
THUMB = 48
MAX_THUMBS = 2000
#: Progress reaches the GUI at most this often (the worker may finish batches faster).
PROGRESS_INTERVAL_S = 0.1
BASELINE_COLOR, CAT_COLOR = (150, 150, 150), (47, 109, 181)
GAIN, LOSS = QColor(30, 130, 60), QColor(200, 50, 40)


class _JobSignals(QObject):
    succeeded = Signal(object)
    failed = Signal(str)
    progressed = Signal(object)


class _Job(QRunnable):
    """``fn(progress)`` on a pool; a clear message for the errors users cause, a log for bugs."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn, self.signals = fn, _JobSignals()

    def run(self) -> None:
        _lower_thread_priority()
        try:
            self.signals.succeeded.emit(self.fn(self.signals.progressed.emit))
        except (ValueError, OSError) as err:  # DatasetError, CheckpointError, ImageLoadError, disk errors
            self.signals.failed.emit(str(err))
        except Exception as err:  # a bug must reach the user, not kill the app silently
            _logger.error("dataset worker failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(f"internal error: {type(err).__name__}: {err}")


def _lower_thread_priority(niceness: int = 10) -> None:
    """Make this pool thread (and the torch threads it starts, which inherit it) yield to the
    GUI thread and to the compare view's inference when the CPU is busy. Linux only."""
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except (AttributeError, OSError):
        pass


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _signed(value: float, digits: int = 1) -> tuple[str, QColor | None]:
    """A difference as shown, and its colour: ``+1.2`` green, ``-0.3`` red, and ``0.0`` with
    no sign and no colour when it rounds to zero (never a red ``-0.0``)."""
    if not np.isfinite(value):
        return "–", None
    text = f"{value:+.{digits}f}"
    if float(text) == 0:
        return f"{0:.{digits}f}", None
    return text, GAIN if value > 0 else LOSS


def _is_are(count: int) -> str:
    return "is" if count == 1 else "are"


def _could_not_be_decoded(count: int, noun: str = "") -> str:
    """ "1 could not be decoded", "2 images could not be decoded" (``noun``: "image")."""
    noun = f" {noun}{'s' * (count != 1)}" if noun else ""
    return f"{count}{noun} could not be decoded"


def finished_text(complete: bool, scored: int, total: int, computed: int, seconds: float) -> str:
    """The progress bar's text once a pass ends: short enough for the bar at 1280 px (the
    images that could not be decoded are on the button beside it, the details in its tooltip)."""
    if computed == 0:
        how = "from the cache"
    elif computed >= total or not complete:
        how = f"{seconds:.1f} s"
    else:
        how = f"{total - computed} cached, {seconds:.1f} s"
    return f"{'done' if complete else 'cancelled'}: {scored} of {total} images scored ({how})"


def finished_tooltip(complete: bool, scored: int, total: int, failed: int, computed: int, seconds: float) -> str:
    text = f"{scored} of {total} images scored by both models"
    if failed:
        text += f"; {_could_not_be_decoded(failed)} and {_is_are(failed)} left out"
    if computed:
        text += f". This pass read and ran {computed} image{'s' * (computed != 1)} in {seconds:.1f} s"
    cached = total - computed
    if complete and cached > 0:
        text += f"; {cached} came from the result cache"
    return text + "."


def _eval_note(threshold: float) -> str:
    """What equals catviz-eval's output: it scores CP ... OF1 at its own threshold only."""
    if np.isclose(threshold, EVAL_THRESHOLD):
        return "The numbers equal what catviz-eval prints for these checkpoints and images."
    return (f"mAP and the AP of each level equal what catviz-eval prints for these checkpoints and images; "
            f"{', '.join(SUMMARY_KEYS[1:])} are at threshold {threshold:g} (catviz-eval uses {EVAL_THRESHOLD:g}).")


class _NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number (NaN last, in either order) and shows it rounded."""

    def __init__(self, value: float | int | None, digits: int = 1, signed: bool = False):
        value = float("nan") if value is None else float(value)
        text, color = _signed(value, digits) if signed else (_number(value, digits), None)
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if color is not None:
            self.setForeground(color)

    def __lt__(self, other) -> bool:
        if isinstance(other, _NumberItem):
            mine, theirs = np.isfinite(self.value), np.isfinite(other.value)
            if mine != theirs:  # Qt sorts descending by asking the other way round: NaN must flip too
                return bool(mine) != self._descending()
            return bool(self.value < other.value)
        return super().__lt__(other)

    def _descending(self) -> bool:
        table = self.tableWidget()
        return table is not None and table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


class _ImagesModel(QAbstractTableModel):
    """The ranked images after the filters, one row each; thumbnails arrive from a worker."""

    HEADERS = ["", "rank", "image", "F1 baseline", "F1 CAT", "F1 gain", "p gain", "ground truth", "CAT vs baseline"]

    def __init__(self, request_thumbnail: Callable[[Path], QPixmap | None]):
        super().__init__()
        self.request_thumbnail = request_thumbnail
        self.report: Report | None = None
        self.data_: ReportInput | None = None
        self.rows = np.zeros(0, np.int64)
        self.rank: dict[int, int] = {}

    def set_rows(self, report: Report | None, data: ReportInput | None, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.report, self.data_, self.rows = report, data, rows
        self.rank = {int(i): r for r, i in enumerate(report.ranking)} if report is not None else {}
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def image_index(self, row: int) -> int:
        return int(self.rows[row])

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.report is None:
            return None
        i, column, r, d = int(self.rows[index.row()]), index.column(), self.report, self.data_
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return self.request_thumbnail(d.paths[i])
        if role == Qt.ItemDataRole.SizeHintRole and column == 0:
            return QSize(THUMB + 4, THUMB + 4)
        if role == Qt.ItemDataRole.ForegroundRole and column in (5, 6):
            return _signed(r.f1_gain[i] if column == 5 else r.probability_gain[i], 2)[1]
        if role == Qt.ItemDataRole.ToolTipRole and column == 2:
            return str(d.paths[i])
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 3, 4, 5, 6):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == 1:
            return str(self.rank[i] + 1)
        if column == 2:
            return d.paths[i].name
        if column in (3, 4):
            return _number(r.f1["baseline" if column == 3 else "cat"][i], 2)
        if column in (5, 6):
            return _signed(r.f1_gain[i] if column == 5 else r.probability_gain[i], 2)[0]
        if column == 7:
            return ", ".join(d.class_names[c] for c in np.flatnonzero(d.targets[i] == 1))
        if column == 8:
            return ", ".join(t for t, on in (("fixes a miss", r.fixed[i].any()), ("breaks a hit", r.broken[i].any())) if on)
        return None


class _ThumbnailSignals(QObject):
    loaded = Signal(object, object)  # path, QImage or None


class _ThumbnailJob(QRunnable):
    def __init__(self, path: Path, signals: _ThumbnailSignals):
        super().__init__()
        self.path, self.signals = path, signals

    def run(self) -> None:
        reader = QImageReader(str(self.path))
        reader.setAutoTransform(True)
        size = reader.size()
        if size.isValid() and size.height() > 0:
            reader.setScaledSize(size.scaled(THUMB * 2, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        self.signals.loaded.emit(self.path, None if image.isNull() else image)


class QtDatasetView(QWidget):
    """The Dataset tab. ``open(dataset, data_root)``; the pass starts once both models are loaded."""

    report_ready = Signal()

    def __init__(self, state: AppState, on_open: Callable[[], None] | None = None, batch_size: int = 32,
                 workers: int = 0, cache_dir: Path | None = None):
        super().__init__()
        self.state, self.on_open, self.workers, self.cache_dir = state, on_open, workers, cache_dir
        collect_garbage_on_gui_thread()
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(1)
        self.thumb_pool = QThreadPool()
        self.thumb_pool.setMaxThreadCount(1)
        self._jobs: set[_Job] = set()
        self._cancel = threading.Event()
        self._running = False
        self._rerun = False
        self._last_progress = 0.0
        self.source = None  # catviz.dataset_source.DatasetSource
        self.results = None  # catviz.dataset_results.DatasetResults
        self.data: ReportInput | None = None
        self.report: Report | None = None
        self._models_run: dict | None = None
        self._thumbs: OrderedDict[Path, QPixmap] = OrderedDict()
        self._thumb_requested: set[Path] = set()
        self._thumb_signals = _ThumbnailSignals()
        self._thumb_signals.loaded.connect(self._on_thumbnail)
        self._build(batch_size)
        unsubscribe_on_close(self, [
            state.subscribe(Event.MODELS_CHANGED, lambda role: self._on_models_changed()),
            state.subscribe(Event.SETTINGS_CHANGED, self._on_settings_changed),
            state.subscribe(Event.IMAGES_ADDED, lambda entries: self._show_list_note()),
        ])
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # construction -----------------------------------------------------------------------
    def _build(self, batch_size: int) -> None:
        self.title = QLabel("No dataset: start catviz with --dataset (demo, coco, voc, coco-format).")
        self.title.setWordWrap(True)
        self.list_note = QLabel("")
        self.list_note.setWordWrap(True)
        self.list_note.setVisible(False)
        self.batch = QSpinBox()
        self.batch.setRange(1, 1024)
        self.batch.setValue(batch_size)
        self.batch.setToolTip("images per forward pass")
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.failed_button = QPushButton("")
        self.failed_button.setFlat(True)
        self.failed_button.clicked.connect(self.show_failed)
        self.failed_button.setVisible(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        bar = QHBoxLayout()
        for widget in (QLabel("Batch"), self.batch, self.run_button, self.cancel_button):
            bar.addWidget(widget)
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.failed_button)

        self.views = QTabWidget()
        self.summary = _table(["metric", "baseline", "CAT", "CAT − baseline"])
        self.summary.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.summary_note = QLabel("")
        self.summary_note.setWordWrap(True)
        summary = QWidget()
        layout = QVBoxLayout(summary)
        layout.addWidget(self.summary, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.summary_note)
        layout.addStretch(1)
        self.views.addTab(summary, "Summary")

        self.per_class = _table(["label", "positives", "AP baseline", "AP CAT", "Δ AP"])
        # Largest gain first, losses at the bottom: the tab's question is where CAT beats the baseline.
        self.per_class.horizontalHeader().setSortIndicator(4, Qt.SortOrder.DescendingOrder)
        self.per_class.setSortingEnabled(True)
        self.per_class.itemSelectionChanged.connect(self._on_class_selected)
        self.per_class.cellDoubleClicked.connect(lambda *_: self.views.setCurrentIndex(3))
        self.views.addTab(self.per_class, "Per class")

        self.size_mode = QComboBox()
        self.size_mode.addItems(["area in pixels of the input", "share of the image area"])
        self.size_mode.currentIndexChanged.connect(lambda _: self._show_sizes())
        self.size_table = _table(["bucket", "range", "pairs", "recall baseline", "recall CAT", "AP baseline", "AP CAT"])
        self.size_plot = pg.PlotWidget(background="w")
        self.size_plot.setMinimumHeight(160)
        self.size_plot.addLegend(offset=(-10, 10))
        self.size_plot.setLabel("left", "%")
        self.size_note = QLabel("")
        self.size_note.setWordWrap(True)
        sizes = QWidget()
        layout = QVBoxLayout(sizes)
        row = QHBoxLayout()
        row.addWidget(QLabel("Bucket by the largest object's"))
        row.addWidget(self.size_mode)
        row.addStretch(1)
        layout.addLayout(row)
        self.size_table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        layout.addWidget(self.size_table)
        layout.addWidget(self.size_plot, 1)
        layout.addWidget(self.size_note)
        self.views.addTab(sizes, "By size")

        self.label_filter = QComboBox()
        self.bucket_filter = QComboBox()
        self.bucket_filter.addItem("any size")
        self.bucket_filter.addItems(bucket_names())
        self.fixes_filter = QCheckBox("CAT fixes a miss")
        self.breaks_filter = QCheckBox("CAT breaks a hit")
        for widget in (self.label_filter, self.bucket_filter):
            widget.currentIndexChanged.connect(lambda _: self._apply_filters())
        for widget in (self.fixes_filter, self.breaks_filter):
            widget.toggled.connect(lambda _: self._apply_filters())
        self.image_count = QLabel("")
        self.images_model = _ImagesModel(self._thumbnail)
        self.images = QTableView()
        self.images.setModel(self.images_model)
        self.images.verticalHeader().setVisible(False)
        self.images.verticalHeader().setDefaultSectionSize(THUMB + 4)
        self.images.setIconSize(QSize(THUMB * 2, THUMB))
        self.images.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.images.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.images.horizontalHeader().setStretchLastSection(True)
        self.images.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        self.images.horizontalHeader().setResizeContentsPrecision(40)
        self.images.setColumnWidth(0, THUMB * 2 + 8)
        self.images.activated.connect(lambda index: self.open_image(index.row()))
        self.images.clicked.connect(lambda index: self.open_image(index.row()))
        self.gain_note = QLabel(
            "Ranked by CAT's gain: per-image F1 of CAT − F1 of the baseline at the threshold; ties by the "
            "probability gain (change of probability on the ground-truth labels minus that on the others). "
            "Click an image to open it in the compare view.")
        self.gain_note.setWordWrap(True)
        per_image = QWidget()
        layout = QVBoxLayout(per_image)
        filters = QHBoxLayout()
        for widget in (QLabel("Label"), self.label_filter, QLabel("Size"), self.bucket_filter,
                       self.fixes_filter, self.breaks_filter):
            filters.addWidget(widget)
        filters.addStretch(1)
        filters.addWidget(self.image_count)
        layout.addLayout(filters)
        layout.addWidget(self.images, 1)
        layout.addWidget(self.gain_note)
        self.views.addTab(per_image, "Per image")

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.list_note)
        layout.addLayout(bar)
        layout.addWidget(self.message)
        layout.addWidget(self.views, 1)

    # jobs -------------------------------------------------------------------------------
    def _submit(self, fn: Callable, on_success: Callable, on_failure: Callable | None = None,
                on_progress: Callable | None = None) -> None:
        job = _Job(fn)
        job.setAutoDelete(False)
        job.signals.succeeded.connect(on_success)
        job.signals.failed.connect(on_failure or self._show_error)
        if on_progress is not None:
            job.signals.progressed.connect(on_progress)
        job.signals.succeeded.connect(lambda _: self._jobs.discard(job))
        job.signals.failed.connect(lambda _: self._jobs.discard(job))
        self._jobs.add(job)
        self.pool.start(job)

    def _show_error(self, message: str) -> None:
        self.message.setText(f"<span style='color:#b00'>{message}</span>")
        self.state.report(message)

    @property
    def busy(self) -> bool:
        """Opening the dataset, running the pass or loading thumbnails (``catviz --screenshot`` waits for it)."""
        return bool(self._jobs or self._thumb_requested)

    def wait(self, msecs: int = 60000) -> bool:
        return self.pool.waitForDone(msecs) and self.thumb_pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop the pass (what it computed is kept in the cache) and wait for the workers."""
        self._cancel.set()
        self._rerun = False
        self.thumb_pool.clear()
        self._thumb_requested.clear()  # the cleared ones never arrive
        self.wait(30000)

    # opening and running ----------------------------------------------------------------
    def open(self, dataset: str, data_root: str | Path | None = None, limit: int = 0) -> None:
        """Read the split and its boxes in a worker; the pass follows once both models are loaded."""
        self.title.setText(f"Opening the {dataset} dataset…")

        def load(progress):
            from .dataset_source import open_dataset

            return open_dataset(dataset, data_root, limit)

        def failed(message: str) -> None:
            self.title.setText(f"Could not open the {dataset} dataset.")
            self._show_error(message)

        self._submit(load, self._on_opened, failed)

    def _on_opened(self, source) -> None:
        self.source = source
        self.title.setText(f"<b>{source.describe()}</b>")
        self.label_filter.blockSignals(True)
        self.label_filter.clear()
        self.label_filter.addItem("all labels")
        self.label_filter.addItems(source.class_names)
        self.label_filter.blockSignals(False)
        self._show_list_note()
        self.run()

    def _show_list_note(self) -> None:
        """Say when the image list holds only part of the split (``catviz --limit``), which is
        not visible from the list itself."""
        if self.source is None:
            return
        paths = {sample.path for sample in self.source.split.samples}
        listed, total = sum(entry.path in paths for entry in self.state.images), len(paths)
        self.list_note.setVisible(listed < total)
        self.list_note.setText(
            f"The image list shows {listed} of the {total} images (catviz --limit); all {total} are scored "
            "here, and an image opened from Per image is added to the list.")

    def _models(self) -> dict | None:
        models = {role: self.state.models.get(role) for role in ("baseline", "cat")}
        return models if all(models.values()) else None

    def _on_models_changed(self) -> None:
        models = self._models()
        if self.source is None or models is None or (
                self._models_run is not None and all(models[r] is self._models_run[r] for r in models)):
            return
        if self._running:  # a model changed under the pass: stop it, start again with the new pair
            self._rerun = True
            self._cancel.set()
        else:
            self.run()

    def run(self) -> None:
        """Start the pass (cached rows are read, the rest computed) with the loaded models."""
        models = self._models()
        if self.source is None:
            return
        if models is None:
            self.message.setText("Waiting for both models (baseline and CAT) to be loaded…")
            return
        if self._running:
            return
        self._running, self._models_run = True, models
        self._cancel.clear()
        self.message.setText("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("reading the cache…")
        source, batch, workers, cache_dir, cancel = self.source, self.batch.value(), self.workers, self.cache_dir, self._cancel
        threshold = self.state.settings.threshold
        self._last_progress = 0.0

        def work(progress):
            from .dataset_results import report_input, run_dataset

            def report_progress(p) -> None:
                now = time.monotonic()
                if now - self._last_progress >= PROGRESS_INTERVAL_S or p.done == p.total:
                    self._last_progress = now
                    progress((p.done, p.total, p.cached, p.images_per_second, p.eta_seconds))

            results = run_dataset(source, models, batch, workers, cache_dir, report_progress, cancel.is_set)
            data = report_input(results)
            return results, data, build_report(data, threshold)

        self._submit(work, self._on_finished, self._on_run_failed, self._on_progress)

    def cancel(self) -> None:
        self._rerun = False
        self._cancel.set()
        self.progress.setFormat("cancelling…")

    def _on_progress(self, values: tuple) -> None:
        done, total, cached, rate, eta = values
        done, total = done + cached, total + cached  # the whole pass; the rate and ETA count computed images
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        cached_text = f" ({cached} from the cache)" if cached else ""
        self.progress.setFormat(f"{done} / {total} images{cached_text} · {rate:.0f} img/s · ETA {_format_seconds(eta)}")
        self.progress.setToolTip("")

    def _on_run_failed(self, message: str) -> None:
        self._running = False
        self._models_run = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed")
        self._show_error(message)

    def _on_finished(self, outcome: tuple) -> None:
        self.results, self.data, report = outcome
        self._running = False
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        n, scored, failed = len(self.data.paths), int(self.data.scored.sum()), len(self.data.failed)
        self.progress.setRange(0, max(n, 1))
        self.progress.setValue(scored + failed)
        self.progress.setFormat(finished_text(self.results.complete, scored, n, self.results.computed,
                                              self.results.seconds))
        self.progress.setToolTip(finished_tooltip(self.results.complete, scored, n, failed, self.results.computed, self.results.seconds))
        self._show_report(report)
        if self._rerun:
            self._rerun = False
            self.run()
        elif report.threshold != self.state.settings.threshold:  # changed while the pass ran
            self._on_settings_changed({"threshold"})

    def _on_settings_changed(self, keys) -> None:
        if "threshold" in keys and self.data is not None and not self._running:
            data, threshold = self.data, self.state.settings.threshold
            self._submit(lambda progress: build_report(data, threshold), self._show_report)

    # showing the report -----------------------------------------------------------------
    def _show_report(self, report: Report) -> None:
        self.report = report
        failed = len(report.failed)
        self.failed_button.setVisible(bool(failed))
        self.failed_button.setText(f"{failed} image{'s' * (failed != 1)} not decoded…")
        self._show_summary()
        self._show_per_class()
        self._show_sizes()
        self._apply_filters()
        self.report_ready.emit()

    def _show_summary(self) -> None:
        report, table = self.report, self.summary
        base, cat = report.summary.get("baseline", {}), report.summary.get("cat", {})
        rows = [(key, base.get(key), cat.get(key)) for key in SUMMARY_KEYS]
        rows += [(f"mAP of CAT's {level} classifier alone", None, value)
                 for level, value in (cat.get("levels") or {}).items()]
        table.setRowCount(len(rows))
        for r, (name, b, c) in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            table.setItem(r, 1, _NumberItem(b))
            table.setItem(r, 2, _NumberItem(c))
            table.setItem(r, 3, _NumberItem(c - b if b is not None and c is not None else None, signed=True))
        scored, total = len(report.images), len(self.data.paths)
        self.summary_note.setText(
            f"{scored} of {total} images scored by both models"
            + (f"; {_could_not_be_decoded(len(report.failed))} and {_is_are(len(report.failed))} left out"
               if report.failed else "")
            + (" (pass cancelled: press Run to continue)" if self.results is not None and not self.results.complete else "")
            + f". Threshold {report.threshold:g}. " + _eval_note(report.threshold))

    def _show_per_class(self) -> None:
        table = self.per_class
        table.setSortingEnabled(False)
        table.setRowCount(len(self.report.per_class))
        for r, row in enumerate(self.report.per_class):
            label = QTableWidgetItem(row["label"])
            label.setData(Qt.ItemDataRole.UserRole, r)
            table.setItem(r, 0, label)
            table.setItem(r, 1, _NumberItem(row["positives"], 0))
            table.setItem(r, 2, _NumberItem(row.get("AP_baseline")))
            table.setItem(r, 3, _NumberItem(row.get("AP_cat")))
            table.setItem(r, 4, _NumberItem(row.get("delta"), signed=True))
        table.setSortingEnabled(True)

    def _show_sizes(self) -> None:
        if self.report is None:
            return
        key = "pixels" if self.size_mode.currentIndex() == 0 else "share"
        rows = self.report.by_size[key]
        table = self.size_table
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(row["bucket"]))
            table.setItem(r, 1, QTableWidgetItem(row["range"]))
            table.setItem(r, 2, _NumberItem(row["pairs"], 0))
            for c, name in enumerate(("recall_baseline", "recall_cat", "AP_baseline", "AP_cat"), start=3):
                table.setItem(r, c, _NumberItem(row.get(name)))
        plot = self.size_plot
        plot.clear()
        x = np.arange(len(rows), dtype=float)
        width = 0.2
        series = [("AP baseline", "AP_baseline", BASELINE_COLOR, -1.5), ("AP CAT", "AP_cat", CAT_COLOR, -0.5),
                  ("recall baseline", "recall_baseline", BASELINE_COLOR + (110,), 0.5),
                  ("recall CAT", "recall_cat", CAT_COLOR + (110,), 1.5)]
        for name, field, color, offset in series:
            heights = np.array([row.get(field) if row.get(field) is not None else np.nan for row in rows], float)
            plot.addItem(pg.BarGraphItem(x=x + offset * width, height=np.nan_to_num(heights), width=width * 0.95,
                                         brush=pg.mkBrush(*color), pen=None, name=name))
        plot.getAxis("bottom").setTicks([[(i, f"{row['bucket']} ({row['pairs']} pairs)") for i, row in enumerate(rows)]])
        plot.setYRange(0, 100)
        plot.setXRange(-0.6, len(rows) - 0.4)
        unit = (f"pixels of the {self.report.input_size}×{self.report.input_size} input (after the test resize)"
                if key == "pixels" else "share of the image area")
        self.size_note.setText(
            f"Every positive (image, label) is placed by its largest instance, in {unit}. "
            f"Recall: share of the bucket's pairs at or above {self.report.threshold:g}. AP: per label, the bucket's "
            "positives against all images without the label, averaged over labels. Light bars: recall.")

    def _on_class_selected(self) -> None:
        rows = self.per_class.selectionModel().selectedRows()
        if rows:
            label = self.per_class.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)
            self.label_filter.setCurrentIndex(int(label) + 1)

    def _apply_filters(self) -> None:
        if self.report is None:
            return
        label = self.label_filter.currentIndex() - 1
        bucket = self.bucket_filter.currentIndex() - 1
        rows = filter_images(self.report, label if label >= 0 else None, bucket if bucket >= 0 else None,
                             self.fixes_filter.isChecked(), self.breaks_filter.isChecked())
        self.images_model.set_rows(self.report, self.data, rows)
        for column in range(1, self.images_model.columnCount()):  # not the thumbnails: only visible rows load them
            self.images.resizeColumnToContents(column)  # from the first rows only (resizeContentsPrecision)
        self.image_count.setText(f"{len(rows)} of {len(self.report.images)} images")

    # images -----------------------------------------------------------------------------
    def _thumbnail(self, path: Path) -> QPixmap | None:
        pixmap = self._thumbs.get(path)
        if pixmap is None and path not in self._thumb_requested:
            self._thumb_requested.add(path)
            self.thumb_pool.start(_ThumbnailJob(path, self._thumb_signals))
        return pixmap

    def _on_thumbnail(self, path: Path, image: QImage | None) -> None:
        self._thumb_requested.discard(path)
        if image is None:
            return
        self._thumbs[path] = QPixmap.fromImage(image)
        while len(self._thumbs) > MAX_THUMBS:
            self._thumbs.popitem(last=False)
        model = self.images_model
        if model.rowCount():  # only the visible rows are repainted
            model.dataChanged.emit(model.index(0, 0), model.index(model.rowCount() - 1, 0),
                                   [Qt.ItemDataRole.DecorationRole])

    def open_image(self, row: int) -> None:
        """Show the image in the compare view, with its ground truth, on the filtered label if one is
        chosen (unless a fixed label is set: it holds for every image)."""
        if self.data is None or not 0 <= row < len(self.images_model.rows):
            return
        i = self.images_model.image_index(row)
        path = self.data.paths[i]
        truth = {self.data.class_names[c] for c in np.flatnonzero(self.data.targets[i] == 1)}
        self.state.add_images([path], {path: truth})
        index = next(k for k, e in enumerate(self.state.images) if e.path == path)
        if self.state.images[index].ground_truth is None:
            self.state.images[index].ground_truth = truth
        self.state.select(index)
        label = self.label_filter.currentIndex() - 1
        # As if clicked in the predictions; a label the user fixed for every image stays.
        if (self.state.settings.label_mode == "top" and 0 <= label < len(self.data.class_names)
                and self.data.class_names[label] in self.state.class_names):
            self.state.update_settings(label=self.data.class_names[label])
        if self.on_open is not None:
            self.on_open()

    def show_failed(self) -> None:
        if self.report is None:
            return
        lines = [self.report.failed[i] for i in sorted(self.report.failed)]
        shown = "\n".join(lines[:50]) + (f"\n… and {len(lines) - 50} more" if len(lines) > 50 else "")
        them = "it is" if len(lines) == 1 else "they are"
        QMessageBox.information(self, "Images that could not be decoded",
                                f"{_could_not_be_decoded(len(lines), 'image')}; {them} left out of every score.\n\n{shown}")

