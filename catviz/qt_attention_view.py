"""CAT's attention: LRD self-attention over P5 (per layer, head, clicked position,
rollout) and PMA's pooled-query attention over the P4 and P3 grids."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from .inference import InferenceResult, attention_rollout
from .qt_overlay import OverlayPanel, display_image
from .render import normalise
from .state import AppState


def lrd_map(result: InferenceResult, layer, head, query: tuple[int, int] | None) -> np.ndarray | None:
    """(h5, w5) attention of the clicked P5 cell (or the mean over cells)."""
    layers = [result.attention[k] for k in sorted(k for k in result.attention if k.startswith("lrd."))]
    if not layers:
        return None
    h5, w5 = result.grids["P5"]
    if layer == "rollout":
        matrix = attention_rollout(layers)
    else:
        weights = layers[int(layer)]
        matrix = weights.mean(0) if head == "mean" else weights[int(head)]
    row = matrix.mean(0) if query is None else matrix[query[0] * w5 + query[1]]
    return row.reshape(h5, w5)


def pma_map(result: InferenceResult, level: str, head) -> np.ndarray | None:
    """(h, w) attention of the pooled query (PMA) over ``level``'s grid."""
    weights = result.attention.get(f"clf.{level}")
    if weights is None:
        return None
    if weights.ndim == 4:  # "w/o PMA": one row per query, show their mean
        weights = weights.mean(1)
    return weights.mean(0) if head == "mean" else weights[int(head)]


class QtAttentionView(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self.layer = QComboBox()
        self.layer.addItems(["rollout", "0", "1"])
        self.head = QComboBox()
        self.head.addItems(["mean", *map(str, range(8))])
        self.layer.setCurrentText(str(state.settings.lrd_layer))
        self.head.setCurrentText(str(state.settings.head))
        self.layer.currentTextChanged.connect(lambda t: state.update_settings(lrd_layer=t if t == "rollout" else int(t)))
        self.head.currentTextChanged.connect(lambda t: state.update_settings(head=t if t == "mean" else int(t)))
        controls = QHBoxLayout()
        for text, widget in (("LRD layer", self.layer), ("Head", self.head)):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addWidget(QLabel("Click the LRD image to pick a query position."))
        controls.addStretch()
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.panels = {
            "lrd": OverlayPanel(self.canvas.ci, 0, 0, "LRD"),
            "P4": OverlayPanel(self.canvas.ci, 0, 1, "PMA over P4"),
            "P3": OverlayPanel(self.canvas.ci, 0, 2, "PMA over P3"),
        }
        self.marker = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("w", width=3), brush=None)
        self.panels["lrd"].view.addItem(self.marker)
        self.canvas.scene().sigMouseClicked.connect(self._on_click)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.canvas, 1)
        state.subscribe("selection_changed", lambda *_: self.refresh(new_image=True))
        state.subscribe("image_loaded", lambda entry: self.refresh(new_image=entry is state.current_entry))
        for event in ("result_ready", "models_changed"):
            state.subscribe(event, lambda *_: self.refresh())
        state.subscribe("settings_changed", lambda keys: self.refresh() if keys & {"lrd_layer", "head", "query", "colormap", "opacity"} else None)

    def _on_click(self, event) -> None:
        panel = self.panels["lrd"]
        result = self.state.result("cat")
        if panel.shape is None or result is None or "P5" not in result.grids:
            return
        point = panel.view.mapSceneToView(event.scenePos())
        h, w = panel.shape
        if not (0 <= point.x() < w and 0 <= point.y() < h):
            return
        h5, w5 = result.grids["P5"]
        self.click_cell(int(point.y() / h * h5), int(point.x() / w * w5))

    def click_cell(self, row: int, col: int) -> None:
        self.state.update_settings(query=(row, col))

    def refresh(self, new_image: bool = False) -> None:
        entry, s = self.state.current_entry, self.state.settings
        image = display_image(entry.image) if entry is not None and entry.image is not None else None
        if new_image or image is None:
            for panel in self.panels.values():
                panel.set_image(image)
        result = self.state.result("cat")
        maps = {}
        if result is not None:
            maps["lrd"] = lrd_map(result, s.lrd_layer, s.head, s.query)
            maps["P4"] = pma_map(result, "P4", s.head)
            maps["P3"] = pma_map(result, "P3", s.head)
        self._place_marker(result)
        where = "mean over positions" if s.query is None else f"query cell {s.query}"
        mha = result is not None and result.attention.get("clf.P4") is not None and result.attention["clf.P4"].ndim == 4
        query = "MHA, mean over queries" if mha else "PMA pooled query"
        titles = {"lrd": f"LRD {'rollout' if s.lrd_layer == 'rollout' else f'layer {s.lrd_layer}'} · {where}",
                  "P4": f"{query} → P4", "P3": f"{query} → P3"}
        for key, panel in self.panels.items():
            heat = maps.get(key)
            panel.set_heat(None if heat is None else normalise(heat), s.colormap, s.opacity)
            panel.set_title(titles[key] + (f" · head {s.head}" if key != "lrd" or s.lrd_layer != "rollout" else "")
                            if heat is not None else titles[key] + " (n/a for this model)")

    def _place_marker(self, result: InferenceResult | None) -> None:
        shape, query = self.panels["lrd"].shape, self.state.settings.query
        if result is None or shape is None or query is None or "P5" not in result.grids:
            self.marker.setData([], [])
            return
        (h, w), (h5, w5) = shape, result.grids["P5"]
        self.marker.setData([(query[1] + 0.5) * w / w5], [(query[0] + 0.5) * h / h5])

    def current_maps(self) -> dict[str, np.ndarray | None]:
        return {k: p.heat for k, p in self.panels.items()}
