"""How much evidence a map holds, and where two models' maps differ (numpy only: no torch, no Qt).

Complete CAMs follow one convention (:class:`catviz.models.cam.CAMResult`): a map's
**mean** plus its offset is its logit, ``mean(map) + offset == logit``. A cell's share of
the logit is its value divided by the number of cells, so the map's evidence splits
exactly into

* the **positive total**: the sum of the positive values over the cell count,
* the **negative total**: the sum of the negative values over the cell count,
* the **net**: positive + negative = ``mean(map)`` = logit − offset,

all in logit units (:func:`evidence_totals`). Integrated Gradients' attributions are per
pixel and *sum* to ``logit(image) − logit(black image)`` (completeness): their totals are
sums (``per_cell=False``). Occlusion and the grad-cam package's maps have no such
property: they have no totals.

Two maps on different grids compare after :func:`area_resample` to a common grid: each
target cell is the area-weighted average of the source cells it overlaps, so the mean (the
logit mass) is kept exactly, also when one grid is not a multiple of the other.
:func:`difference_map` is the CAT − baseline map on such a grid, whose mean plus the
difference of the offsets is the logit difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .map_memo import per_map
from .methods import CAM, INTEGRATED_GRADIENTS, MapMethod

#: A cell drawn at less than this share of full strength (opacity × colour, see
#: :func:`catviz.render.drawn_strength`) counts as faint: its evidence is easily overlooked.
FAINT_STRENGTH = 0.1


@dataclass(frozen=True)
class EvidenceTotals:
    """A map's evidence for (``positive`` ≥ 0) and against (``negative`` ≤ 0) its label, in
    logit units; ``net`` = positive + negative."""

    positive: float
    negative: float

    @property
    def net(self) -> float:
        return self.positive + self.negative

    def text(self, minus: str = "−") -> str:
        """"+0.41 −1.54 = net −1.13": for, against, their sum (``minus``: "-" where a font lacks "−")."""
        return f"{signed(self.positive, minus)} {signed(self.negative, minus)} = net {signed(self.net, minus)}"


def signed(value: float, minus: str = "−") -> str:
    """``value`` with its sign and two decimals, a true minus sign (no "−0.00")."""
    text = f"{value:+.2f}"
    return text.replace("-", minus) if text != "-0.00" else "+0.00"


def evidence_totals(heat: np.ndarray, per_cell: bool = True) -> EvidenceTotals:
    """The positive and negative evidence of ``heat`` (non-finite values count as 0).

    ``per_cell``: the complete CAM's convention (each value over the number of cells, so
    the net is the map's mean); else the values' sums (Integrated Gradients).
    """
    def totals() -> EvidenceTotals:
        values = np.asarray(heat, np.float64)
        values = np.where(np.isfinite(values), values, 0.0)
        count = values.size if per_cell else 1
        return EvidenceTotals(float(values[values > 0].sum() / count), float(values[values < 0].sum() / count))

    return per_map(heat, ("totals", per_cell), totals)


def _overlaps(source: int, target: int) -> np.ndarray:
    """(target, source) weights: the share of each target cell covered by each source cell
    (both grids spanning [0, 1]); every row sums to 1, every column to target / source."""
    src = np.arange(source + 1, dtype=np.float64) / source
    dst = np.arange(target + 1, dtype=np.float64) / target
    low = np.maximum(dst[:-1, None], src[None, :-1])
    high = np.minimum(dst[1:, None], src[None, 1:])
    return np.clip(high - low, 0.0, None) * target


def area_resample(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``heat`` (h, w) on a (H, W) grid over the same area, keeping its mean exactly.

    Each target cell is the area-weighted average of the source cells under it: a coarse
    cell becomes a block of its value, fine cells are averaged, and a grid that is not a
    multiple of the other splits the border cells by area (float32 out, float64 inside).
    """
    heat = np.asarray(heat)
    if heat.ndim != 2:
        raise ValueError(f"a map must be (h, w), got shape {heat.shape}")
    if tuple(heat.shape) == tuple(size):
        return heat.astype(np.float32, copy=False)
    rows, cols = _overlaps(heat.shape[0], size[0]), _overlaps(heat.shape[1], size[1])
    return (rows @ heat.astype(np.float64) @ cols.T).astype(np.float32)


