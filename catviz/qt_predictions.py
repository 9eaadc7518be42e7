"""Predictions of both models: sorted label lists, threshold slider, per-level bar chart."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .state import ROLES, AppState

MISSED = QColor("#d32f2f")  # in the ground truth, below the threshold (Fig. 3's red)
FALSE_POSITIVE = QColor("#ef6c00")
LEVEL_COLORS = {"P5": "#7e57c2", "P4": "#26a69a", "P3": "#ffa726", "sum": "#1e88e5", "baseline": "#9e9e9e"}
LEVEL_NAMES = {"P5": "P5 (LRD)", "P4": "P4", "P3": "P3", "sum": "CAT sum", "baseline": "baseline"}


def legend_html() -> str:
    """The bar colours as a wrapping line of text (pyqtgraph's legend would cover the bars)."""
    return " ".join(f'<span style="color:{LEVEL_COLORS[k]}">■</span>&nbsp;{v}' for k, v in LEVEL_NAMES.items())
BAR_LABELS = 10
MARK_TIPS = {"miss": "in the ground truth, below the threshold (missed)",
             "FP": "above the threshold, not in the ground truth (false positive)"}


class QtLabelList(QTreeWidget):
    """One model's labels sorted by probability; marks missed and false-positive labels."""

    def __init__(self, state: AppState, role: str, parent=None):
        super().__init__(parent)
        self.state, self.role = state, role
        self.setHeaderLabels([f"{role.upper() if role == 'cat' else role.title()}", "p", ""])
        self.setRootIsDecorated(False)
        self.setColumnWidth(0, 60)
        self.setColumnWidth(1, 36)
        self.setColumnWidth(2, 44)
        self.itemClicked.connect(lambda item: state.update_settings(label=item.data(0, Qt.ItemDataRole.UserRole)))

    def refresh(self) -> None:
        self.clear()
        result, entry = self.state.result(self.role), self.state.current_entry
        if result is None or entry is None:
            return
        threshold, truth = self.state.settings.threshold, entry.ground_truth
        names = self.state.models[self.role].meta.class_names
        bold = QFont()
        bold.setBold(True)
        for i in np.argsort(-result.probabilities):
            name, p = names[i], float(result.probabilities[i])
            predicted = p >= threshold
            mark = ""
            item = QTreeWidgetItem([name, f"{p:.2f}", ""])
            item.setData(0, Qt.ItemDataRole.UserRole, name)
            if truth is not None and name in truth and not predicted:
                mark, color = "miss", MISSED
            elif truth is not None and predicted and name not in truth:
                mark, color = "FP", FALSE_POSITIVE
            else:
                color = None
            item.setText(2, mark)
            item.setToolTip(2, MARK_TIPS.get(mark, ""))
            for col in range(3):
                if color is not None:
                    item.setForeground(col, QBrush(color))
                if predicted:
                    item.setFont(col, bold)
            self.addTopLevelItem(item)
            if name == self.state.settings.label:
                item.setSelected(True)

    def rows(self) -> list[tuple[str, str, str]]:
        """(label, probability, mark) as shown, top to bottom (for tests and export)."""
        return [tuple(self.topLevelItem(i).text(c) for c in range(3)) for i in range(self.topLevelItemCount())]


class QtLevelBars(pg.PlotWidget):
    """CAT's per-level logits (P5/LRD, P4, P3) and their sum beside the baseline's logit."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.showGrid(y=True, alpha=0.3)
        self.getPlotItem().setLabel("left", "logit")
        self.series: dict[str, np.ndarray] = {}
        self.labels: list[str] = []

    def refresh(self) -> None:
        plot = self.getPlotItem()
        for item in list(plot.items):
            if isinstance(item, pg.BarGraphItem):
                plot.removeItem(item)
        cat, base = self.state.result("cat"), self.state.result("baseline")
        reference = cat or base
        self.series, self.labels = {}, []
        if reference is None:
            return
        names = self.state.class_names
        order = list(np.argsort(-reference.probabilities)[:BAR_LABELS])
        if self.state.settings.label in names and names.index(self.state.settings.label) not in order:
            order[-1] = names.index(self.state.settings.label)
        self.labels = [names[i] for i in order]
        if cat is not None:
            for level, logits in cat.level_logits.items():
                self.series[level] = logits[order]
            self.series["sum"] = sum(cat.level_logits.values())[order]
        if base is not None:
            self.series["baseline"] = sum(base.level_logits.values())[order]
        width = 0.8 / len(self.series)
        x = np.arange(len(order), dtype=float)
        for k, (name, values) in enumerate(self.series.items()):
            offset = -0.4 + width * (k + 0.5)
            plot.addItem(pg.BarGraphItem(x=x + offset, height=values, width=width, brush=LEVEL_COLORS[name]))
        plot.getAxis("bottom").setTicks([list(enumerate(self.labels))])


class QtPredictions(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.lists = {role: QtLabelList(state, role) for role in ROLES}
        self.bars = QtLevelBars(state)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(1, 99)
        self.slider.setValue(round(state.settings.threshold * 100))
        self.slider_label = QLabel()
        self.slider.valueChanged.connect(lambda v: state.update_settings(threshold=v / 100))
        lists = QHBoxLayout()
        for widget in self.lists.values():
            lists.addWidget(widget)
        threshold = QHBoxLayout()
        threshold.addWidget(QLabel("Threshold"))
        threshold.addWidget(self.slider)
        threshold.addWidget(self.slider_label)
        layout = QVBoxLayout(self)
        layout.addLayout(threshold)
        layout.addLayout(lists, 3)
        layout.addWidget(QLabel("Per-level classifier outputs (top labels)"))
        legend = QLabel(legend_html())
        legend.setWordWrap(True)
        layout.addWidget(legend)
        layout.addWidget(self.bars, 2)
        for event in ("selection_changed", "result_ready", "models_changed"):
            state.subscribe(event, lambda *_: self.refresh())
        state.subscribe("settings_changed", self._on_settings_changed)
        self.refresh()

    def _on_settings_changed(self, keys: set[str]) -> None:
        if keys & {"threshold", "label"}:
            self.refresh()

    def refresh(self) -> None:
        self.slider_label.setText(f"{self.state.settings.threshold:.2f}")
        for widget in self.lists.values():
            widget.refresh()
        self.bars.refresh()
