"""The image list: thumbnails, unreadable files flagged with their reason."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QRect, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
)

from catviz.train_cli.paths import distinct_tail

from .qt_events import unsubscribe_on_close
from .state import AppState, Event, ImageEntry

THUMB = 72
#: The least icon side: the icons take at most a third of the list's width, down to this.
MIN_THUMB = 24
#: Lines of a row's text at most: the name, the folder that tells it apart, "(unreadable)".
TEXT_LINES = 3
#: A list narrower than this (an 800 px window) puts each icon above its name: the name gets
#: the whole width instead of two thirds of it.
NARROW = 140


def to_qimage(image: np.ndarray) -> QImage:
    """(H, W, 3) uint8 RGB → QImage (copied, so the array may go)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def square_icon(thumbnail: np.ndarray, side: int = 2 * THUMB) -> QIcon:
    """The thumbnail letterboxed in a transparent square (twice the list's icon size, for
    high-DPI screens): any aspect ratio fills the same box, a 1x1 image fills it, and an
    8000x50 one stays at least a pixel high in the list instead of scaling to an empty pixmap."""
    image = to_qimage(thumbnail)
    least = QSize(side // THUMB, side // THUMB)  # 1 px at the list's icon size
    size = image.size().scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio).expandedTo(least)
    pixmap = QPixmap(side, side)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    target = QRect(0, 0, size.width(), size.height())
    target.moveCenter(pixmap.rect().center())
    painter.drawImage(target, image)
    painter.end()
    return QIcon(pixmap)


class _RowDelegate(QStyledItemDelegate):
    """Every row the same height from the start, with room for the icon before it arrives,
    and no wider than the view: long names are elided instead of cut or pushed past the edge."""

    def initStyleOption(self, option: QStyleOptionViewItem, index) -> None:
        super().initStyleOption(option, index)
        option.features |= QStyleOptionViewItem.ViewItemFeature.HasDecoration  # the thumbnail's place
        if self.parent().narrow:
            option.decorationPosition = QStyleOptionViewItem.Position.Top
            option.displayAlignment = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:
        side, text = option.decorationSize.height(), TEXT_LINES * option.fontMetrics.lineSpacing()
        if self.parent().narrow:
            return QSize(side + 8, side + text + 8)
        return QSize(side + 8, max(side, text) + 6)


class QtImageList(QListWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        self._folders: defaultdict[str, list[Path]] = defaultdict(list)  # file name → folders of listed images
        self.setItemDelegate(_RowDelegate(self))
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformItemSizes(True)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long name keeps its end (and suffix) in view
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # names are elided instead
        self.setAcceptDrops(False)  # the main window takes drops
        self.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)  # figure export: several
        # A click never scrolls the list under the pointer between press and release (the
        # release then highlighted another row than the one shown): rows are brought into
        # view after the release, or at once when chosen elsewhere (keys, the Dataset tab).
        self.setAutoScroll(False)
        self._pressed = False
        self.currentRowChanged.connect(self._on_row_changed)
        unsubscribe_on_close(self, [
            state.subscribe(Event.IMAGES_ADDED, self._on_images_added),
            state.subscribe(Event.IMAGE_LOADED, self._on_image_loaded),
            state.subscribe(Event.SELECTION_CHANGED, self._on_selection_changed),
        ])

    @property
    def narrow(self) -> bool:
        return self.viewport().width() < NARROW

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        width = self.viewport().width()
        if self.narrow:  # the icon above the name
            side = max(MIN_THUMB, min(THUMB * 2 // 3, width - 16))
        else:  # beside it: names keep two thirds of the width
            side = max(MIN_THUMB, min(THUMB, width // 3))
        if side != self.iconSize().width():
            self.setIconSize(QSize(side, side))
        else:
            self.scheduleDelayedItemsLayout()  # narrow or wide changes the rows' shape

    def _item(self, entry: ImageEntry) -> QListWidgetItem | None:
        index = self.state.images.index(entry)
        return self.item(index) if index < self.count() else None

    def _label(self, entry: ImageEntry) -> str:
        """The file name; when other listed images have the same name, with as much of its
        folder path as tells it apart from theirs (``a/``, else ``x/a/`` ...)."""
        name, parent = entry.path.name, entry.path.parent
        if all(folder == parent for folder in self._folders[name]):
            return name
        return f"{name}\n{distinct_tail(parent, self._folders[name])}/"

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
            item.setIcon(square_icon(entry.thumbnail))

    def _on_selection_changed(self, entry: ImageEntry | None) -> None:
        row = self.state.current
        if self.currentRow() != row:  # chosen elsewhere (the Dataset tab): only this row selected, in view
            self.setCurrentRow(row, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if self.currentItem() is not None and not self._pressed:
            self.scrollToItem(self.currentItem())

    def mousePressEvent(self, event) -> None:
        self._pressed = True
        try:
            super().mousePressEvent(event)
        finally:
            self._pressed = False

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if self.currentItem() is not None:  # a partly visible row clicked: now wholly in view
            self.scrollToItem(self.currentItem())

    def _on_row_changed(self, row: int) -> None:
        self.state.select(row)
