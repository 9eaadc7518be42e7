"""CAT's attention: LRD self-attention over its level (per layer, head, clicked position,
rollout) and the cross-layer classifier's attention over each lower level's grid.

Layers, heads and panels come from the model's own spec (``num_heads``, ``lrd_layers``,
``attention_keys``); nothing here assumes a count or a level name.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from .qt_events import unsubscribe_on_close
from .qt_layouts import QtFlowLayout, control_group, scrolling
from .qt_overlay import ColorBar, OverlayPanel, display_image, fit_canvas_height
from .render import DIVERGING, Scale, colormap_for
from .results import CLF_PREFIX, InferenceResult, lrd_keys
from .state import AppState, Event

ROLLOUT, MEAN = "rollout", "mean"
#: Two panels a row: three wide photos side by side would leave each a third of the width.
PANELS_PER_ROW = 2
#: Two rows of maps with their titles: a shorter window scrolls the canvas.
CANVAS_LEAST_HEIGHT = 400
HEAD_TIP = "The head shown in the PMA panels and in a chosen LRD layer (the LRD rollout averages the heads)."


def lrd_map(result: InferenceResult, grid: tuple[int, int], layer, head, query: tuple[int, int] | None):
    """(h, w) attention of the clicked cell of LRD's grid (or the mean over cells)."""
    keys = lrd_keys(result.attention)
    if not keys:
        return None
    layers = [result.attention[k] for k in keys]
    if layer == ROLLOUT:
        matrix = result.rollout  # computed in the worker: an N x N product per layer
    else:
        weights = layers[int(layer)]
        matrix = weights.mean(0) if head == MEAN else weights[int(head)]
    row = matrix.mean(0) if query is None else matrix[query[0] * grid[1] + query[1]]
    return row.reshape(grid)


def clf_map(result: InferenceResult, key: str, head) -> np.ndarray | None:
    """(h, w) attention of the classifier's query over a lower level's grid (mean over
    queries for the "w/o PMA" variant, which has one query per upper position)."""
    weights = result.attention.get(key)
    if weights is None:
        return None
    if weights.ndim == 4:
        weights = weights.mean(1)
    return weights.mean(0) if head == MEAN else weights[int(head)]


#: The colour scale spans at least this factor either side of uniform (log2 units): attention
#: within 0.8x-1.2x of uniform stays pale instead of filling the scale as "÷ its peak" did.
MIN_UNIFORM_RANGE = 2  # 1/4x to 4x
UNIFORM_LABEL = "attention ÷ uniform (1× = 1/N)"


def relative_to_uniform(heat: np.ndarray | None) -> np.ndarray | None:
    """log2 of attention weights ÷ 1/N (N cells; the weights sum to 1): 0 = uniform, 1 = twice it."""
    if heat is None:
        return None
    return np.log2(np.maximum(heat.astype(np.float32) * heat.size, 1e-6))


def uniform_scale(maps) -> Scale:
    """One symmetric log2 scale for every panel: at least MIN_UNIFORM_RANGE, whole powers of two."""
    peak = max((float(np.abs(m).max()) for m in maps if m is not None and m.size), default=0.0)
    limit = float(max(MIN_UNIFORM_RANGE, int(np.ceil(peak - 1e-6))))
    return Scale(-limit, limit)


