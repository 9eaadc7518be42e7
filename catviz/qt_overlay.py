"""pyqtgraph pieces the views share: an image panel with a heat map on top and a title,
and a colour bar in the map's units."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QSizePolicy

from .render import DIVERGING, Scale, colorize, lookup_table, muted, upsample

DISPLAY_MAX = 640  # the longest side images are drawn at
TITLE_MIN_WIDTH = 120
#: A map is never drawn shorter than this: a canvas whose titles and maps need more height
#: than the window has scrolls (see fit_canvas_height).
LEAST_MAP_PX = 110
HEAT_MAX = 320  # the longest side a map is coloured at (maps are coarser; IG's are the input size)


def display_image(image: np.ndarray) -> np.ndarray:
    scale = DISPLAY_MAX / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class PanelTitle(pg.LabelItem):
    """A panel's title whose text never sets its column's width.

    pyqtgraph's label asks for its text's width (again on every resize), so a longer
    title made its panel wider than the one beside it and could widen the grid past the
    window. Here it asks for at most :data:`TITLE_MIN_WIDTH`: side-by-side panels share
    the width equally, and a long line wraps within its panel (see resizeEvent).
    """

    def updateMin(self) -> None:
        super().updateMin()
        self.setMinimumWidth(min(self.minimumWidth(), TITLE_MIN_WIDTH))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        option = self.item.document().defaultTextOption()
        option.setWrapMode(option.WrapMode.WrapAtWordBoundaryOrAnywhere)  # a long label name too
        self.item.document().setDefaultTextOption(option)

    def resizeEvent(self, event) -> None:
        """Lines longer than the panel wrap within it (pyqtgraph centres the text block, so
        a wider one reached past the panel's left edge and was cut there)."""
        self.item.setTextWidth(-1)
        if self.item.boundingRect().width() > self.width() > 20:
            self.item.setTextWidth(self.width())
        super().resizeEvent(event)

    def sizeHint(self, hint, constraint):
        size = super().sizeHint(hint, constraint)
        if hint in (Qt.SizeHint.MinimumSize, Qt.SizeHint.PreferredSize):
            size.setWidth(min(size.width(), TITLE_MIN_WIDTH))
        return size


def fit_canvas_height(canvas: pg.GraphicsLayoutWidget, least: int) -> None:
    """Make ``canvas`` (in a scroll area) at least as tall as its grid needs at its width,
    wrapped titles over maps of LEAST_MAP_PX, and never less than ``least``."""
    need = canvas.ci.effectiveSizeHint(Qt.SizeHint.MinimumSize).height()
    height = max(least, int(need) + 2)
    if canvas.minimumHeight() != height:
        canvas.setMinimumHeight(height)


class OverlayPanel:
    """Owns a ViewBox in a GraphicsLayout: ``set_image``, ``set_heat``, ``set_title``."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str = ""):
        self.title = PanelTitle(title, color="k", size="9pt")
        self.title.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        layout.addItem(self.title, row=row, col=col)
        self.view = layout.addViewBox(row=row + 1, col=col, lockAspect=True, invertY=True, enableMouse=False)
        self.view.setMenuEnabled(False)
        self.view.setMinimumHeight(LEAST_MAP_PX)
        self.image_item = pg.ImageItem()
        self.heat_item = pg.ImageItem()
        self.view.addItem(self.image_item)
        self.view.addItem(self.heat_item)
        self.image: np.ndarray | None = None
        self.muted = False
        self.shape: tuple[int, int] | None = None
        self.heat: np.ndarray | None = None  # the map shown, in its own units
        self._drawn: tuple | None = None  # what the heat item holds, coloured at full opacity
        self.scale: Scale | None = None

    def set_image(self, image: np.ndarray | None) -> None:
        self.image = image
        if image is None:
            self.image_item.clear()
            self.heat_item.clear()
            self.shape = None
            return
        self.image_item.setImage(muted(image) if self.muted else image, levels=(0, 255))
        self.shape = image.shape[:2]
        h, w = self.shape
        self.view.setRange(QRectF(0, 0, w, h), padding=0.01)  # the new image's size, whatever was shown before

    def set_muted(self, on: bool) -> None:
        """Show the image in light grey (under a signed map) or in colour."""
        if on != self.muted:
            self.muted = on
            if self.image is not None:
                self.image_item.setImage(muted(self.image) if on else self.image, levels=(0, 255))

    def set_heat(self, heat: np.ndarray | None, scale: Scale | None = None, colormap: str = DIVERGING,
                 opacity: float = 0.5, floor: float = 0.0) -> None:
        """A map of any resolution stretched over the image, coloured over ``scale`` (``floor``:
        small values drawn visibly, see :func:`render.colorize`)."""
        self.heat, self.scale = heat, scale
        if heat is None or scale is None or self.shape is None:
            self.heat_item.clear()
            self._drawn = None
            return
        h, w = self.shape
        drawn = (heat.copy(), scale, colormap, (h, w), floor)
        if self._drawn is None or not (np.array_equal(drawn[0], self._drawn[0]) and drawn[1:] == self._drawn[1:]):
            # coloured once at full opacity: an opacity change only sets the item's opacity
            step = max(1.0, max(h, w) / HEAT_MAX)  # coloured at most HEAT_MAX px a side; the item stretches it
            small = upsample(heat, max(1, round(h / step)), max(1, round(w / step)))
            self.heat_item.setImage(colorize(small, scale, colormap, 1.0, floor), levels=(0, 255))
            self.heat_item.setRect(QRectF(0, 0, w, h))
            self._drawn = drawn
        self.heat_item.setOpacity(opacity)

    def set_title(self, text: str, color: str = "k", tooltip: str = "") -> None:
        self.title.setText(text, color=color)
        self.title.setToolTip(tooltip)

    def set_visible(self, visible: bool) -> None:
        self.title.setVisible(visible)
        self.view.setVisible(visible)


def color_map(name: str, scale: Scale) -> pg.ColorMap:
    """The pyqtgraph colour map of :func:`render.lookup_table` (one source for both)."""
    return _color_map(name, scale.signed)


@functools.lru_cache(maxsize=32)
def _color_map(name: str, signed: bool) -> pg.ColorMap:
    """Built once per map and sign (256 stops take pyqtgraph tens of ms): the table
    depends on the scale only through its sign."""
    table = lookup_table(name, Scale(-1.0, 1.0) if signed else Scale(0.0, 1.0))
    return pg.ColorMap(np.linspace(0, 1, len(table)), table)


class ColorBar(pg.ColorBarItem):
    """A read-only vertical colour bar: ``show_scale(scale, colormap, label)``."""

    def __init__(self):
        super().__init__(values=(0, 1), width=14, interactive=False, colorMapMenu=False, pen="k")
        self.scale: Scale | None = None
        for axis in ("left", "right", "top", "bottom"):
            self.getAxis(axis).setTextPen("k")
            self.getAxis(axis).setPen("k")
            self.getAxis(axis).enableAutoSIPrefix(False)
        self.getAxis("left").setWidth(18)  # room for the units, written vertically
        self.setFixedWidth(14 + 18 + 45 + 4)  # bar, units, tick values: never squeezed by the panels

    def show_scale(self, scale: Scale | None, colormap: str = DIVERGING, label: str = "",
                   ticks: list[tuple[float, str]] | None = None) -> None:
        """``ticks``: (value, text) pairs instead of the axis' own numbers (e.g. "2×" on a log scale)."""
        self.scale = scale
        self.setVisible(scale is not None)
        if scale is None:
            return
        self.setColorMap(color_map(colormap, scale))
        self.setLevels((scale.low, scale.high))
        self.getAxis("left").setLabel(label, color="k")
        self.getAxis("right").setTicks([ticks] if ticks else None)
