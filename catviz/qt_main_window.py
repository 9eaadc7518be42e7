"""The main window: image list | CAM and attention tabs | predictions; menus, status bar."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTabWidget,
)

from models.device import available_devices

from .qt_attention_view import QtAttentionView
from .qt_cam_view import QtCamView
from .qt_image_list import QtImageList
from .qt_predictions import QtPredictions
from .qt_workers import InferenceController
from .state import ROLES, AppState

_logger = logging.getLogger(__name__)
CHECKPOINT_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".bin"}


class QtMainWindow(QMainWindow):
    def __init__(self, state: AppState, controller: InferenceController, sources: dict[str, str] | None = None):
        super().__init__()
        self.state, self.controller = state, controller
        self.sources = sources or {}
        self.setWindowTitle("catviz — CAT vs baseline")
        self.setAcceptDrops(True)
        self.image_list = QtImageList(state)
        self.cam_view = QtCamView(state, controller)
        self.attention_view = QtAttentionView(state)
        self.predictions = QtPredictions(state)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.cam_view, "Class activation maps")
        self.tabs.addTab(self.attention_view, "Attention (LRD, PMA)")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for widget in (self.image_list, self.tabs, self.predictions):
            self.splitter.addWidget(widget)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setSizes([170, 760, 350])
        self.setCentralWidget(self.splitter)
        self._build_menus()
        self._build_status_bar()
        state.subscribe("message", lambda message: self.statusBar().showMessage(message, 8000))
        state.subscribe("models_changed", lambda role: self._update_device_label())
        controller.busy_changed.connect(self._on_busy)
        controller.timings_changed.connect(self._on_timings)
        self._restore_settings()

    # construction -----------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        actions = [
            ("Open &images…", QKeySequence.StandardKey.Open, self.open_images),
            ("Open &folder…", None, self.open_folder),
            ("Load &baseline checkpoint…", None, lambda: self.open_checkpoint("baseline")),
            ("Load &CAT checkpoint…", None, lambda: self.open_checkpoint("cat")),
            ("&Reopen last checkpoints", None, self.reopen_last_checkpoints),
            None,
            ("&Save view as PNG…", QKeySequence.StandardKey.Save, self.save_view),
            ("&Export figure (Fig. 3 style)…", None, self.export_figure),
            None,
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        ]
        for spec in actions:
            if spec is None:
                file_menu.addSeparator()
                continue
            text, shortcut, slot = spec
            action = QAction(text, self)
            if shortcut is not None:
                action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        go = self.menuBar().addMenu("&Go")
        for text, key, delta in (("&Previous image", Qt.Key.Key_Left, -1), ("&Next image", Qt.Key.Key_Right, 1)):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(lambda checked=False, d=delta: self.state.step(d))
            go.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About catviz", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy = QProgressBar()
        self.busy.setMaximumWidth(120)
        self.busy.setRange(0, 1)
        self.busy.setTextVisible(False)
        self.timings = QLabel()
        self.device_label = QLabel()
        self.device_box = QComboBox()
        self.device_box.addItems(available_devices())
        current = str(self.controller.device)
        self.device_box.setCurrentText(current if current in available_devices() else "cpu")
        self.device_box.currentTextChanged.connect(self.controller.set_device)
        for widget in (self.timings, self.device_label, QLabel("Device"), self.device_box, self.busy):
            bar.addPermanentWidget(widget)
        self._update_device_label()

    # state → widgets ---------------------------------------------------------------------
    def _on_busy(self, pending: int) -> None:
        self.busy.setRange(0, 0 if pending else 1)  # indeterminate while work is pending
        self.busy.setToolTip(f"{pending} task(s) pending")

    def _on_timings(self, seconds: dict) -> None:
        self.timings.setText("  ".join(f"{role}: {s * 1000:.0f} ms" for role, s in seconds.items()))

    def _update_device_label(self) -> None:
        names = ", ".join(f"{r}: {m.meta.model}" for r, m in self.state.models.items()) or "no models"
        self.device_label.setText(f"{names} on {self.controller.device}")

    # actions ----------------------------------------------------------------------------
    def add_paths(self, paths: list[Path]) -> None:
        checkpoints = [p for p in paths if p.suffix.lower() in CHECKPOINT_SUFFIXES]
        for path in checkpoints:
            self.controller.load_checkpoint(path)
        self.state.add_images([p for p in paths if p not in checkpoints])

    def open_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "", "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.gif);;All files (*)")
        self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.add_paths([Path(folder)])

    def open_checkpoint(self, role: str) -> None:
        file, _ = QFileDialog.getOpenFileName(self, f"Load {role} checkpoint", "", "catviz checkpoints (*.safetensors);;All files (*)")
        if file:
            self.controller.load_checkpoint(file, role)

    def reopen_last_checkpoints(self) -> None:
        settings = QSettings()
        for role in ROLES:
            path = settings.value(f"checkpoints/{role}")
            if path:
                self.controller.load_checkpoint(path, role)

    def save_view(self, path: str | None = None) -> None:
        path = path or QFileDialog.getSaveFileName(self, "Save view", "catviz-view.png", "PNG (*.png)")[0]
        if path and not self.tabs.currentWidget().grab().save(path, "PNG"):
            self.state.report(f"{path}: could not write PNG")

    def export_figure(self, path: str | None = None) -> None:
        """Fig.-3-style grid of the selected images (all readable ones if none selected)."""
        path = path or QFileDialog.getSaveFileName(self, "Export figure", "catviz-figure.png", "PNG (*.png)")[0]
        if not path or not self.state.models:
            return
        rows = {i.row() for i in self.image_list.selectedIndexes()} or range(len(self.state.images))
        self.controller.export_figure(path, [self.state.images[i] for i in sorted(rows)])

    def show_about(self) -> None:
        lines = [f"<b>catviz</b> — CAT vs its baseline (Zhang et al., ICASSP 2022).<br>Device: {self.controller.device}<br>"]
        for role in ROLES:
            loaded = self.state.models.get(role)
            text = loaded.describe() if loaded else "not loaded"
            lines.append(f"<b>{role}</b>: {text} {self.sources.get(role, '')}")
        QMessageBox.about(self, "About catviz", "<br>".join(lines))

    # drag and drop, keys, settings ---------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        self.add_paths(paths)
        event.acceptProposedAction()

    def _restore_settings(self) -> None:
        settings = QSettings()
        if settings.contains("window/geometry"):
            self.restoreGeometry(settings.value("window/geometry"))
            self.splitter.restoreState(settings.value("window/splitter"))
        threshold = settings.value("display/threshold", type=float)
        colormap = settings.value("display/colormap", type=str)
        changes = {}
        if threshold:
            changes["threshold"] = threshold
            self.predictions.slider.setValue(round(threshold * 100))
        if colormap:
            changes["colormap"] = colormap
            self.cam_view.colormap.setCurrentText(colormap)
        if changes:
            self.state.update_settings(**changes)

    def closeEvent(self, event) -> None:
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/splitter", self.splitter.saveState())
        settings.setValue("display/threshold", self.state.settings.threshold)
        settings.setValue("display/colormap", self.state.settings.colormap)
        for role, loaded in self.state.models.items():
            settings.setValue(f"checkpoints/{role}", str(loaded.path))
        self.controller.pool.clear()
        self.controller.wait(10000)
        super().closeEvent(event)
