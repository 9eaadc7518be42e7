"""Predictions of both models: one label table (same row order for both), the label
choice with a search box, the threshold, per-level logits of the top labels, and where
the shown label's logit comes from (the layer share)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QToolTip,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import colors as colors_
from .methods import CAM, depth_title
from .qt_events import unsubscribe_on_close
from .qt_layouts import QtFlowLayout, QtWrappedLabel, control_group
from .qt_layouts import scrolling as in_scroll_area
from .results import InferenceResult, at_or_above, probability_text
from .roles import ROLE_TITLES
from .state import ROLES, AppState, Event

MISSED = QColor("#d32f2f")  # in the ground truth, below the threshold (Fig. 3's red)
FALSE_POSITIVE = QColor("#ef6c00")
HIT = QColor("#2e7d32")
TRUTH = QColor("#1565c0")
MARK_TIPS = {"hit": "in the ground truth and above the threshold (found)",
             "miss": "in the ground truth, below the threshold (missed)",
             "FP": "above the threshold, not in the ground truth (false positive)"}
#: Least height of one label's row of bars: the axis names stay apart and readable; when the
#: panel is shorter than the rows need, the chart scrolls instead of squeezing them.
ROW_MIN_PX = 14
SUM_COLOR, BASELINE_COLOR, OFFSET_COLOR = colors_.CAT, colors_.BASELINE, colors_.OFFSET
layer_color = colors_.layer_color  # one colour per level and source layer, defined in catviz.colors
OFFSET = colors_.OFFSET_NAME
CHOSEN = "chosen"  # the Label box's entry for a label chosen for the image shown (top mode)
TOP_K = 10
MAX_TICK_CHARS = 22


def legend_html(colors: dict[str, str]) -> str:
    return " ".join(f'<span style="color:{c}">■</span>&nbsp;{name.replace(" ", "&nbsp;")}' for name, c in colors.items())


def short(name: str, limit: int = MAX_TICK_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def mark_for(name: str, p: float, threshold: float, truth: set[str] | None) -> str:
    """"hit", "miss", "FP" or "" for one label of one model."""
    if truth is None:
        return ""
    predicted = at_or_above(p, threshold)
    if name in truth:
        return "hit" if predicted else "miss"
    return "FP" if predicted else ""


class QtLabelTable(QTreeWidget):
    """Every label once, both models' probabilities side by side, sorted by the larger
    of the two; ground-truth hits, misses and false positives marked."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.columns: dict[str, tuple[int, int]] = {}  # role → (probability column, mark column)
        headers = ["Label"]
        for role in ROLES:
            self.columns[role] = (len(headers), len(headers) + 1)
            headers += [ROLE_TITLES[role], ""]
        self.setHeaderLabels(headers)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(headers)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        for role, (p, _) in self.columns.items():
            self.headerItem().setToolTip(p, f"{ROLE_TITLES[role]}'s probability; the mark column beside it: "
                                            "hit / miss / FP against the ground truth")
        self.itemClicked.connect(self._on_clicked)
        self.filter_text = ""

    def minimumSizeHint(self) -> QSize:
        """Wide enough for every column's header and for the numbers and marks under it (the
        label names elide; each has its tooltip): a narrow window's panel never cuts them."""
        header = self.header()
        width = header.sectionSizeHint(0) + sum(
            max(header.sectionSizeHint(c), self.sizeHintForColumn(c)) for c in range(1, self.columnCount()))
        width += self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(width, super().minimumSizeHint().height())

    def _on_clicked(self, item: QTreeWidgetItem) -> None:
        self.state.update_settings(label=item.data(0, Qt.ItemDataRole.UserRole))

    def order(self) -> list[int]:
        """Label indices, most probable first by the larger of the two models' probabilities."""
        results = [r for role in ROLES if (r := self.state.result(role)) is not None]
        if not results:
            return []
        return [int(i) for i in np.argsort(-np.max([r.probabilities for r in results], axis=0), kind="stable")]

    def refresh(self) -> None:
        self.clear()
        entry = self.state.current_entry
        if entry is None:
            return
        s, names, truth = self.state.settings, self.state.class_names, entry.ground_truth
        results = {role: self.state.result(role) for role in ROLES}
        bold = QFont()
        bold.setBold(True)
        shown = self.state.shown_label()
        for i in self.order():
            name = names[i]
            item = QTreeWidgetItem([name] + [""] * (self.columnCount() - 1))
            item.setData(0, Qt.ItemDataRole.UserRole, name)
            item.setToolTip(0, name + ("  (in the ground truth)" if truth and name in truth else ""))
            if truth is not None and name in truth:
                item.setForeground(0, QBrush(TRUTH))
                item.setFont(0, bold)
            for role, (p_col, mark_col) in self.columns.items():
                result = results[role]
                if result is None:
                    continue
                p = float(result.probabilities[i])
                mark = mark_for(name, p, s.threshold, truth)
                item.setText(p_col, probability_text(p, s.threshold))
                item.setText(mark_col, mark)
                item.setToolTip(p_col, f"{ROLE_TITLES[role]}: p({name}) = {p:.4f}")
                item.setToolTip(mark_col, MARK_TIPS.get(mark, ""))
                color = {"miss": MISSED, "FP": FALSE_POSITIVE, "hit": HIT}.get(mark)
                if color is not None:
                    item.setForeground(mark_col, QBrush(color))
                    item.setForeground(p_col, QBrush(color))
                if at_or_above(p, s.threshold):
                    item.setFont(p_col, bold)
            self.addTopLevelItem(item)
            item.setHidden(bool(self.filter_text) and self.filter_text.lower() not in name.lower())
            if name == shown:
                item.setSelected(True)
        self.updateGeometry()  # the numbers' columns set the least width (minimumSizeHint)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            item.setHidden(bool(self.filter_text) and self.filter_text.lower() not in item.text(0).lower())

    def visible_labels(self) -> list[str]:
        return [self.topLevelItem(i).text(0) for i in range(self.topLevelItemCount())
                if not self.topLevelItem(i).isHidden()]

    def rows(self, role: str) -> list[tuple[str, str, str]]:
        """(label, probability, mark) of ``role`` as shown, top to bottom (tests, export)."""
        p_col, mark_col = self.columns[role]
        return [(it.text(0), it.text(p_col), it.text(mark_col))
                for it in (self.topLevelItem(i) for i in range(self.topLevelItemCount()))]


