"""A pyqtgraph panel: an image with a colour-mapped heat map on top and a title."""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from .render import upsample

DISPLAY_MAX = 640  # the longest side images are drawn at


def display_image(image: np.ndarray) -> np.ndarray:
    scale = DISPLAY_MAX / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class OverlayPanel:
    """Owns a ViewBox in a GraphicsLayout: ``set_image``, ``set_heat``, ``set_title``."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str = ""):
        self.title = layout.addLabel(title, row=row, col=col, color="k", size="10pt")
        self.view = layout.addViewBox(row=row + 1, col=col, lockAspect=True, invertY=True, enableMouse=False)
        self.view.setMenuEnabled(False)
        self.image_item = pg.ImageItem()
        self.heat_item = pg.ImageItem()
        self.view.addItem(self.image_item)
        self.view.addItem(self.heat_item)
        self.shape: tuple[int, int] | None = None
        self.heat: np.ndarray | None = None

    def set_image(self, image: np.ndarray | None) -> None:
        if image is None:
            self.image_item.clear()
            self.shape = None
            return
        self.image_item.setImage(image, levels=(0, 255))
        self.shape = image.shape[:2]
        self.view.autoRange(padding=0.01)

    def set_heat(self, heat: np.ndarray | None, colormap: str = "turbo", opacity: float = 0.5) -> None:
        """A [0, 1] map of any resolution, stretched over the image."""
        self.heat = heat
        if heat is None or self.shape is None:
            self.heat_item.clear()
            return
        h, w = self.shape
        self.heat_item.setImage(upsample(heat, h, w), levels=(0, 1))
        self.heat_item.setLookupTable(pg.colormap.get(colormap).getLookupTable(nPts=256))
        self.heat_item.setRect(QRectF(0, 0, w, h))
        self.heat_item.setOpacity(opacity)

    def set_title(self, text: str, color: str = "k") -> None:
        self.title.setText(text, color=color)