def uniform_ticks(scale: Scale) -> list[tuple[float, str]]:
    """Colour bar ticks in factors of uniform (log scale): 1/4×, 1/2×, 1×, 2×, 4× ..."""
    limit = int(scale.limit)
    step = max(1, limit // 4)
    return [(float(k), "1×" if k == 0 else f"{2 ** k}×" if k > 0 else f"1/{2 ** -k}×")
            for k in range(-limit, limit + 1, step)]


class QtAttentionView(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.layer = QComboBox()
        self.head = QComboBox()
        self.layer.currentTextChanged.connect(
            lambda t: state.update_settings(lrd_layer=t if t == ROLLOUT else int(t)) if t else None)
        self.head.currentTextChanged.connect(
            lambda t: state.update_settings(head=t if t == MEAN else int(t)) if t else None)
        controls = QtFlowLayout()  # wraps in a narrow window
        for text, widget in (("LRD layer", self.layer), ("Head", self.head)):
            controls.addWidget(control_group(QLabel(text), widget))
        self.help = QLabel("Click the LRD image to pick a query position.")
        self.help.setWordWrap(True)
        controls.addWidget(self.help)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.panels: dict[str, OverlayPanel] = {}
        self.bar = ColorBar()
        self.marker = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("w", width=3), brush=None)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(scrolling(self.canvas, CANVAS_LEAST_HEIGHT), 1)
        unsubscribe_on_close(self, [
            state.subscribe(Event.SELECTION_CHANGED, lambda *_: self.refresh(new_image=True)),
            state.subscribe(Event.IMAGE_LOADED, lambda entry: self.refresh(new_image=entry is state.current_entry)),
            state.subscribe(Event.RESULT_READY, lambda *_: self.refresh()),
            state.subscribe(Event.MODELS_CHANGED, lambda *_: self._on_models_changed()),
            state.subscribe(Event.SETTINGS_CHANGED,
                            lambda keys: self.refresh() if keys & {"lrd_layer", "head", "query", "colormap", "opacity"} else None),
        ])
        self._on_models_changed()

    # the model's shape → controls and panels -------------------------------------------------
    def lrd_grid_level(self) -> str | None:
        """LRD runs on the coarsest level (the one with the largest stride)."""
        spec = self.state.spec("cat")
        if spec is None or not spec.lrd_layers or not spec.levels:
            return None
        return max(spec.levels, key=lambda level: level.stride).name

    def _on_models_changed(self) -> None:
        spec = self.state.spec("cat")
        keys = ["lrd"] if spec is not None and spec.lrd_layers else []
        keys += [k[len(CLF_PREFIX):] for k in (spec.attention_keys if spec is not None else ()) if k.startswith(CLF_PREFIX)]
        if keys != list(self.panels):
            self.canvas.ci.clear()
            columns = min(len(keys), PANELS_PER_ROW)
            self.panels = {key: OverlayPanel(self.canvas.ci, 2 * (i // columns), i % columns, key)
                           for i, key in enumerate(keys)}
            for column in range(columns):
                self.canvas.ci.layout.setColumnStretchFactor(column, 1)
            for row in range(2 * -(-len(keys) // max(columns, 1))):  # images take the height, titles hug them
                self.canvas.ci.layout.setRowStretchFactor(row, row % 2)
            self.bar = ColorBar()
            self.canvas.ci.addItem(self.bar, row=1, col=columns, rowspan=max(2 * ((len(keys) - 1) // max(columns, 1)), 0) + 1)
            if "lrd" in self.panels:
                self.marker = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("w", width=3), brush=None)
                self.panels["lrd"].view.addItem(self.marker)
        self._fill(self.layer, [ROLLOUT, *map(str, range(spec.lrd_layers))] if spec is not None and spec.lrd_layers
                   else [], str(self.state.settings.lrd_layer), "this model has no LRD")
        heads = spec.num_heads if spec is not None else 0
        self._fill(self.head, [MEAN, *map(str, range(heads))] if heads else [], str(self.state.settings.head),
                   "this model has no attention", HEAD_TIP)
        if spec is not None and not self.panels:
            self.help.setText("The model in the CAT slot has no attention to show (no LRD, no cross-layer classifier).")
        else:
            self.help.setText("Click the LRD image to pick a query position." if "lrd" in self.panels else "")
        self.refresh(new_image=True)

    def _fill(self, combo: QComboBox, items: list[str], wanted: str, reason: str, tip: str = "") -> None:
        """Offer ``items`` (keeping the wanted choice when it still exists); none: disabled, ``reason`` as tooltip."""
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(items)
        combo.setEnabled(bool(items))
        combo.setToolTip(tip if items else reason)
        combo.blockSignals(False)
        if items:
            combo.setCurrentText(wanted if wanted in items else items[0])
            if combo.currentText() != wanted:
                combo.currentTextChanged.emit(combo.currentText())

    # clicks -----------------------------------------------------------------------------------
    def _on_click(self, event) -> None:
        panel, level = self.panels.get("lrd"), self.lrd_grid_level()
        result = self.state.result("cat")
        if panel is None or panel.shape is None or result is None or level not in result.grids:
            return
        point = panel.view.mapSceneToView(event.scenePos())
        h, w = panel.shape
        if not (0 <= point.x() < w and 0 <= point.y() < h):
            return
        gh, gw = result.grids[level]
        self.click_cell(int(point.y() / h * gh), int(point.x() / w * gw))

    def click_cell(self, row: int, col: int) -> None:
        self.state.update_settings(query=(row, col))

    # drawing ----------------------------------------------------------------------------------
    def refresh(self, new_image: bool = False) -> None:
        entry, s = self.state.current_entry, self.state.settings
        image = display_image(entry.image) if entry is not None and entry.image is not None else None
        if new_image or image is None or any(p.shape is None for p in self.panels.values()):
            for panel in self.panels.values():
                panel.set_image(image)
        result = self.state.result("cat") if image is not None else None
        spec = self.state.spec("cat")
        level = self.lrd_grid_level()
        heads = spec.num_heads if spec is not None else 0
        head = s.head if s.head == MEAN or (isinstance(s.head, int) and s.head < heads) else MEAN
        layer = s.lrd_layer if s.lrd_layer == ROLLOUT or (spec and isinstance(s.lrd_layer, int)
                                                        and s.lrd_layer < spec.lrd_layers) else ROLLOUT
        colormap = colormap_for(s.colormap, True)  # signed: above uniform one side, below it the other
        maps = {key: self._map(result, key, level, layer, head) for key in self.panels}
        relative = {key: relative_to_uniform(heat) for key, (heat, _) in maps.items()}
        scale = uniform_scale(relative.values())
        for key, panel in self.panels.items():
            heat, title = relative[key], maps[key][1]
            panel.set_muted(colormap == DIVERGING)  # as under the CAMs: red and blue are the map's alone
            panel.set_heat(heat, scale if heat is not None else None, colormap, s.opacity)
            panel.set_title(title if heat is not None or result is None else f"{title}<br>(not in this result)")
        self.bar.show_scale(scale if self.panels else None, colormap, UNIFORM_LABEL, uniform_ticks(scale))
        self._place_marker(result, level)
        fit_canvas_height(self.canvas, CANVAS_LEAST_HEIGHT)  # titles of several lines: the canvas scrolls

    def _map(self, result, key: str, level: str | None, layer, head) -> tuple[np.ndarray | None, str]:
        s = self.state.settings
        heads = "mean of heads" if head == MEAN else f"head {head}"
        if key == "lrd":
            where = "mean over positions" if s.query is None else f"query at row {s.query[0]}, column {s.query[1]}"
            what = "rollout (heads averaged)" if layer == ROLLOUT else f"layer {layer} · {heads}"
            title = f"<b>LRD</b> over {level} · {what}<br>{where}"
            heat = lrd_map(result, result.grids[level], layer, head, s.query) \
                if result is not None and level in result.grids else None
            return heat, title
        target, key = key, CLF_PREFIX + key
        weights = result.attention.get(key) if result is not None else None
        query = "every query (mean)" if weights is not None and weights.ndim == 4 else "pooled query"
        kind = "MHA" if weights is not None and weights.ndim == 4 else "PMA"
        title = f"<b>{kind}</b> → {target} · {heads}<br>{query}"
        return (clf_map(result, key, head) if result is not None else None), title

    def _place_marker(self, result: InferenceResult | None, level: str | None) -> None:
        panel = self.panels.get("lrd")
        if panel is None:
            return
        shape, query = panel.shape, self.state.settings.query
        if result is None or shape is None or query is None or level not in result.grids:
            self.marker.setData([], [])
            return
        (h, w), (gh, gw) = shape, result.grids[level]
        self.marker.setData([(query[1] + 0.5) * w / gw], [(query[0] + 0.5) * h / gh])

    def current_maps(self) -> dict[str, np.ndarray | None]:
        """Panel → the map shown: "lrd", then one per level the classifier attends over."""
        return {k: p.heat for k, p in self.panels.items()}