class _RowBars(pg.PlotWidget):
    """Horizontal bars in labelled rows (top to bottom) over a logit axis, a legend beside
    the plot (one inside would cover bars), and a tooltip for the row under the mouse."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.showGrid(x=True, alpha=0.3)
        plot = self.getPlotItem()
        plot.setLabel("bottom", "logit")
        plot.getAxis("bottom").enableAutoSIPrefix(False)  # logits as they are, never "(x0.001)"
        plot.getViewBox().invertY(True)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        self.legend = QtWrappedLabel()
        self.scene().sigMouseMoved.connect(self._hover)

    def tooltip_at(self, row: int) -> str:
        raise NotImplementedError

    def _hover(self, scene_pos) -> None:
        view = self.getPlotItem().getViewBox()
        if view.sceneBoundingRect().contains(scene_pos):
            text = self.tooltip_at(round(view.mapSceneToView(scene_pos).y()))
            QToolTip.showText(self.mapToGlobal(self.mapFromScene(scene_pos)), text, self)

    def keep_rows_apart(self, rows: int) -> None:
        """At least ROW_MIN_PX a row (plus the logit axis): a short panel scrolls (see scrolling)."""
        self.setMinimumHeight(rows * ROW_MIN_PX + int(self.getPlotItem().getAxis("bottom").height()) + 16)

    def scrolling(self) -> QScrollArea:
        """This chart in a vertical scroll area, to put in a layout in its place."""
        return in_scroll_area(self, self.minimumHeight())

    def _clear(self) -> pg.PlotItem:
        """Remove the bars, the legend and the row names; returns the plot to draw on."""
        plot = self.getPlotItem()
        for item in [i for i in plot.items if isinstance(i, pg.BarGraphItem)]:
            plot.removeItem(item)
        self.legend.clear()
        plot.getAxis("left").setTicks([[]])  # no stale names beside an empty plot
        return plot


class QtLevelBars(_RowBars):
    """The top-k labels' per-level logits (CAT's classifiers and their sum beside the
    baseline's logit) as horizontal bars, label names on the left; hovering a label's row
    shows all its numbers. One bar item per series keeps a refresh cheap."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(state, parent)
        self.top_k = TOP_K
        self.series: dict[str, np.ndarray] = {}
        self.colors: dict[str, str] = {}
        self.labels: list[str] = []
        self.ticks: list[str] = []  # the label names as the axis shows them

    def sizeHint(self) -> QSize:
        return QSize(320, 260)

    def tooltip_at(self, row: int) -> str:
        """Every series' logit for the label in ``row`` (top to bottom)."""
        if not 0 <= row < len(self.labels):
            return ""
        lines = [f"{series}: logit {float(values[row]):+.3f}" for series, values in self.series.items()]
        return "\n".join([self.labels[row], *lines])

    def refresh(self, order: list[int]) -> None:
        plot = self._clear()
        cat, base = self.state.result("cat"), self.state.result("baseline")
        self.series, self.colors, self.labels, self.ticks = {}, {}, [], []
        if not order:
            return
        names = self.state.class_names
        shown = self.state.shown_label()
        order = order[: self.top_k]
        if shown in names and names.index(shown) not in order:
            order[-1] = names.index(shown)
        self.labels = [names[i] for i in order]
        if cat is not None:
            for level, logits in cat.level_logits.items():
                self.series[f"CAT {level}"] = logits[order]
                self.colors[f"CAT {level}"] = layer_color(level)
            self.series["CAT sum"] = sum(cat.level_logits.values())[order]
            self.colors["CAT sum"] = SUM_COLOR
        if base is not None:
            self.series["baseline"] = sum(base.level_logits.values())[order]
            self.colors["baseline"] = BASELINE_COLOR
        height = 0.84 / len(self.series)
        rows = np.arange(len(self.labels), dtype=float)
        for k, (series, values) in enumerate(self.series.items()):
            plot.addItem(pg.BarGraphItem(x0=0, y=rows - 0.42 + height * (k + 0.5), width=values, height=height,
                                         brush=self.colors[series], pen=pg.mkPen(None)))
        self.legend.setText(legend_html(self.colors))
        self.ticks = [short(name) for name in self.labels]
        plot.getAxis("left").setTicks([list(enumerate(self.ticks))])
        plot.setYRange(-0.5, len(self.labels) - 0.5, padding=0.02)
        plot.enableAutoRange(axis="x")
        self.keep_rows_apart(len(self.labels))


