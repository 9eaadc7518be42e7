"""Layouts and labels for a narrow window (down to 800x600): a row of controls that wraps
onto more lines (Qt's flow layout example), and a label that shows the longest of its texts
that fits. Every control and text stays whole instead of being cut."""

from __future__ import annotations

from PySide6.QtCore import QMargins, QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QScrollArea,
    QSizePolicy,
    QWidget,
)


class QtFlowLayout(QLayout):
    """Items left to right at their size hints, wrapping to a new line where the next one
    would pass the right edge; each line as tall as its tallest item, items centred in it. A
    word-wrapping label takes the rest of its line (one line of text where it fits)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._filling: set[int] = set()  # ids of the items that take the rest of their line
        self.setContentsMargins(QMargins(0, 0, 0, 0))
        self.setSpacing(spacing)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def add_filling(self, widget: QWidget) -> None:
        """``widget`` placed as the others, then widened to the rest of its line (a progress
        bar after its buttons: beside them where there is room, on a line of its own where not)."""
        self.addWidget(widget)
        self._filling.add(id(self._items[-1]))

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        """All items on one line."""
        visible = [item for item in self._items if not item.isEmpty()]
        margins = self.contentsMargins()
        width = sum(item.sizeHint().width() for item in visible) + self.spacing() * max(len(visible) - 1, 0)
        height = max((item.sizeHint().height() for item in visible), default=0)
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:
        """The widest item (each on its own line at worst)."""
        size = QSize()
        for item in self._items:
            if not item.isEmpty():
                size = size.expandedTo(item.minimumSize().expandedTo(item.sizeHint().boundedTo(item.maximumSize())))
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _arrange(self, rect: QRect, move: bool) -> int:
        """Place the items in ``rect`` (or only measure); returns the height they take."""
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        lines: list[list[tuple[QLayoutItem, QSize]]] = [[]]
        x = area.x()
        for item in self._items:
            if item.isEmpty():
                continue
            size = item.sizeHint().boundedTo(item.maximumSize()).expandedTo(item.minimumSize())
            size.setWidth(min(size.width(), area.width()))
            if lines[-1] and x + size.width() > area.right() + 1:
                lines.append([])
                x = area.x()
            if item.hasHeightForWidth():  # a wrapping label: the rest of its line, as tall as its lines there
                size.setWidth(area.right() + 1 - x)
                size.setHeight(item.heightForWidth(size.width()))
            elif id(item) in self._filling:
                size.setWidth(area.right() + 1 - x)
            lines[-1].append((item, size))
            x += size.width() + self.spacing()
        y = area.y()
        for line in lines:
            height = max((size.height() for _, size in line), default=0)
            x = area.x()
            for item, size in line:
                if move:
                    item.setGeometry(QRect(QPoint(x, y + (height - size.height()) // 2), size))
                x += size.width() + self.spacing()
            y += height + self.spacing()
        return max(y - self.spacing() - area.y(), 0) + margins.top() + margins.bottom()


def control_group(*widgets: QWidget, spacing: int = 4) -> QWidget:
    """Widgets kept together on one line of a flow layout (a label with its box)."""
    group = QWidget()
    row = QHBoxLayout(group)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(spacing)
    for widget in widgets:
        row.addWidget(widget)
    group.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    return group


def scrolling(widget: QWidget, least_height: int) -> QScrollArea:
    """``widget`` filling a vertical scroll area, never shorter than ``least_height``: in a
    short window it scrolls instead of being squeezed (maps a few pixels tall)."""
    widget.setMinimumHeight(least_height)
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area


class QtFittingLabel(QLabel):
    """A one-line label with texts from the longest to the shortest: it asks for room for
    the first and shows the longest that fits its width (the first, in full, is its tooltip
    unless it has one of its own)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.texts: list[str] = [""]
        self.fixed_tooltip = ""

    def setToolTip(self, text: str) -> None:
        self.fixed_tooltip = text
        super().setToolTip(text)

    def set_texts(self, *texts: str) -> None:
        self.texts = list(texts) or [""]
        QLabel.setToolTip(self, self.fixed_tooltip or (self.texts[0] if self.texts[0] != self.texts[-1] else ""))
        self.updateGeometry()
        self._fit()

    def sizeHint(self) -> QSize:
        return self._size(self.texts[0])

    def minimumSizeHint(self) -> QSize:
        return self._size(self.texts[-1])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        text = next((t for t in self.texts if self._size(t).width() <= self.width()), self.texts[-1])
        if text != self.text():
            super().setText(text)

    def _size(self, text: str) -> QSize:
        margins = self.contentsMargins()
        extra = 2 * self.margin() + margins.left() + margins.right() + 2 * self.indent() * (self.indent() > 0)
        width = self.fontMetrics().horizontalAdvance(text) + extra + (2 if text else 0)
        return QSize(width, super().sizeHint().height())


class QtWrappedLabel(QLabel):
    """A word-wrapping label that keeps the height of its lines at its width as its least
    height: in a splitter's pane Qt's layouts gave a third line one pixel too few."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        height = self.heightForWidth(self.width()) if self.width() > 0 else -1
        if height > 0 and height != self.minimumHeight():
            self.setMinimumHeight(height)
