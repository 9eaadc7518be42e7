"""Pure numpy/OpenCV rendering shared by the views and the headless export (no Qt).

Signed maps (logit contributions: complete CAMs, Integrated Gradients, Occlusion) are
drawn with a diverging colour map centred on zero whose opacity grows with |value|:
zero evidence leaves the image as it is, red adds to the label's logit, blue takes
away from it. Panels that compare share one symmetric scale, so equal colours mean
equal logits. Unsigned maps (the grad-cam package's, scaled to [0, 1] by the package)
keep a sequential colour map at constant opacity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .map_memo import per_map

if TYPE_CHECKING:
    from .results import InferenceResult

DIVERGING = "RdBu (diverging)"
#: ColorBrewer RdBu, from blue (most negative) through white (0) to red (most positive).
_RDBU = np.array([
    (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
    (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
], dtype=np.float32)
SEQUENTIAL = {"turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO,
              "viridis": cv2.COLORMAP_VIRIDIS, "magma": cv2.COLORMAP_MAGMA}
COLORMAPS = (DIVERGING, *SEQUENTIAL)
#: Used for unsigned maps when the chosen colour map is the diverging one.
DEFAULT_SEQUENTIAL = "inferno"


@dataclass(frozen=True)
class Scale:
    """The value range a colour map spans. ``low < 0`` means a signed, zero-centred map."""

    low: float
    high: float

    @property
    def signed(self) -> bool:
        return self.low < 0

    @property
    def limit(self) -> float:
        return max(abs(self.low), abs(self.high))

    def describe(self, units: str) -> str:
        if self.signed:
            return f"±{self.limit:.3g} {units}"
        return f"0 to {self.high:.3g} {units}"


UNIT_SCALE = Scale(0.0, 1.0)  # grad-cam's maps: min-max scaled by the package


def symmetric_scale(maps: Iterable[np.ndarray | None], positive_only: bool = False,
                    percentile: float = 100.0) -> Scale:
    """One zero-centred range covering every map: (-m, m), or (0, m) with ``positive_only``.

    m is the largest |value| (the largest value with ``positive_only``) over all maps, or
    with ``percentile`` < 100 the largest of the maps' percentiles (values beyond
    saturate: per-pixel attributions have a few extreme pixels). A map of zeros gets a
    tiny range instead of a division by zero.
    """
    peaks = [per_map(m, ("peak", positive_only, percentile), lambda m=m: _peak(m, positive_only, percentile))
             for m in maps if m is not None]
    peak = max([p for p in peaks if p is not None], default=0.0)
    peak = max(peak, 1e-6)
    return Scale(0.0, peak) if positive_only else Scale(-peak, peak)


def _peak(heat: np.ndarray, positive_only: bool, percentile: float) -> float | None:
    """The ``percentile`` of |value| (of the positive part with ``positive_only``) over the
    finite values; None for a map without any."""
    values = np.asarray(heat, dtype=np.float32)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    values = np.clip(values, 0.0, None) if positive_only else np.abs(values)
    return float(np.percentile(values, percentile))


#: A map whose own range is below this share of the shared scale is nearly colourless on it.
FAINT_SHARE = 0.2


def own_share(heat: np.ndarray, shared: Scale, positive_only: bool = False, percentile: float = 100.0) -> float:
    """How much of the shared scale's range the map itself reaches (1: it set the scale)."""
    return symmetric_scale([heat], positive_only, percentile).limit / shared.limit


def colormap_for(name: str, signed: bool) -> str:
    """The colour map a map is drawn with: the chosen one, but never diverging for unsigned data."""
    if name not in COLORMAPS:
        name = DIVERGING
    return DEFAULT_SEQUENTIAL if name == DIVERGING and not signed else name