@dataclass(frozen=True)
class DifferenceMap:
    """CAT − baseline on one grid: ``mean(heat) + delta_offset == delta_logit``."""

    heat: np.ndarray  # (H, W), logit units per cell (the mean convention)
    delta_logit: float
    delta_offset: float

    @property
    def residual(self) -> float:
        """How far the identity is from exact: mean + Δoffset − Δlogit (float rounding)."""
        return float(np.mean(self.heat, dtype=np.float64)) + self.delta_offset - self.delta_logit


def difference_map(cat: np.ndarray, baseline: np.ndarray, cat_logit: float, baseline_logit: float,
                   cat_offset: float, baseline_offset: float, size: tuple[int, int]) -> DifferenceMap:
    """CAT's complete map minus the baseline's, both :func:`area_resample`\\ d to ``size``
    (the input pixels), with the logits and offsets they split."""
    heat = area_resample(cat, size).astype(np.float64) - area_resample(baseline, size)
    return DifferenceMap(heat.astype(np.float32), float(cat_logit) - float(baseline_logit),
                         float(cat_offset) - float(baseline_offset))


def faint_share(heat: np.ndarray, strength: np.ndarray, below: float = FAINT_STRENGTH) -> float:
    """The share of ``heat``'s |mass| in cells drawn with ``strength`` below ``below`` (0 for
    a map of zeros)."""
    magnitude = np.abs(np.where(np.isfinite(heat), heat, 0.0)).astype(np.float64)
    total = magnitude.sum()
    return float(magnitude[np.asarray(strength) < below].sum() / total) if total > 0 else 0.0


#: How a method's values add up: per cell over the cell count (complete CAM: the mean is the
#: logit's share), summed (Integrated Gradients' completeness), or not at all (None).
PER_CELL, SUMMED = "per cell", "summed"


def totals_convention(method: MapMethod) -> str | None:
    """How ``method``'s maps add up to a logit (:data:`PER_CELL`, :data:`SUMMED`), or None."""
    if method.name == CAM:
        return PER_CELL
    if method.run == INTEGRATED_GRADIENTS:
        return SUMMED
    return None


def totals_text(heat: np.ndarray, method: MapMethod, logit: float | None = None,
                offset: float | None = None, minus: str = "−") -> tuple[list[str], str]:
    """(a panel's lines, its tooltip): ``heat``'s evidence totals in ``method``'s convention
    ("+0.41 −1.54 = net −1.13"), then "= logit −1.58 − offset −0.45" where both are known;
    "totals —" and why for a method whose values add up to nothing."""
    convention = totals_convention(method)
    if convention is None:
        why = ("its values are min-max scaled to 0-1 by the grad-cam package: no sign, no logit units"
               if not method.signed else "it has no completeness property: its values do not add up to the logit")
        return ["totals —"], f"No evidence totals for {method.title}: {why}."
    totals = evidence_totals(heat, per_cell=convention == PER_CELL)
    lines = [totals.text(minus)]
    if convention == SUMMED:
        return [f"sums {lines[0]}"], (
            f"{method.title}'s pixel attributions summed: for {totals.positive:+.4f}, against {totals.negative:+.4f}, "
            f"net {totals.net:+.4f}. They add up (completeness, up to the path's discretisation) to "
            "logit(image) − logit(black image), not to the logit: there is no offset.")
    tooltip = (f"Evidence in logit units: each cell's value over the {np.size(heat):,} cells (the map's mean is "
               f"its share of the logit). For {totals.positive:+.4f} (the positive cells), against "
               f"{totals.negative:+.4f} (the negative), net {totals.net:+.4f}")
    if logit is not None and offset is not None:
        lines.append(f"= logit {signed(logit, minus)} {minus} offset {signed(offset, minus)}")
        tooltip += (f" = logit {logit:+.4f} − offset {offset:+.4f} (the part no position carries); "
                    f"residual {totals.net + offset - logit:+.1e}")
    return lines, tooltip + "."


def faint_text(share: float) -> str:
    """A panel's note of the |mass| drawn faintly ("" below 1 %; plain text, no markup)."""
    return f"{share:.0%} of |mass| drawn faint" if share >= 0.01 else ""
