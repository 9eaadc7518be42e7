"""The image list: thumbnails, unreadable files flagged with their reason."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QStyle

from .state import AppState, ImageEntry

THUMB = 72


def to_qimage(image: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB → QImage (copied, so the array may go)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class QtImageList(QListWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self._folders: defaultdict[str, list[Path]] = defaultdict(list)  # file name → folders of listed images
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformItemSizes(True)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long name keeps its end (and suffix) in view
        self.setAcceptDrops(False)  # the main window takes drops
        self.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)  # figure export: several
        self.currentRowChanged.connect(self._on_row_changed)
        state.subscribe("images_added", self._on_images_added)
        state.subscribe("image_loaded", self._on_image_loaded)
        state.subscribe("selection_changed", self._on_selection_changed)

    def _item(self, entry: ImageEntry) -> QListWidgetItem | None:
        index = self.state.images.index(entry)
        return self.item(index) if index < self.count() else None

    def _label(self, entry: ImageEntry) -> str:
        """The file name; when other listed images have the same name, with as much of its
        folder path as tells it apart from theirs (``a/``, else ``x/a/`` ...)."""
        name, parent = entry.path.name, entry.path.parent
        others = [folder for folder in self._folders[name] if folder != parent]
        if not others:
            return name
        for k in range(1, len(parent.parts) + 1):
            tail = parent.parts[-k:]
            if all(folder.parts[-k:] != tail for folder in others):
                break
        return f"{name}\n{Path(*tail)}/"

    def _on_images_added(self, entries: list[ImageEntry]) -> None:
        for entry in entries:
            self._folders[entry.path.name].append(entry.path.parent)
        for entry in entries:
            item = QListWidgetItem()
            item.setToolTip(str(entry.path))
            self.addItem(item)
        new = {id(entry) for entry in entries}
        repeated = {entry.path.name for entry in entries if len(self._folders[entry.path.name]) > 1}
        for row, entry in enumerate(self.state.images[: self.count()]):
            if id(entry) in new or entry.path.name in repeated:  # new, or now sharing its name
                self.item(row).setText(self._label(entry) + ("\n(unreadable)" if entry.error else ""))

    def _on_image_loaded(self, entry: ImageEntry) -> None:
        item = self._item(entry)
        if item is None:
            return
        if entry.error:
            item.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
            item.setText(f"{self._label(entry)}\n(unreadable)")
            item.setForeground(QColor("#b00020"))
            item.setToolTip(entry.error)
            return
        if entry.thumbnail is not None and item.icon().isNull():
            item.setIcon(QIcon(QPixmap.fromImage(to_qimage(entry.thumbnail))))

    def _on_selection_changed(self, entry: ImageEntry | None) -> None:
        if self.currentRow() != self.state.current:
            self.setCurrentRow(self.state.current)

    def _on_row_changed(self, row: int) -> None:
        self.state.select(row)