class QtLayerShare(_RowBars):
    """Where the shown label's logit comes from: one stacked bar per level of each model,
    split into the layers whose positions reach it and the position-free offset (read from
    ``InferenceResult.layer_share``). Positive parts stack right of zero, negative left."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(state, parent)
        self.rows: list[tuple[str, dict[str, float]]] = []  # (row name, source → logit)
        self.colors: dict[str, str] = {}
        self.label: str | None = None

    def sizeHint(self) -> QSize:
        return QSize(320, 150)

    def tooltip_at(self, row: int) -> str:
        """A level's logit and each part of it, with its share of the parts' magnitudes."""
        if not 0 <= row < len(self.rows):
            return ""
        name, parts = self.rows[row]
        magnitude = max(sum(map(abs, parts.values())), 1e-9)
        lines = [f"{source}: {value:+.3f} ({abs(value) / magnitude:.0%} of |parts|)" for source, value in parts.items()]
        return "\n".join([f"{name} → {self.label}: logit {sum(parts.values()):+.3f}", *lines])

    def refresh(self) -> None:
        plot = self._clear()
        self.rows = []
        label = self.state.shown_label()
        if label is None:
            return
        index = self.state.class_names.index(label)
        paths = path_rows(self.state)
        for role in ROLES:
            result = self.state.result(role)
            if paths is not None:  # below the tokens: the shown maps' path share, once computed
                self.rows += paths.get(role, [])
            elif result is not None:
                self.rows += [(f"{ROLE_TITLES[role]} {level}", parts) for level, parts in layer_share(result, index).items()]
        sources = list(dict.fromkeys(source for _, parts in self.rows for source in parts))
        levels = {level.name for role in ROLES if (spec := self.state.spec(role)) is not None for level in spec.levels}
        of_baseline = set() if paths is not None else {
            source for name, parts in self.rows if name.startswith(ROLE_TITLES["baseline"]) for source in parts}
        self.colors = colors = {source: layer_color(source, colors_.OF_BASELINE if source in of_baseline
                                                    else colors_.LEVEL if source in levels else colors_.SOURCE)
                                for source in sources}
        x0, width = np.zeros((len(sources), len(self.rows))), np.zeros((len(sources), len(self.rows)))
        for row, (_, parts) in enumerate(self.rows):  # positive parts stack right of zero, negative left
            right = left = 0.0
            for source, value in parts.items():
                k = sources.index(source)
                if value >= 0:
                    x0[k, row], right = right, right + value
                else:
                    left += value
                    x0[k, row] = left
                width[k, row] = abs(value)
        rows = np.arange(len(self.rows), dtype=float)
        for k, source in enumerate(sources):  # one item per source keeps a refresh cheap
            plot.addItem(pg.BarGraphItem(x0=x0[k], y=rows, width=width[k], height=0.6, brush=colors[source],
                                         pen=pg.mkPen(None)))
        self.label = label
        self.legend.setText(legend_html({source: colors[source] for source in sources}))
        plot.getAxis("left").setTicks([[(row, name) for row, (name, _) in enumerate(self.rows)]])
        plot.setYRange(-0.5, max(len(self.rows), 1) - 0.5, padding=0.05)
        self.keep_rows_apart(len(self.rows))
        plot.enableAutoRange(axis="x")


def path_rows(state: AppState) -> dict[str, list[tuple[str, dict[str, float]]]] | None:
    """With the complete CAM below the tokens: per model, one row per level and route (and the
    level's offset) from the shown map's path share (:meth:`AppState.path_share`), parts
    by the depth's tensors and biases; a model whose path share is not there yet has none.
    None at the tokens or with another method (the layer share is shown)."""
    s = state.settings
    if s.cam_method != CAM or s.cam_depth == "tokens":
        return None
    rows = {}
    for role in ROLES:
        paths = state.path_share(role) or {}
        rows[role] = [(f"{ROLE_TITLES[role]} {level} " + ("offset" if route == "offset" else f"← {route}"), parts)
                      for level, routes in paths.items() for route, parts in routes.items()]
    return rows


def layer_share(result: InferenceResult, label: int) -> dict[str, dict[str, float]]:
    """level → source → logit for one label; the parts of a level sum to its logit."""
    return {level: {source: float(values[label]) for source, values in parts.items()}
            for level, parts in result.layer_share.items()}


class QtPredictions(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.table = QtLabelTable(state)
        self.bars = QtLevelBars(state)
        self.share = QtLayerShare(state)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 99)
        self.slider.setValue(round(state.settings.threshold * 100))
        self.slider_label = QLabel()
        self.slider.valueChanged.connect(lambda v: state.update_settings(threshold=v / 100))
        self.mode = QComboBox()
        self.mode.addItem("Top prediction", "top")
        self.mode.addItem("Fixed label", "fixed")
        self.mode.setToolTip("Top prediction: each image shows CAT's most likely label for it (the baseline's when "
                             "no CAT is loaded; a clicked label holds for that image only). The table is sorted by "
                             "the higher of the two models' probabilities, so the baseline's favourite can be above "
                             "it.\nFixed label: the chosen label is shown for every image.")
        self.mode.setCurrentIndex(self.mode.findData(state.settings.label_mode))
        self.mode.currentIndexChanged.connect(self._set_mode)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search labels…")
        self.search.setClearButtonEnabled(True)
        self.search.setToolTip("Filter the table; Enter shows the first match.")
        self.search.textChanged.connect(self.table.set_filter)
        self.search.returnPressed.connect(self._choose_first_match)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 1000)
        self.top_k.setValue(TOP_K)
        self.top_k.setPrefix("top ")
        self.top_k.setToolTip("How many labels the bar chart shows (the shown label is always among them).")
        self.top_k.valueChanged.connect(self._set_top_k)

        threshold = QHBoxLayout()
        threshold.addWidget(QLabel("Threshold"))
        threshold.addWidget(self.slider)
        threshold.addWidget(self.slider_label)
        # The search box goes under the label box when the panel is narrow.
        self.search.setMinimumWidth(self.search.fontMetrics().horizontalAdvance(self.search.placeholderText()) + 40)
        labels = QtFlowLayout()
        labels.addWidget(control_group(QLabel("Label"), self.mode))
        labels.addWidget(self.search)
        bars = QWidget()
        bars_layout = QVBoxLayout(bars)
        bars_layout.setContentsMargins(0, 0, 0, 0)
        title = QHBoxLayout()
        title.addWidget(QLabel("Per-level logits"), 1)
        title.addWidget(self.top_k)
        bars_layout.addLayout(title)
        bars_layout.addWidget(self.bars.legend)
        self.bars_scroll = self.bars.scrolling()  # many labels in a short panel: scroll, never squeeze the rows
        bars_layout.addWidget(self.bars_scroll, 1)
        share = QWidget()
        share_layout = QVBoxLayout(share)
        share_layout.setContentsMargins(0, 0, 0, 0)
        self.share_title = QtWrappedLabel()
        self.share_title.setToolTip("Each level's logit split exactly into the contributions of the positions of "
                                    "each layer that reaches it, and the offset that belongs to no position. With "
                                    "the complete CAM below the tokens (Depth), a path share: one row per route "
                                    "into the level (R5 through LRD, P4, P3; the fusion blocks' own biases; the "
                                    "offset), split by the depth's tensors (S3-S5, the input) and the biases on the way.")
        share_layout.addWidget(self.share_title)
        share_layout.addWidget(self.share.legend)
        self.share_scroll = self.share.scrolling()
        share_layout.addWidget(self.share_scroll, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        for widget, stretch in ((self.table, 3), (bars, 4), (share, 2)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.count() - 1, stretch)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([300, 400, 200])
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.addLayout(threshold)
        layout.addLayout(labels)
        layout.addWidget(splitter, 1)
        unsubscribe_on_close(self, [
            *(state.subscribe(event, lambda *_: self.refresh())
              for event in (Event.SELECTION_CHANGED, Event.RESULT_READY, Event.MODELS_CHANGED, Event.PATH_SHARE_READY)),
            state.subscribe(Event.SETTINGS_CHANGED, self._on_settings_changed),
        ])
        self.refresh()

    def _on_settings_changed(self, keys: set[str]) -> None:
        if keys & {"threshold", "label", "label_mode", "cam_method", "cam_depth", "cam_level"}:  # cam_*: the path share
            self.refresh()

    def _set_mode(self, index: int) -> None:
        """Fixed mode starts from the label shown now; top mode goes back to each image's own."""
        mode = self.mode.itemData(index)
        if mode == CHOSEN:  # the label chosen for this image (clicked, or the Dataset tab's row): as it is
            return
        self.state.update_settings(label_mode=mode, label=self.state.shown_label() if mode == "fixed" else None)

    def _show_mode(self) -> None:
        """The box says what is shown: the top prediction, a fixed label, or the label chosen for
        this image (clicked, or opened from the Dataset tab) — then named, not "Top prediction"."""
        s = self.state.settings
        chosen = s.label_mode == "top" and s.label is not None and s.label in self.state.class_names
        at = self.mode.findData(CHOSEN)
        self.mode.blockSignals(True)
        if chosen and at < 0:
            self.mode.addItem("", CHOSEN)
            at = self.mode.count() - 1
        if chosen:
            self.mode.setItemText(at, f"This image: {s.label}")
            self.mode.setCurrentIndex(at)
        else:
            if at >= 0:
                self.mode.removeItem(at)
            self.mode.setCurrentIndex(self.mode.findData(s.label_mode))
        self.mode.blockSignals(False)

    def _set_top_k(self, k: int) -> None:
        self.bars.top_k = k
        self.bars.refresh(self.table.order())

    def _choose_first_match(self) -> None:
        matches = self.table.visible_labels()
        if matches:
            self.state.update_settings(label=matches[0])

    def refresh(self) -> None:
        s = self.state.settings
        self.slider_label.setText(f"{s.threshold:.2f}")
        self._show_mode()
        names = self.state.class_names
        completer = self.search.completer()
        if completer is None or completer.model().rowCount() != len(names):
            completer = QCompleter(names, self.search)
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            completer.activated.connect(lambda name: self.state.update_settings(label=name))
            self.search.setCompleter(completer)
        if names:
            self.top_k.setMaximum(len(names))
        self.table.refresh()
        self.bars.refresh(self.table.order())
        self.share.refresh()
        label = self.state.shown_label()
        depth = self.state.settings.cam_depth
        if path_rows(self.state) is not None:
            self.share_title.setText(f"Path share at the {depth_title(depth)}: how <b>{label}</b>'s logit reaches each "
                                     "level, by route and source" if label else "Path share")
        else:
            self.share_title.setText(f"Layer share: where <b>{label}</b>'s logit comes from" if label else "Layer share")