def lookup_table(name: str, scale: Scale | None = None) -> np.ndarray:
    """(256, 3) uint8 RGB colours spanning ``scale``; for the diverging map with a
    non-negative scale, only its upper (white → red) half."""
    if name == DIVERGING:
        positions = np.linspace(0, 1, len(_RDBU))
        t = np.linspace(0.5 if scale is not None and not scale.signed else 0.0, 1.0, 256)
        return np.stack([np.interp(t, positions, _RDBU[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)
    colored = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], SEQUENTIAL[name])[:, 0]
    return colored[:, ::-1].copy()  # BGR → RGB


#: "Show small values": a non-zero value below this share of the scale's limit is drawn as if
#: it reached it (its sign's colour, opacity ``opacity * sqrt(SMALL_VALUE_FLOOR)``), so weak
#: evidence spread over many cells stays visible next to a strong peak.
SMALL_VALUE_FLOOR = 0.3


def _magnitude(heat: np.ndarray, scale: Scale, floor: float) -> np.ndarray:
    """|value| / limit in [0, 1] as drawn: raised to ``floor`` where non-zero (0: as it is)."""
    magnitude = np.clip(np.abs(heat) / scale.limit, 0.0, 1.0)
    return np.where(heat != 0, np.maximum(magnitude, floor), 0.0) if floor > 0 else magnitude


def drawn_strength(heat: np.ndarray, scale: Scale, opacity: float = 0.5, floor: float = 0.0) -> np.ndarray:
    """How strongly each value of a signed map shows, in [0, 1]: its opacity times its colour's
    distance from the white at zero (about ``|value| / limit`` on RdBu). 1: the scale's end at
    full opacity. A small value is drawn both transparent and nearly white: this says how faint
    (:func:`colorize` draws it at opacity ``opacity * sqrt(m)`` in a colour ``m`` of the way)."""
    heat = np.where(np.isfinite(heat), heat, 0.0).astype(np.float32)
    if not scale.signed:
        heat = np.clip(heat, 0.0, None)
    magnitude = _magnitude(heat, scale, floor)
    return opacity * np.sqrt(magnitude) * magnitude


def colorize(heat: np.ndarray, scale: Scale, colormap: str = DIVERGING, opacity: float = 0.5,
             floor: float = 0.0) -> np.ndarray:
    """An (h, w, 4) uint8 RGBA rendering of ``heat`` over ``scale``.

    Diverging: colour by value, opacity ``opacity * sqrt(|value| / limit)`` (zero is
    transparent; the square root keeps moderate evidence visible next to the peak; values
    past the scale saturate); ``floor`` > 0 draws a non-zero value below ``floor * limit``
    as ``±floor * limit`` (:data:`SMALL_VALUE_FLOOR`). Sequential: colour by value,
    constant ``opacity``.
    """
    heat = heat.astype(np.float32)
    heat[~np.isfinite(heat)] = 0.0
    if colormap == DIVERGING:
        if not scale.signed:
            heat = np.clip(heat, 0.0, None)
        magnitude = _magnitude(heat, scale, floor)
        t = 0.5 + 0.5 * np.sign(heat) * magnitude
        rgb = lookup_table(DIVERGING)[np.round(t * 255).astype(np.int64)]
        alpha = opacity * np.sqrt(magnitude)
    else:
        t = np.clip((heat - scale.low) / (scale.high - scale.low), 0.0, 1.0)
        rgb = lookup_table(colormap)[np.round(t * 255).astype(np.int64)]
        alpha = np.full(heat.shape, opacity, np.float32)
    return np.concatenate([rgb, np.round(alpha * 255).astype(np.uint8)[..., None]], axis=-1)


def muted(image: np.ndarray) -> np.ndarray:
    """The image in light grey, so a signed map's red and blue are not confused with its colours."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.repeat((96 + grey * 0.6)[..., None], 3, axis=-1).astype(np.uint8)


def normalise(heat: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] (a constant map becomes zeros), as grad-cam shows maps."""
    heat = heat.astype(np.float32)
    low, high = float(heat.min()), float(heat.max())
    return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


def upsample(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """A map stretched over an (height, width) image: a coarser grid's cells as blocks of one
    value (one rule for CAMs and attention: a cell is what the model has, no smoothing
    invents detail between cells); a finer map (IG, Occlusion at the input size) averaged down."""
    heat = heat.astype(np.float32)
    enlarge = height >= heat.shape[0] and width >= heat.shape[1]
    return cv2.resize(heat, (width, height), interpolation=cv2.INTER_NEAREST_EXACT if enlarge else cv2.INTER_AREA)


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.5, colormap: str = "turbo",
            scale: Scale = UNIT_SCALE, floor: float = 0.0) -> np.ndarray:
    """RGB image blended with a colour-mapped heat map of any resolution (see :func:`colorize`)."""
    h, w = image.shape[:2]
    rgba = colorize(upsample(heat, h, w), scale, colormap, opacity, floor).astype(np.float32)
    alpha = rgba[..., 3:] / 255
    return np.round(image * (1 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)


def cam_map(result: InferenceResult, label: int, level: str = "combined") -> np.ndarray:
    """One label's complete CAM in logit units: ``combined`` or one level's map."""
    return result.combined_cam[label] if level == "combined" or level not in result.cams else result.cams[level][label]


def cam_for_label(result: InferenceResult, label: int, level: str = "combined") -> np.ndarray:
    """One label's CAM min-max scaled to [0, 1] (``combined`` or one level)."""
    return normalise(cam_map(result, label, level))
