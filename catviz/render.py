"""Pure numpy/OpenCV rendering shared by the views and the headless export (no Qt)."""

from __future__ import annotations

import cv2
import numpy as np

from .inference import InferenceResult


def normalise(heat: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] (a constant map becomes zeros), as grad-cam shows maps."""
    heat = heat.astype(np.float32)
    low, high = float(heat.min()), float(heat.max())
    return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


def upsample(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """A low-resolution map stretched over an (height, width) image, bilinear."""
    return cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5, colormap: int = cv2.COLORMAP_TURBO) -> np.ndarray:
    """RGB image blended with a colour-mapped [0, 1] heat map of any resolution."""
    h, w = image.shape[:2]
    colored = cv2.applyColorMap((upsample(heat, h, w).clip(0, 1) * 255).astype(np.uint8), colormap)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return (image * (1 - opacity) + colored * opacity).astype(np.uint8)


def cam_for_label(result: InferenceResult, label: int, level: str = "combined") -> np.ndarray:
    """One label's CAM in [0, 1] (``combined`` or one level) from cached results."""
    maps = result.combined_cam if level == "combined" or level not in result.cams else result.cams[level]
    return normalise(maps[label])
