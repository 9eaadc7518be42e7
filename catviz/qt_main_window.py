"""The main window: image list | CAM and attention tabs | predictions; menus, status bar,
and a Messages dock that keeps every error and notice of the session."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QRect, QSettings, QSize, Qt
from PySide6.QtGui import QAction, QFontMetrics, QGuiApplication, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import __version__, demo
from .labels import LabelsError, match, read_labels, truth_beside
from .methods import CAM, method_info
from .qt_attention_view import QtAttentionView
from .qt_cam_view import QtCamView
from .qt_events import release_subscriptions, unsubscribe_on_close
from .qt_image_list import QtImageList
from .qt_layouts import QtFittingLabel
from .qt_model_menu import QtModelsMenu
from .qt_predictions import QtPredictions
from .qt_runs_view import QtRunsView
from .qt_workers import InferenceController
from .render import COLORMAPS
from .roles import ROLE_TITLES, model_names
from .runs import is_run
from .state import (
    CHECKPOINT_SUFFIXES,
    ROLES,
    AppState,
    DisplaySettings,
    Event,
    Message,
)

if TYPE_CHECKING:
    from .inference import LoadedModel

_logger = logging.getLogger(__name__)
#: Widgets that use the arrow keys themselves: with focus, they keep them (no image change).
ARROW_KEY_WIDGETS = (QAbstractSlider, QAbstractSpinBox, QLineEdit, QComboBox)
NO_MODELS_HINT = ("No models loaded. Use File ▸ Open models… or drop a baseline and a CAT .safetensors "
                  "checkpoint on the window (catviz started with no arguments opens the bundled demo pair).")
#: The least window size (a small laptop screen): every tab and the side panel fit it whole,
#: control rows wrap, the charts scroll; below it they would be cut.
MINIMUM_SIZE = (800, 600)
DEFAULT_SIZE = (1280, 800)  # a first start's window, and --screenshot's unless --size is given
QUIT_WAIT_MS = 300  # how long running work gets to stop when the window closes
MESSAGES_HEIGHT = 120  # px: the Messages panel's height when shown (it can be dragged taller)
#: Display options kept between sessions: their type and what a valid value is.
PERSISTED_SETTINGS = {
    "threshold": (float, lambda v: 0 < v < 1),
    "colormap": (str, lambda v: v in COLORMAPS),
    "opacity": (float, lambda v: 0 <= v <= 1),
    "positive_only": (bool, lambda v: True),
    "per_panel_scale": (bool, lambda v: True),
    "small_values": (bool, lambda v: True),
    "cam_difference": (bool, lambda v: True),
}
#: Keys of the File menu's standard actions where the platform names none.
FALLBACK_KEYS = {QKeySequence.StandardKey.Open: "Ctrl+O", QKeySequence.StandardKey.Save: "Ctrl+S",
                 QKeySequence.StandardKey.Quit: "Ctrl+Q"}
LOADING_HINT = "Loading the models… (a first start also loads PyTorch: a few seconds)"
NO_IMAGES_HINT = "No images. Use File ▸ Open images… or Open folder…, or drop image files or folders on the window."


def unwritable(path: str | Path) -> str | None:
    """Why a file cannot be written at ``path`` (its folder is missing, not a folder, or
    read-only), else None."""
    folder = Path(path).absolute().parent
    if not folder.exists():
        return f"the folder {folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in {folder}"
    return None


def panel_widths(width: int, least_side: int) -> list[int]:
    """Widths of the image list, the tabs and the side panel on a first start: 170 | 760 | 350
    in a 1280 px window; in a smaller one the list and the side panel give up the most (the
    side panel never below ``least_side``, what its table needs)."""
    image_list = min(max(round(width * 0.133), 100), 200)
    side = min(max(round(width * 0.273), least_side), 420)
    return [image_list, width - image_list - side, side]


class QtMessages(QDockWidget):
    """Every message of the session, newest last, in full (the status bar shows the latest)."""

    def __init__(self, state: AppState, parent=None):
        super().__init__("Messages", parent)
        self.setObjectName("messages")
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.list.clear)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        layout.addWidget(clear, 0, Qt.AlignmentFlag.AlignRight)
        self.setWidget(body)
        for message in state.messages:
            self.add(message)
        unsubscribe_on_close(self, [state.subscribe(Event.MESSAGE, self.add)])

    def add(self, message: Message) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(message.time))
        item = QListWidgetItem(f"{stamp}  {message.text}")
        item.setToolTip(message.text)
        if message.error:
            item.setForeground(Qt.GlobalColor.darkRed)
        self.list.addItem(item)
        self.list.scrollToBottom()

    def texts(self) -> list[str]:
        return [self.list.item(i).text().split("  ", 1)[1] for i in range(self.list.count())]


class QtMainWindow(QMainWindow):
    def __init__(self, state: AppState, controller: InferenceController):
        super().__init__()
        self.state, self.controller = state, controller
        self.setWindowTitle("catviz — CAT vs baseline")
        self.setMinimumSize(*MINIMUM_SIZE)
        self.setAcceptDrops(True)
        self.image_list = QtImageList(state)
        self.cam_view = QtCamView(state)
        self.attention_view = QtAttentionView(state)
        self.predictions = QtPredictions(state)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.cam_view, "Class activation maps")
        self.tabs.addTab(self.attention_view, "Attention (LRD, PMA)")
        # a snapshot goes through the one model-loading path: a worker, then the slot its metadata names
        self.runs_view = QtRunsView(lambda path: controller.load_checkpoints([path], replace=True), state,
                                    lambda: [i.row() for i in self.image_list.selectedIndexes()],
                                    lambda: controller.device, self._ask_png_path)
        self.tabs.addTab(self.runs_view, "Runs")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("QLabel { background: #fff8e1; color: #5d4037; padding: 6px; }")
        center = QWidget()
        center_layout = QVBoxLayout(center)
        center_layout.setContentsMargins(0, 0, 0, 0)
        center_layout.addWidget(self.hint)
        center_layout.addWidget(self.tabs, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        for widget in (self.image_list, center, self.predictions):
            self.splitter.addWidget(widget)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setSizes([170, 760, 350])
        self.setCentralWidget(self.splitter)
        self.messages = QtMessages(state, self)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.messages)
        self.messages.hide()
        self.messages.visibilityChanged.connect(self._size_messages)
        self._build_menus()
        self._build_status_bar()
        subscriptions = [
            state.subscribe(Event.MESSAGE, self._on_message),
            *(state.subscribe(event, lambda *_: self._update_hint())
              for event in (Event.MODELS_CHANGED, Event.IMAGES_ADDED, Event.MESSAGE)),
            state.subscribe(Event.MODELS_CHANGED, lambda role: self._update_device_label()),
            state.subscribe(Event.LOADED_CHANGED, lambda count: self._update_device_label()),
        ]
        controller.busy_changed.connect(self._on_busy)
        controller.loading_changed.connect(lambda _: self._update_hint())
        controller.timings_changed.connect(self._on_timings)
        controller.resolve_label_conflict = self.ask_label_conflict
        controller.choose_partner = self.open_checkpoint
        self._arrow_keys = _ArrowKeysStayInWidgets(self)
        QApplication.instance().installEventFilter(self._arrow_keys)
        self._update_hint()
        self._restore_settings()
        # Written as they change, not only on a clean quit: a killed app keeps them too.
        subscriptions += [state.subscribe(Event.SETTINGS_CHANGED, self._save_display_settings),
                          state.subscribe(Event.MODELS_CHANGED, self._save_checkpoint_path)]
        unsubscribe_on_close(self, subscriptions)

    # construction -----------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        actions = [
            ("Open &images…", QKeySequence.StandardKey.Open, self.open_images),
            ("Open &folder…", None, self.open_folder),
            ("Open &labels… (ground truth, CSV or COCO JSON)", None, self.open_labels),
            ("Open &models… (any number, one label set)", None, self.open_models),
            ("Load &baseline checkpoint…", None, lambda: self.open_checkpoint("baseline")),
            ("Load &CAT checkpoint…", None, lambda: self.open_checkpoint("cat")),
            ("&Reopen last checkpoints", None, self.reopen_last_checkpoints),
            ("Open &run… (training curves, snapshots)", None, self.open_run),
            None,
            ("&Save view as PNG…", QKeySequence.StandardKey.Save, self.save_view),
            ("&Export figure (Fig. 3 style)…", None, self.export_figure),
            ("Export &report… (every loaded model over the dataset)", None, self.export_report),
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
                # The platform's keys, else the usual ones: with no desktop theme (a bare X server,
                # some window managers) Qt's StandardKey.Quit is empty and Ctrl+Q did nothing.
                action.setShortcuts(QKeySequence.keyBindings(shortcut) or [QKeySequence(FALLBACK_KEYS[shortcut])])
                action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)  # from a dock or a tab too
            action.triggered.connect(slot)
            file_menu.addAction(action)
        go = self.menuBar().addMenu("&Go")
        for text, key, delta in (("&Previous image", Qt.Key.Key_Left, -1), ("&Next image", Qt.Key.Key_Right, 1)):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(lambda checked=False, d=delta: self.state.step(d))
            go.addAction(action)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.messages.toggleViewAction())
        reset = QAction("&Reset display options", self)
        reset.setToolTip("Threshold 0.5, colour map, opacity and scale options as on a first start")
        reset.triggered.connect(self.reset_display_settings)
        view.addAction(reset)
        self.models_menu = QtModelsMenu(self.state, self)  # any loaded model in either panel
        self.menuBar().addMenu(self.models_menu)
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
        self.busy.hide()  # shown while work is pending
        self.timings = QtFittingLabel()  # shorter texts where the window is narrow (800 px)
        self.timings.setToolTip("How long each model's forward pass took on the image shown")
        self.device_label = QtFittingLabel()
        self.device_box = QComboBox()  # filled once the worker has imported torch (_on_devices_found)
        self.device_box.addItem(str(self.controller.device))
        self.device_box.setEnabled(False)
        self.device_box.setToolTip("The devices are listed once torch is loaded")
        self.controller.devices_found.connect(self._on_devices_found)
        self.device_box.currentTextChanged.connect(self.controller.set_device)
        self.message_count = QPushButton()
        self.message_count.setFlat(True)
        self.message_count.setToolTip("Show every message of this session (View ▸ Messages)")
        self.message_count.clicked.connect(lambda: (self.messages.show(), self.messages.raise_()))
        self.message_count.hide()
        self.timings_separator = QFrame(frameShape=QFrame.Shape.VLine, frameShadow=QFrame.Shadow.Sunken)
        self.timings_separator.hide()
        for widget in (self.message_count, self.timings, self.timings_separator, self.device_label, QLabel("Device"),
                       self.device_box, self.busy):
            bar.addPermanentWidget(widget)
        self._update_device_label()

    # state → widgets ---------------------------------------------------------------------
    def _on_devices_found(self, names: list[str]) -> None:
        current = str(self.controller.device)
        self.device_box.blockSignals(True)  # listing the devices changes none
        self.device_box.clear()
        self.device_box.addItems(names)
        self.device_box.setCurrentText(current if current in names else "cpu")
        self.device_box.blockSignals(False)
        self.device_box.setEnabled(True)
        self.device_box.setToolTip("")
        self._update_device_label()

    def _on_message(self, message: Message) -> None:
        self.statusBar().showMessage(message.text)  # stays until the next one; all are in Messages
        errors = sum(m.error for m in self.state.messages)
        self.message_count.setText(f"⚠ {errors} error{'s' * (errors != 1)}" if errors
                                   else f"{len(self.state.messages)} message{'s' * (len(self.state.messages) != 1)}")
        self.message_count.setStyleSheet("color: #b00020;" if errors else "")
        self.message_count.show()

    def _size_messages(self, visible: bool) -> None:
        """A few lines tall when shown: Qt's default (the list's size hint, ~230 px) squeezed the
        plots beside the maps until their labels overlapped at 1280x800."""
        if visible and not self.messages.isFloating():
            self.resizeDocks([self.messages], [MESSAGES_HEIGHT], Qt.Orientation.Vertical)

    def _on_busy(self, pending: int) -> None:
        self.busy.setRange(0, 0 if pending else 1)  # indeterminate while work is pending
        self.busy.setVisible(pending > 0)
        self.busy.setToolTip(f"{pending} task(s) pending")

    def _on_timings(self, seconds: dict) -> None:
        text = ", ".join(f"{role} {s * 1000:.0f} ms" for role, s in seconds.items())
        self.timings.set_texts(f"forward: {text}" if text else "",
                               " / ".join(f"{s * 1000:.0f}" for s in seconds.values()) + " ms" if text else "")
        self.timings_separator.setVisible(bool(text))

    def _update_device_label(self) -> None:
        loaded = self.state.loaded
        titles = dict(zip(map(id, loaded), model_names(loaded), strict=True)) if loaded else {}
        names = ", ".join(f"{ROLE_TITLES[r]}: {titles.get(id(m), m.meta.model)}" for r, m in self.state.models.items())
        names = (names or "no models") + (f" ({len(loaded)} loaded)" if len(loaded) > 2 else "")
        self.device_label.set_texts(f"{names} on {self.controller.device}", names, "")  # the tooltip says it all

    def _update_hint(self) -> None:
        no_models = [] if self.state.models else [LOADING_HINT if self.controller.loading else NO_MODELS_HINT]
        hints = no_models + ([NO_IMAGES_HINT] if not self.state.images else [])
        errors = [m.text for m in self.state.messages if m.error]
        if not self.state.models and errors:  # e.g. the checkpoint named on the command line was refused
            hints.append(f"Last error: {errors[-1]}  (all messages: View ▸ Messages)")
        self.hint.setText("\n".join(hints))
        self.hint.setVisible(bool(hints))

    # actions ----------------------------------------------------------------------------
    def _dialog(self, show, *args):
        """Run a modal dialog, then give the keys back to the window: without a window manager
        that does it (or with some that do not), Ctrl+Q and the arrows went nowhere until the
        window was clicked."""
        try:
            return show(*args)
        finally:
            self.activateWindow()
            self.raise_()

    def add_paths(self, paths: list[Path]) -> None:
        """Dropped or opened files: checkpoints are loaded as one set, the rest listed as images."""
        checkpoints = [p for p in paths if p.suffix.lower() in CHECKPOINT_SUFFIXES]
        if checkpoints:
            self.controller.load_checkpoints(checkpoints)
        images = [p for p in paths if p not in checkpoints]
        truth, errors = truth_beside(images)  # a folder's own labels file (the samples' ground truth)
        for error in errors:
            self.state.report(error)
        added = self.state.add_images(images, truth)
        if added:  # the user opened them to see them: the first new one (an unreadable one gives way)
            self.state.select(self.state.images.index(added[0]), automatic=True)

    def open_images(self) -> None:
        files, _ = self._dialog(QFileDialog.getOpenFileNames, self, "Open images", "", "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.gif);;All files (*)")
        self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        folder = self._dialog(QFileDialog.getExistingDirectory, self, "Open a folder of images")
        if folder:
            self.add_paths([Path(folder)])

    def open_run(self) -> None:
        folder = self._dialog(QFileDialog.getExistingDirectory, self, "Open a training run (a catviz-train --out folder)")
        if folder:
            self.open_runs([Path(folder)])

    def open_runs(self, folders: list[Path]) -> None:
        """Show run folders in the Runs tab; a folder without a run is reported there."""
        self.runs_view.open_runs(folders)
        self.tabs.setCurrentWidget(self.runs_view)

    def open_labels(self) -> None:
        """Ground truth for the listed images from a CSV (path,label;label) or COCO-style JSON file."""
        file, _ = self._dialog(QFileDialog.getOpenFileName, self, "Open labels (ground truth by file name)", "",
                               "Labels (*.csv *.json);;All files (*)")
        if file:
            self.apply_labels(Path(file))

    def apply_labels(self, path: Path) -> None:
        """Give the listed images the labels ``path`` names for their file names; say what matched."""
        try:
            labels = read_labels(path)
        except LabelsError as err:
            self.state.report(str(err))
            return
        matched, unmatched = match([e.path for e in self.state.images], labels)
        for entry in self.state.images:
            if entry.path in matched:
                entry.ground_truth = matched[entry.path]
        text = f"{path.name}: ground truth for {len(matched)} of {len(self.state.images)} listed images"
        if unmatched:
            text += (f"; {len(unmatched)} name{'s' * (len(unmatched) != 1)} in the file match no listed image: "
                     + ", ".join(unmatched[:10]) + (" …" if len(unmatched) > 10 else ""))
        self.state.report(text, error=not matched)
        if self.state.current_entry is not None:  # the marks and titles of the image shown are redrawn
            self.state.emit(Event.SELECTION_CHANGED, self.state.current_entry)

    def open_models(self) -> None:
        """Pick checkpoints: all are loaded (one label set), the first of each kind into the slot its
        metadata names; Models ▸ Left/Right panel shows any of them."""
        files, _ = self._dialog(QFileDialog.getOpenFileNames, self, "Open models (any number with one label set)", "",
                                                "catviz checkpoints (*.safetensors);;All files (*)")
        if files:
            self.controller.load_checkpoints(files)

    def open_checkpoint(self, role: str) -> None:
        file, _ = self._dialog(QFileDialog.getOpenFileName, self, f"Load {role} checkpoint", "", "catviz checkpoints (*.safetensors);;All files (*)")
        if file:
            self.controller.load_checkpoint(file, role)

    def ask_label_conflict(self, new: LoadedModel, other: LoadedModel) -> str:
        """A model whose labels differ from the other slot's: "clear", "choose" or "cancel"."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Models with different labels")
        box.setText(f"{new.path.name} ({new.role}) has {new.meta.num_classes} labels "
                    f"({', '.join(new.meta.class_names[:4])} …); the {other.role} model {other.path.name} has "
                    f"{other.meta.num_classes} ({', '.join(other.meta.class_names[:4])} …).\n\n"
                    "Both panels compare the same labels, so both models must have them.")
        choose = box.addButton(f"Load it, and choose a matching {other.role}…", QMessageBox.ButtonRole.AcceptRole)
        clear = box.addButton(f"Load it, and clear the {other.role} slot", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(choose)
        self._dialog(box.exec)
        return {id(choose): "choose", id(clear): "clear"}.get(id(box.clickedButton()), "cancel")

    def reopen_last_checkpoints(self) -> None:
        settings = QSettings()
        paths = [settings.value(f"checkpoints/{role}") for role in ROLES]
        if any(paths):
            self.controller.load_checkpoints([p for p in paths if p])

    def _ask_png_path(self, title: str, name: str) -> str:
        """A PNG path from the save dialog (which asks before replacing a file), in the folder
        used last time; "" when cancelled."""
        settings = QSettings()
        folder = settings.value("paths/save_folder") or str(Path.cwd())  # first time: where Open starts too
        path = self._dialog(QFileDialog.getSaveFileName, self, title, str(Path(str(folder)) / name), "PNG (*.png)")[0]
        if not path:
            return ""
        settings.setValue("paths/save_folder", str(Path(path).parent))
        if Path(path).suffix.lower() != ".png":
            path += ".png"
            if Path(path).exists():  # the dialog asked about the name typed, not this one
                self.state.report(f"{path} already exists; not replaced (choose it in the dialog to replace it)")
                return ""
        return path

    def view_caption(self) -> str:
        """What the view shows: image, models, label, threshold, method and level (or LRD layer and head)."""
        s, entry = self.state.settings, self.state.current_entry
        models = {role: (m.meta.model, m.path.name) for role, m in self.state.models.items()}
        if self.tabs.currentWidget() is self.attention_view:
            method, level = "attention", f"LRD layer {s.lrd_layer}, head {s.head}"
        else:
            method = method_info(s.cam_method).title
            level = s.cam_level if s.cam_method == CAM else (self.state.attribution_level("cat") or s.cam_level)
        from . import figure  # torch: imported by the controller's first task

        return figure.caption_text(models, self.state.shown_label(), s.threshold, method, level,
                                   entry.path.name if entry is not None else None)

    def _captioned_grab(self) -> QImage:
        """The current tab as on screen, under a strip with :meth:`view_caption` (wrapped to its width)."""
        shot = self.tabs.currentWidget().grab().toImage()
        text, font = self.view_caption(), self.font()
        bounds = QFontMetrics(font).boundingRect(QRect(0, 0, shot.width() - 16, 10_000),
                                                 Qt.TextFlag.TextWordWrap, text)
        image = QImage(shot.width(), shot.height() + bounds.height() + 12, QImage.Format.Format_RGB32)
        image.fill(Qt.GlobalColor.white)
        painter = QPainter(image)
        painter.setFont(font)
        painter.setPen(Qt.GlobalColor.black)
        painter.drawText(QRect(8, 6, shot.width() - 16, bounds.height()), Qt.TextFlag.TextWordWrap, text)
        painter.drawImage(0, bounds.height() + 12, shot)
        painter.end()
        return image

    def save_view(self, path: str | None = None) -> None:
        path = path or self._ask_png_path("Save view", "catviz-view.png")
        if not path:
            return
        if (why := unwritable(path)) is not None:
            self.state.report(f"{path}: view not saved, {why}")
        elif self._captioned_grab().save(path, "PNG"):
            self.state.report(f"view saved to {path}", error=False)
        else:
            self.state.report(f"{path}: could not write PNG")

    def export_figure(self, path: str | None = None) -> None:
        """Fig.-3-style grid of the selected images (all readable ones if none selected)."""
        path = path or self._ask_png_path("Export figure", "catviz-figure.png")
        if not path or not self.state.models:
            return
        if (why := unwritable(path)) is not None:
            self.state.report(f"{path}: figure not written, {why}")
            return
        rows = {i.row() for i in self.image_list.selectedIndexes()} or range(len(self.state.images))
        entries = [self.state.images[i] for i in sorted(rows)]
        unreadable = [e for e in entries if e.image is None and e.error]
        if unreadable and len(unreadable) < len(entries):  # none readable: the controller says nothing is exported
            self.state.report(f"{Path(path).name}: {len(unreadable)} of {len(entries)} images left out, unreadable: "
                              + "; ".join(e.error for e in unreadable))
        self.controller.export_figure(path, entries)

    def export_report(self, folder: str | None = None) -> None:
        """File ▸ Export report…: ``catviz-eval --compare --report``'s files for every loaded
        model, from the Dataset tab's last pass (see QtDatasetView.export_report)."""
        from .qt_dataset_view import QtDatasetView

        view = next((w for i in range(self.tabs.count()) if isinstance(w := self.tabs.widget(i), QtDatasetView)), None)
        if view is None:
            self.state.report("Export report: no dataset is open; start catviz with --dataset (e.g. catviz --dataset "
                              "demo) and the Dataset tab compares the loaded models over its split")
            return
        self.tabs.setCurrentWidget(view)
        view.export_report(Path(folder) if folder else None)

    def about_text(self) -> str:
        lines = [f"<b>catviz {__version__}</b> — CAT vs its baseline (Zhang et al., ICASSP 2022).<br>"
                 f"Device: {self.controller.device}<br>"]
        demo_files = set(demo.DEMO_CHECKPOINTS.values())
        for role in ROLES:
            loaded = self.state.models.get(role)
            text = loaded.describe() if loaded else "not loaded"
            if loaded is not None and loaded.path in demo_files:
                text += " (bundled demo)"
            lines.append(f"<b>{role}</b>: {text}")
        return "<br>".join(lines)

    def show_about(self) -> None:
        self._dialog(QMessageBox.about, self, "About catviz", self.about_text())

    # drag and drop, settings ---------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        run_folders = [p for p in paths if is_run(p)]
        if run_folders:
            self.open_runs(run_folders)
        self.add_paths([p for p in paths if p not in run_folders])
        event.acceptProposedAction()

    def show_on_screen(self, size: tuple[int, int] | None = None, available: QRect | None = None) -> None:
        """Show the window at ``size`` (else as the last session left it, else DEFAULT_SIZE), its
        frame kept within the screen's available area (``available``, by default the screen's
        less its panels): a geometry saved on a larger screen, or a window at the screen's full
        size plus its title bar, no longer opens with the status bar off the screen."""
        saved = QSettings().value("window/size")  # restoreGeometry shrinks a too-large one to the minimum
        if size is None and isinstance(saved, QSize) and saved.isValid():
            size = (saved.width(), saved.height())
        if size is not None or not QSettings().contains("window/geometry"):
            self.resize(*(size or DEFAULT_SIZE))
        if available is None and QGuiApplication.platformName() not in ("offscreen", "minimal"):
            available = (self.screen() or QGuiApplication.primaryScreen()).availableGeometry()
        if available is not None:
            self._fit_within(available)
        if not QSettings().contains("window/splitter"):  # a first start: the panels share this width
            self.splitter.setSizes(panel_widths(self.width(), self.predictions.minimumSizeHint().width()))
        self.show()
        if available is not None:  # the frame's size is known once shown (a window manager adds it)
            self._fit_within(available)

    def _fit_within(self, available: QRect) -> None:
        frame, inner = self.frameGeometry(), self.geometry()
        extra = QSize(frame.width() - inner.width(), frame.height() - inner.height())
        width = max(self.minimumWidth(), min(inner.width(), available.width() - extra.width()))
        height = max(self.minimumHeight(), min(inner.height(), available.height() - extra.height()))
        if (width, height) != (inner.width(), inner.height()):
            self.resize(width, height)
        x = min(max(frame.x(), available.left()), available.right() + 1 - width - extra.width())
        y = min(max(frame.y(), available.top()), available.bottom() + 1 - height - extra.height())
        self.move(max(x, available.left()), max(y, available.top()))

    def _restore_settings(self) -> None:
        """Window geometry and the display options of the last session.

        The settings file is the user's to edit: a value that does not parse or is out of
        range is ignored (logged), never applied.
        """
        settings = QSettings()
        if settings.contains("window/geometry"):
            self.restoreGeometry(settings.value("window/geometry"))
            self.splitter.restoreState(settings.value("window/splitter"))
        changes = {}
        for key, (kind, valid) in PERSISTED_SETTINGS.items():
            if not settings.contains(f"display/{key}"):
                continue
            try:
                value = settings.value(f"display/{key}", type=kind)
            except (TypeError, ValueError):
                value = None
            if value is None or not valid(value):
                _logger.warning("settings %s: display/%s = %r ignored (invalid)", settings.fileName(), key,
                                settings.value(f"display/{key}"))
                continue
            changes[key] = value
        self._apply_display_settings(changes)
        if changes.get("threshold", DisplaySettings.threshold) != DisplaySettings.threshold:  # marks and F1 depend on it
            self.state.report(f"Threshold {changes['threshold']:.2f}, kept from the last session "
                              "(View ▸ Reset display options goes back to 0.5)", error=False)

    def _apply_display_settings(self, changes: dict) -> None:
        if "threshold" in changes:
            self.predictions.slider.setValue(round(changes["threshold"] * 100))
        self.state.update_settings(**changes)

    def reset_display_settings(self) -> None:
        """The display options kept between sessions back to their first-start values."""
        defaults = DisplaySettings()
        self._apply_display_settings({key: getattr(defaults, key) for key in PERSISTED_SETTINGS})
        self.state.report("Display options reset (threshold 0.5)", error=False)

    def _save_display_settings(self, changed: set[str]) -> None:
        settings = QSettings()
        for key in changed & PERSISTED_SETTINGS.keys():
            settings.setValue(f"display/{key}", getattr(self.state.settings, key))

    def _save_checkpoint_path(self, role: str) -> None:
        loaded = self.state.models.get(role)
        if loaded is not None:
            QSettings().setValue(f"checkpoints/{role}", str(loaded.path))

    def closeEvent(self, event) -> None:
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/size", self.size())
        settings.setValue("window/splitter", self.splitter.saveState())
        QApplication.instance().removeEventFilter(self._arrow_keys)
        self.controller.shutdown(QUIT_WAIT_MS)  # cancelled; a forward pass still running is not waited out
        self.runs_view.shutdown()  # its folder reads and a maps export (a view gets no close event of its own)
        release_subscriptions(self)  # the views in the window get no close event of their own
        super().closeEvent(event)


class _ArrowKeysStayInWidgets(QObject):
    """Left/Right change the image, except in a focused widget that uses them (a slider,
    a spin box, a text field, a combo box): accepting Qt's ShortcutOverride there hands
    the key to the widget instead of the window's shortcut."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and event.key() in (Qt.Key.Key_Left, Qt.Key.Key_Right) \
                and isinstance(QApplication.focusWidget(), ARROW_KEY_WIDGETS):
            event.accept()
        return False
