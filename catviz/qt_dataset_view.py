"""The Dataset tab: every loaded model over a whole split — Table 3 live (each model, each
level alone, per object size, with Δ against the reference and its 95 % paired-bootstrap
interval; fixed / broken labels with the exact McNemar p), per class ΔAP with intervals
drawn as error bars, and the two panels' models summary, by size and per image — with a
progress bar (images/s, ETA) and a cancel.

A view only: it draws ``state.dataset`` (:mod:`catviz.dataset_state`) and asks its
controller (:class:`catviz.qt_dataset_jobs.DatasetController`, the app's one job system)
to open, run and cancel. Selecting an image opens it in the compare view with its ground
truth. Tables: :mod:`catviz.qt_dataset_tables`; definitions: :mod:`catviz.dataset_report`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import colors
from .dataset_report import SUMMARY_KEYS, Report, bucket_names, filter_images, focus_label, rekey
from .dataset_state import DatasetEvent, PassProgress
from .qt_dataset_jobs import DatasetController
from .qt_dataset_tables import (
    THUMB,
    ImagesModel,
    NumberItem,
    Thumbnails,
    could_not_be_decoded,
    difference_item,
    eval_note,
    finished_text,
    finished_tooltip,
    format_seconds,
    interval_item,
    interval_text,
    is_are,
    make_table,
    number_text,
)
from .qt_events import unsubscribe_on_close
from .qt_layouts import QtFlowLayout, control_group, scrolling
from .roles import ROLES
from .state import AppState, Event
from .study import Study

BASELINE_COLOR, CAT_COLOR = colors.rgb(colors.BASELINE), colors.rgb(colors.CAT)  # as in every chart
MODEL_HEADERS = ["model", "mAP", "CF1", "OF1", "labels fixed / broken", "each level alone: mAP [95%]"]
#: The compared models' colours in the error-bar plot (the reference has none: it is the 0 line).
SERIES_COLORS = [(47, 109, 181), (214, 110, 30), (42, 157, 74), (150, 70, 170), (190, 60, 60), (30, 150, 160)]


def names_of(found: Study) -> list[str]:
    return list(found.names.values())


def finite(*values) -> bool:
    return all(v is not None and np.isfinite(v) for v in values)


#: The tables' least width: narrower than their columns, they scroll sideways (the tab fits 800x600).
TABLE_LEAST_WIDTH = 200
#: The Models and Summary pages' least height: below it they scroll rather than squeeze their tables.
PAGE_LEAST_HEIGHT = 240
SIZES_LEAST_HEIGHT = 460  # By size: its table, its plot (at least 160 px) and its note


class QtDatasetView(QWidget):
    """The Dataset tab. ``open(dataset, data_root)``; the pass starts once both models are loaded."""

    report_ready = Signal()

    def __init__(self, state: AppState, on_open: Callable[[], None] | None = None, batch_size: int = 32,
                 workers: int = 0, cache_dir: Path | None = None, controller: DatasetController | None = None):
        super().__init__()
        self.state, self.dataset, self.on_open = state, state.dataset, on_open
        self.controller = controller or DatasetController(state, workers, cache_dir)
        self.thumbnails = Thumbnails(self.controller.workers)
        self.thumbnails.loaded.connect(self._on_thumbnail)
        self._build(batch_size)
        self.controller.batch_size = batch_size  # the spin box's value, for every pass (automatic ones too)
        self.batch.valueChanged.connect(lambda value: setattr(self.controller, "batch_size", value))
        d = self.dataset
        unsubscribe_on_close(self, [
            state.subscribe(Event.IMAGES_ADDED, lambda entries: self._show_list_note()),
            d.subscribe(DatasetEvent.OPENING, self._on_opening),
            d.subscribe(DatasetEvent.OPENED, self._on_opened),
            d.subscribe(DatasetEvent.OPEN_FAILED,
                        lambda name, message: (self.title.setText(f"Could not open the {name} dataset."),
                                               self.progress.setRange(0, 1))),
            d.subscribe(DatasetEvent.WAITING_FOR_MODELS,
                        lambda: self.message.setText("Waiting for two models or more to be loaded (File ▸ Open "
                                                     "models…)…")),
            d.subscribe(DatasetEvent.RUN_STARTED, self._on_run_started),
            d.subscribe(DatasetEvent.PROGRESS_CHANGED, self._on_progress),
            d.subscribe(DatasetEvent.CANCELLING, lambda: self.progress.setFormat("cancelling…")),
            d.subscribe(DatasetEvent.RUN_FAILED, self._on_run_failed),
            d.subscribe(DatasetEvent.RUN_ENDED, self._on_run_ended),
            d.subscribe(DatasetEvent.STUDY_READY, self._show_study),
            d.subscribe(DatasetEvent.REPORT_READY, self._show_report),
            d.subscribe(DatasetEvent.ERROR,
                        lambda message: self.message.setText(f"<span style='color:#b00'>{message}</span>")),
        ])

    # what the state holds, as the tab's own (the tests and the app read them here) -------------
    @property
    def source(self):
        return self.dataset.source

    @property
    def results(self):
        return self.dataset.results

    @property
    def data(self):
        return self.dataset.data

    @property
    def report(self) -> Report | None:
        return self.dataset.report

    @property
    def pair_data(self):
        """``data`` with the two panels' models as ``baseline`` (left) and ``cat`` (right): what
        the two-model report (Summary, By size, Per image) reads."""
        pair = self.controller.shown_pair
        if self.data is None or pair is None:  # no comparison yet (or data keyed baseline and cat already)
            return self.data
        return rekey(self.data, dict(zip(ROLES, pair, strict=True)))

    @property
    def study(self) -> Study | None:
        return self.dataset.study

    @property
    def busy(self) -> bool:
        """Opening the dataset, running the pass or loading thumbnails (``catviz --screenshot`` waits for it)."""
        return self.controller.busy

    def open(self, dataset: str, data_root: str | Path | None = None, limit: int = 0) -> None:
        self.controller.open(dataset, data_root, limit)

    def run(self) -> None:
        self.controller.run()

    def cancel(self) -> None:
        self.controller.cancel()

    def wait(self, msecs: int = 60000) -> bool:
        return self.controller.wait(msecs)

    def shutdown(self) -> None:
        self.controller.shutdown()

    # construction -----------------------------------------------------------------------
    def _build(self, batch_size: int) -> None:
        self._build_bar(batch_size)
        self.views = QTabWidget()
        self.views.setUsesScrollButtons(True)  # the five tabs scroll at 800x600 instead of widening the window's middle
        self._build_models()
        self._build_summary()
        self._build_per_class()
        self._build_sizes()
        self._build_per_image()
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.list_note)
        layout.addLayout(self.bar)
        layout.addWidget(self.message)
        compared = QtFlowLayout()  # the note beside the box, or below it in a narrow window
        compared.addWidget(control_group(QLabel("Reference"), self.reference_box))
        compared.addWidget(self.pair_note)
        layout.addLayout(compared)
        layout.addWidget(self.views, 1)

    def _build_bar(self, batch_size: int) -> None:
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
        self.write_button = QPushButton("Write report…")
        self.write_button.setToolTip("write the catviz-eval --compare report of this pass (report.json, scores.npz, "
                                     "report.html with 95% intervals and the explanations over the split) into a folder")
        self.write_button.clicked.connect(self.choose_report_folder)
        self.write_button.setEnabled(False)
        self.failed_button = QPushButton("")
        self.failed_button.setFlat(True)
        self.failed_button.clicked.connect(self.show_failed)
        self.failed_button.setVisible(False)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.reference_box = QComboBox()
        self.reference_box.setToolTip("the model every other is compared with (default: the first baseline model "
                                      "loaded, as catviz-eval --compare)")
        self.reference_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.reference_box.activated.connect(lambda _: self.controller.set_reference(self.reference_box.currentText()))
        self.pair_note = QLabel("")
        self.pair_note.setWordWrap(True)
        self.bar = QtFlowLayout()  # the progress bar beside the buttons, below them in a narrow window
        for widget in (control_group(QLabel("Batch"), self.batch), self.run_button, self.cancel_button,
                       self.write_button, self.failed_button):
            self.bar.addWidget(widget)
        self.bar.add_filling(self.progress)

    def _build_models(self) -> None:
        """Table 3 live: a row per model, each number over its Δ against the reference and the interval."""
        self.models_table = make_table(MODEL_HEADERS)
        self.models_table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.models_table.setMinimumWidth(TABLE_LEAST_WIDTH)  # as wide as its columns where there is room, else it scrolls
        self.models_table.setWordWrap(True)
        self.models_note = QLabel("")
        self.models_note.setWordWrap(True)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.models_table)
        layout.addWidget(self.models_note)
        layout.addStretch(1)
        self.views.addTab(scrolling(page, PAGE_LEAST_HEIGHT), "Models")  # a short window scrolls the page

    def _build_summary(self) -> None:
        self.summary = make_table(["metric", "left", "right", "right − left"])
        self.summary.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.summary.setMinimumWidth(TABLE_LEAST_WIDTH)  # as wide as its columns where there is room, else it scrolls
        self.summary_note = QLabel("")
        self.summary_note.setWordWrap(True)
        summary = QWidget()
        layout = QVBoxLayout(summary)
        layout.addWidget(self.summary, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.summary_note)
        layout.addStretch(1)
        self.views.addTab(scrolling(summary, PAGE_LEAST_HEIGHT), "Summary")

    def _build_per_class(self) -> None:
        """Every model's AP per class, ΔAP [95%] against the reference; the intervals as error bars."""
        self.per_class = make_table(["label", "positives"])
        # Largest gain first, losses at the bottom: the tab's question is where a model beats the reference.
        self.per_class.setSortingEnabled(True)
        self.per_class.itemSelectionChanged.connect(self._on_class_selected)
        self.per_class.cellDoubleClicked.connect(lambda *_: self.views.setCurrentWidget(self.per_image_page))
        self.class_plot = pg.PlotWidget(background="w")
        self.class_plot.setMinimumWidth(260)
        self.class_plot.invertY(True)
        self.class_plot.setLabel("bottom", "Δ AP against the reference, 95% interval (hollow: contains 0)")
        self.class_plot.addLegend(offset=(-10, 10), labelTextColor=(40, 40, 40))
        self.class_bars: dict[str, pg.ErrorBarItem] = {}  # model name → its intervals, one row per class
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.per_class)
        splitter.addWidget(self.class_plot)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([500, 500])
        self.views.addTab(splitter, "Per class")

    def _build_sizes(self) -> None:
        self.size_mode = QComboBox()
        self.size_mode.addItems(["area in pixels of the input", "share of the image area"])
        self.size_mode.currentIndexChanged.connect(lambda _: self._show_sizes())
        self.size_table = make_table(["bucket", "range", "pairs", "recall baseline", "recall CAT", "AP baseline", "AP CAT"])
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
        self.size_table.setMinimumWidth(TABLE_LEAST_WIDTH)  # as wide as its columns where there is room, else it scrolls
        layout.addWidget(self.size_table)
        layout.addWidget(self.size_plot, 1)
        layout.addWidget(self.size_note)
        self.views.addTab(scrolling(sizes, SIZES_LEAST_HEIGHT), "By size")

    def _build_per_image(self) -> None:
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
        self.images_model = ImagesModel(self.thumbnails.get)
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
            "Ranked by the right panel's model's gain over the left's (\"CAT\" and \"baseline\" in the columns and "
            "filters): per-image F1 of the right − F1 of the left at the threshold; ties by the probability gain "
            "(change of probability on the ground-truth labels minus that on the others). Click an image to open "
            "it in the compare view.")
        self.gain_note.setWordWrap(True)
        per_image = QWidget()
        layout = QVBoxLayout(per_image)
        filters = QtFlowLayout()  # wraps in a narrow window (800x600) rather than widening the tab
        for widget in (QLabel("Label"), self.label_filter, QLabel("Size"), self.bucket_filter,
                       self.fixes_filter, self.breaks_filter, self.image_count):
            filters.addWidget(widget)
        layout.addLayout(filters)
        layout.addWidget(self.images, 1)
        layout.addWidget(self.gain_note)
        self.per_image_page = per_image
        self.views.addTab(per_image, "Per image")

    # the state → widgets -----------------------------------------------------------------
    def _on_opening(self, name: str) -> None:
        """Reading (for the demo on a first start: generating) the split: a busy bar until it is read."""
        self.title.setText(f"Opening the {name} dataset… (the first time, the demo set is generated: about "
                           "half a minute)" if name == "demo" else f"Opening the {name} dataset…")
        self.progress.setRange(0, 0)
        self.progress.setFormat("")

    def _on_opened(self, source) -> None:
        self.progress.setRange(0, 1)
        self.title.setText(f"<b>{source.describe()}</b>")
        self.label_filter.blockSignals(True)
        self.label_filter.clear()
        self.label_filter.addItem("all labels")
        self.label_filter.addItems(source.class_names)
        self.label_filter.blockSignals(False)
        self._show_list_note()

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

    def _on_run_started(self) -> None:
        self.message.setText("")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("reading the cache…")

    def _on_progress(self, p: PassProgress) -> None:
        done, total = p.done + p.cached, p.total + p.cached  # the whole pass; the rate and ETA count computed images
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        cached_text = f" ({p.cached} from the cache)" if p.cached else ""
        self.progress.setFormat(f"{done} / {total} images{cached_text} · {p.images_per_second:.0f} img/s · "
                                f"ETA {format_seconds(p.eta_seconds)}")
        self.progress.setToolTip("")

    def _on_run_failed(self, message: str) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed")

    def _on_run_ended(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        results, data = self.dataset.results, self.dataset.data
        if results is None or data is None:  # cancelled before it started
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("cancelled")
            return
        n, scored, failed = len(data.paths), int(data.scored.sum()), len(data.failed)
        self.progress.setRange(0, max(n, 1))
        self.progress.setValue(scored + failed)
        self.progress.setFormat(finished_text(results.complete, scored, n, results.computed, results.seconds))
        self.progress.setToolTip(finished_tooltip(results.complete, scored, n, failed, results.computed,
                                                  results.seconds))

    # showing the report -----------------------------------------------------------------
    def _show_report(self, report: Report) -> None:
        failed = len(report.failed)
        self.failed_button.setVisible(bool(failed))
        self.failed_button.setText(f"{failed} image{'s' * (failed != 1)} not decoded…")
        left, right = self.controller.shown_pair or ("baseline", "CAT")
        self.summary.setHorizontalHeaderLabels(["metric", left, right, "right − left"])
        self.size_table.setHorizontalHeaderLabels(["bucket", "range", "pairs", f"recall {left}", f"recall {right}",
                                                   f"AP {left}", f"AP {right}"])
        self.pair_note.setText(
            f"Models and Per class: every loaded model against the reference. Summary, By size, Per image: the "
            f"panels' models, left <b>{left}</b> and right <b>{right}</b> (Models ▸ Left/Right panel).")
        self._show_summary()
        self._show_sizes()
        self._apply_filters()
        self.write_button.setEnabled(True)
        self.report_ready.emit()

    def _show_study(self, found: Study) -> None:
        """Every model against the reference: the reference box, the Models tab, Per class."""
        names = list(found.names.values())
        self.reference_box.clear()
        self.reference_box.addItems(names)
        self.reference_box.setCurrentText(found.names[found.reference])
        self._show_models(found)
        self._show_per_class(found)
        self._show_class_plot(found)

    def _bootstrap(self, found: Study) -> str:
        return f"{found.resamples} resamples, seed {found.seed}"

    def _show_models(self, found: Study) -> None:
        """A row per model: each number over its Δ against the reference [95% interval]; the
        levels alone; AP per object size (pixel buckets, as By size)."""
        table, summary, boot = self.models_table, found.report.summary, self._bootstrap(found)
        comparisons = {row["b"]: row for row in found.comparisons}
        buckets = found.by_size["pixels"]
        table.setColumnCount(len(MODEL_HEADERS) + len(buckets))
        table.setHorizontalHeaderLabels([*MODEL_HEADERS, *(f"AP {row['bucket']} ({row['range']}, {row['pairs']} pairs)"
                                                           for row in buckets)])
        table.setRowCount(len(found.names))
        for r, (key, name) in enumerate(found.names.items()):
            m, c = summary.get(key, {}), comparisons.get(name)
            item = QTableWidgetItem(name + ("\n(reference)" if key == found.reference else ""))
            item.setToolTip(str(self.dataset.models_run[key].path) if self.dataset.models_run else name)
            table.setItem(r, 0, item)
            for column, metric, ci in ((1, "mAP", "ci95"), (2, "CF1", "ci95_CF1"), (3, "OF1", "ci95_OF1")):
                table.setItem(r, column, difference_item(m.get(metric), c and c[f"delta_{metric}"], c and c[ci], boot))
            labels = c["labels"] if c else None
            fixed = QTableWidgetItem(f"{labels['fixed']} / {labels['broken']}\np = {labels['p']:.2g}" if labels
                                     else "reference")
            fixed.setData(Qt.ItemDataRole.UserRole, labels)
            fixed.setToolTip(f"true labels the reference misses and this model finds / the reference finds and this "
                             f"model misses (threshold {found.report.threshold:g}); p: exact McNemar test")
            table.setItem(r, 4, fixed)
            table.setItem(r, 5, QTableWidgetItem("\n".join(
                f"{level} {number_text(v['mAP'])} {interval_text(v['ci95'])}" for level, v in found.levels[key].items())
                or "–"))
            for k, row in enumerate(buckets):
                table.setItem(r, len(MODEL_HEADERS) + k, difference_item(
                    row["AP"].get(name), row["delta"].get(name), row["ci95"].get(name), boot))
        table.resizeRowsToContents()
        self.models_note.setText(
            f"Under each number: the model − the reference ({found.names[found.reference]}) with its 95% interval "
            f"from a paired bootstrap over the {len(found.report.images)} scored images ({boot}), grey and ≈0 where "
            "it contains 0. Fixed / broken: true labels the reference misses and the model finds, and the opposite; "
            "p: the exact two-sided McNemar test of those counts (pairs taken as independent). Levels: each "
            "classifier's logits alone. Size: the largest object's area in input pixels. The numbers of "
            "catviz-eval --compare.")

    def _show_per_class(self, found: Study) -> None:
        table, names = self.per_class, names_of(found)
        others = [name for key, name in found.names.items() if key != found.reference]
        one = len(others) == 1
        headers = ["label", "positives", *(f"AP\n{n}" for n in names)]  # a model's name under what it heads
        for name in others:
            headers += ["Δ AP" if one else f"Δ AP\n{name}", "Δ AP 95% interval" if one else f"95%\n{name}"]
        boot = self._bootstrap(found)
        table.setSortingEnabled(False)
        table.clearContents()
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setRowCount(len(found.per_class))
        for r, row in enumerate(found.per_class):
            label = QTableWidgetItem(row["label"])
            label.setData(Qt.ItemDataRole.UserRole, r)
            table.setItem(r, 0, label)
            table.setItem(r, 1, NumberItem(row["positives"], 0))
            for k, name in enumerate(names):
                table.setItem(r, 2 + k, NumberItem(row["AP"].get(name)))
            for k, name in enumerate(others):
                column = 2 + len(names) + 2 * k
                table.setItem(r, column, NumberItem(row["delta"].get(name), signed=True))
                table.setItem(r, column + 1, interval_item(row["ci95"].get(name), row["spans_zero"].get(name), boot))
        table.setSortingEnabled(True)
        table.sortItems(2 + len(names), Qt.SortOrder.DescendingOrder)  # the first model's largest gain first

    def _show_class_plot(self, found: Study) -> None:
        """Per class, each model's ΔAP against the reference as a point and its 95% interval as an
        error bar (rows: classes, top to bottom); hollow where the interval contains 0."""
        plot = self.class_plot
        plot.clear()
        self.class_bars = {}
        others = [name for key, name in found.names.items() if key != found.reference]
        step = 0.7 / max(len(others), 1)
        for k, name in enumerate(others):
            color = SERIES_COLORS[k % len(SERIES_COLORS)]
            rows = [(r, row["delta"][name], row["ci95"][name], row["spans_zero"][name])
                    for r, row in enumerate(found.per_class) if finite(row["delta"].get(name), *row["ci95"][name])]
            if not rows:
                continue
            y = np.array([r for r, *_ in rows], float) + (k - (len(others) - 1) / 2) * step
            x = np.array([d for _, d, _, _ in rows], float)
            lo, hi = np.array([ci[0] for *_, ci, _ in rows], float), np.array([ci[1] for *_, ci, _ in rows], float)
            bars = pg.ErrorBarItem(x=x, y=y, left=x - lo, right=hi - x, beam=step * 0.5, pen=pg.mkPen(color, width=2))
            plot.addItem(bars)
            self.class_bars[name] = bars
            spans = np.array([z for *_, z in rows], bool)
            brushes = [pg.mkBrush(255, 255, 255) if z else pg.mkBrush(*color) for z in spans]
            plot.addItem(pg.ScatterPlotItem(x=x, y=y, size=8, pen=pg.mkPen(color, width=1.5), brush=brushes,
                                            name=name))
        plot.addItem(pg.InfiniteLine(0, angle=90, pen=pg.mkPen((120, 120, 120), style=Qt.PenStyle.DashLine)))
        plot.getAxis("left").setTicks([[(r, row["label"] + (" ≈0" if any(row["spans_zero"].values()) else ""))
                                        for r, row in enumerate(found.per_class)]])
        plot.setYRange(-0.4 - 0.25 * (1 + len(others)), len(found.per_class) - 0.4)  # room for the legend on top

    def _show_summary(self) -> None:
        report, table = self.report, self.summary
        base, cat = report.summary.get("baseline", {}), report.summary.get("cat", {})
        rows = [(key, base.get(key), cat.get(key)) for key in SUMMARY_KEYS]
        rows += [(f"mAP of CAT's {level} classifier alone", None, value)
                 for level, value in (cat.get("levels") or {}).items()]
        table.setRowCount(len(rows))
        for r, (name, b, c) in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            table.setItem(r, 1, NumberItem(b))
            table.setItem(r, 2, NumberItem(c))
            table.setItem(r, 3, NumberItem(c - b if b is not None and c is not None else None, signed=True))
        scored, total = len(report.images), len(self.data.paths)
        self.summary_note.setText(
            f"{scored} of {total} images scored by both models"
            + (f"; {could_not_be_decoded(len(report.failed))} and {is_are(len(report.failed))} left out"
               if report.failed else "")
            + (" (pass cancelled: press Run to continue)" if self.results is not None and not self.results.complete else "")
            + f". Threshold {report.threshold:g}. " + eval_note(report.threshold))

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
            table.setItem(r, 2, NumberItem(row["pairs"], 0))
            for c, name in enumerate(("recall_baseline", "recall_cat", "AP_baseline", "AP_cat"), start=3):
                table.setItem(r, c, NumberItem(row.get(name)))
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
        sized = self.images_model.report is self.report
        self.images_model.set_rows(self.report, self.pair_data, rows)
        if not sized:  # once per report: at 40k rows, sizing on every filter was half its time
            for column in range(1, self.images_model.columnCount()):  # not the thumbnails: only visible rows load them
                self.images.resizeColumnToContents(column)  # from the first rows only (resizeContentsPrecision)
        self.image_count.setText(f"{len(rows)} of {len(self.report.images)} images")

    # images -----------------------------------------------------------------------------
    def _on_thumbnail(self) -> None:
        model = self.images_model
        if model.rowCount():  # only the visible rows are repainted
            model.dataChanged.emit(model.index(0, 0), model.index(model.rowCount() - 1, 0),
                                   [Qt.ItemDataRole.DecorationRole])

    def open_image(self, row: int) -> None:
        """Show the image in the compare view, with its ground truth, on the label its row is about
        (see dataset_report.focus_label; unless a fixed label is set: it holds for every image)."""
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
        chosen = self.label_filter.currentIndex() - 1
        # The label the row is about (the filtered one, else the one CAT changes), as if clicked in
        # the predictions; a label the user fixed for every image stays.
        label = focus_label(self.report, self.pair_data, i, chosen if chosen >= 0 else None) if self.report else None
        if (self.state.settings.label_mode == "top" and label is not None and 0 <= label < len(self.data.class_names)
                and self.data.class_names[label] in self.state.class_names):
            self.state.update_settings(label=self.data.class_names[label])
        if self.on_open is not None:
            self.on_open()

    def choose_report_folder(self) -> None:
        """Write report…: as File ▸ Export report…."""
        self.export_report()

    def export_report(self, folder: Path | None = None) -> bool:
        """File ▸ Export report…: ``catviz-eval --compare --report``'s files for every loaded model
        into a folder (chosen in a dialog unless given). A folder that holds files is written
        into only when the user confirms (the report's own files there are replaced)."""
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self, "Export the report (report.html, report.json, scores.npz) "
                                                      "into a folder")
            if not chosen:
                return False
            folder = Path(chosen)
        if folder.is_dir() and any(folder.iterdir()):
            answer = QMessageBox.question(
                self, "Replace the report?",
                f"{folder} already holds files. Write the report into it anyway? report.html, report.json and "
                "scores.npz (and with two models the two-model report's JSON files) are replaced; other files stay.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self.message.setText(f"Report not written: {folder} already holds files")
                return False
            return self.write_report(folder, overwrite=True)
        return self.write_report(folder)

    def write_report(self, folder: Path, overwrite: bool = False) -> bool:
        """The command's report files into ``folder`` (in a worker); a folder that holds files
        is refused unless ``overwrite``."""
        if folder.exists() and not folder.is_dir():
            self.message.setText(f"<span style='color:#b00'>{folder} is a file; choose a folder</span>")
            return False
        if not overwrite and folder.is_dir() and any(folder.iterdir()):
            self.message.setText(f"<span style='color:#b00'>{folder} already holds files; choose an empty folder</span>")
            return False
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self.dataset.error(f"Report not written: cannot create {folder} ({err.strerror or err})")
            return False
        self.message.setText(f"Writing the report into {folder} (the maps over the split take a while)…")

        def done(text: str) -> None:
            self.message.setText(text)
            self.state.report(text, error=False)

        return self.controller.write_report(folder, done)

    def show_failed(self) -> None:
        if self.report is None:
            return
        lines = [self.report.failed[i] for i in sorted(self.report.failed)]
        shown = "\n".join(lines[:50]) + (f"\n… and {len(lines) - 50} more" if len(lines) > 50 else "")
        them = "it is" if len(lines) == 1 else "they are"
        QMessageBox.information(self, "Images that could not be decoded",
                                f"{could_not_be_decoded(len(lines), 'image')}; {them} left out of every score.\n\n{shown}")
