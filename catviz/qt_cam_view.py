"""Fig. 3, live: the selected label's CAM for the baseline and CAT, and CAT per level."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

import models.cam

from .inference import GRAD_CAM_METHODS
from .qt_overlay import OverlayPanel, display_image
from .qt_workers import InferenceController
from .render import cam_for_label
from .state import AppState

COLORMAPS = ("turbo", "inferno", "viridis", "magma", "CET-L17")


class QtCamView(QWidget):
    def __init__(self, state: AppState, controller: InferenceController, parent=None):
        super().__init__(parent)
        self.state, self.controller = state, controller
        s = state.settings
        self.method = QComboBox()
        self.method.addItems(["CAM", *GRAD_CAM_METHODS])
        self.method.setCurrentText(s.cam_method)
        self.level = QComboBox()
        self.level.addItems(["combined", "P5", "P4", "P3"])
        self.level.setCurrentText(s.cam_level)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setCurrentText(s.colormap)
        self.opacity = QSlider()
        self.opacity.setOrientation(pg.QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(s.opacity * 100))
        self.opacity.setMinimumWidth(90)
        derivation = QPushButton("How are these computed?")
        derivation.clicked.connect(self.show_derivation)
        self.method.currentTextChanged.connect(lambda t: state.update_settings(cam_method=t))
        self.level.currentTextChanged.connect(lambda t: state.update_settings(cam_level=t))
        self.colormap.currentTextChanged.connect(lambda t: state.update_settings(colormap=t))
        self.opacity.valueChanged.connect(lambda v: state.update_settings(opacity=v / 100))

        controls = QHBoxLayout()
        for text, widget in (("Method", self.method), ("CAT level", self.level),
                             ("Colours", self.colormap), ("Opacity", self.opacity)):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addWidget(derivation)
        controls.addStretch()
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        top = self.canvas.addLayout(row=0, col=0)
        bottom = self.canvas.addLayout(row=1, col=0)
        self.panels = {"baseline": OverlayPanel(top, 0, 0, "Baseline"), "cat": OverlayPanel(top, 0, 1, "CAT")}
        self.level_panels = {lvl: OverlayPanel(bottom, 0, i, f"CAT {lvl}") for i, lvl in enumerate(("P5", "P4", "P3"))}
        self.canvas.ci.layout.setRowStretchFactor(0, 3)
        self.canvas.ci.layout.setRowStretchFactor(1, 2)
        self.hint = QLabel()
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.hint)

        state.subscribe("selection_changed", lambda *_: self.refresh(new_image=True))
        state.subscribe("image_loaded", lambda entry: self.refresh(new_image=entry is state.current_entry))
        for event in ("result_ready", "models_changed", "grad_cam_ready"):
            state.subscribe(event, lambda *_: self.refresh())
        state.subscribe("settings_changed", lambda keys: self.refresh() if keys - {"threshold", "query", "head", "lrd_layer"} else None)

    def current_label(self) -> int | None:
        label = self.state.shown_label()
        return None if label is None else self.state.class_names.index(label)

    def refresh(self, new_image: bool = False) -> None:
        entry, s = self.state.current_entry, self.state.settings
        image = display_image(entry.image) if entry is not None and entry.image is not None else None
        if new_image or image is None:
            for panel in [*self.panels.values(), *self.level_panels.values()]:
                panel.set_image(image)
        label = self.current_label()
        names = self.state.class_names
        self.hint.setText(entry.error if entry is not None and entry.error else "")
        for role, panel in self.panels.items():
            result = self.state.result(role)
            if result is None or label is None or image is None:
                panel.set_heat(None)
                panel.set_title(f"{role.title() if role == 'baseline' else 'CAT'}" +
                                (" (no model)" if role not in self.state.models else " …"))
                continue
            p = float(result.probabilities[label])
            missed = entry.ground_truth is not None and names[label] in entry.ground_truth and p < s.threshold
            method = "CAM" if s.cam_method == "CAM" else s.cam_method
            panel.set_title(f"{'Baseline' if role == 'baseline' else 'CAT'} · {names[label]} {p:.2f} · {method}",
                            "#d32f2f" if missed else "k")
            if s.cam_method == "CAM":
                heat = cam_for_label(result, label, s.cam_level if role == "cat" else "combined")
            else:
                key = self.controller.grad_cam_key(role)
                heat = self.controller.grad_cams.get(key)
            panel.set_heat(heat, s.colormap, s.opacity)
        cat = self.state.result("cat")
        for level, panel in self.level_panels.items():
            if cat is None or label is None or level not in cat.cams:
                panel.set_heat(None)
                panel.set_title(f"CAT {level}")
                continue
            exact = "exact" if cat.cam_exact[level] else "approx."
            logit = float(cat.level_logits[level][label])
            panel.set_title(f"{level}{' (LRD)' if level == 'P5' else ''}: logit {logit:+.2f} · {exact}")
            panel.set_heat(cam_for_label(cat, label, level), s.colormap, s.opacity)

    def show_derivation(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("How catviz computes CAMs")
        box.setText("CAM for the baseline is exact (Zhou et al.); CAT's levels are explained below.")
        box.setDetailedText(models.cam.__doc__)
        box.exec()
