"""The chosen images' maps across a run's epochs as one figure: a row per snapshot.

Each row is one ``RUN/snapshots/epoch-NNN.safetensors`` (the model as it was after that
epoch, with its val mAP from the snapshot's own metadata); each column one image and the
label it explains (stated above it: the one chosen, or the top label of the last epoch
drawn); each cell that epoch's map of that label by the method, depth and level the app
shows, with the label's probability at that epoch. Signed maps share one zero-centred scale
per image across the epochs (a colour bar under each column), so a map that grows is seen
to grow; or, asked for, each map has its own scale.

Torch side and Qt-free: the Runs tab runs :func:`compute` in a worker, ``catviz runs
--maps-across-epochs`` in the command; :func:`render` draws with :mod:`catviz.render` as
the app's panels and :mod:`catviz.figure` do. A snapshot of another model or label set than
the run's is refused, naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from catviz.models.checkpoint import CheckpointError

from . import inference
from .figure import BACKDROP, BLACK, CELL, GREY, LINE, PAPER, _letterbox, _text, _wrap
from .methods import CAM, depth_title, display_percentile, method_info
from .render import (
    DIVERGING,
    UNIT_SCALE,
    Scale,
    cam_map,
    colormap_for,
    lookup_table,
    muted,
    overlay,
    symmetric_scale,
)
from .results import probability_text
from .runs import describe_labels

LEFT = 132  # the epoch column's width (px)
HEADER = 30
BAR_HEIGHT = 42  # under each column: its colour bar and limits


@dataclass
class EpochImage:
    """A column: an image (RGB, any size) and the label it explains (None: the top label of
    the last epoch drawn, filled in by :func:`compute`), with how that label was chosen."""

    name: str
    image: np.ndarray
    label: str | None = None
    label_note: str = ""


@dataclass
class EpochRow:
    epoch: int
    path: Path
    score: str  # "val mAP 45.2" (+ " (EMA)")
    maps: list[np.ndarray]  # per image
    probabilities: list[float]  # per image, of its label


@dataclass
class EpochMaps:
    """What :func:`compute` found, ready for :func:`render`."""

    run: str
    model: str
    method: str
    depth: str | None  # the complete CAM's; None for other methods
    level: str
    images: list[EpochImage]
    rows: list[EpochRow] = field(default_factory=list)
    threshold: float = 0.5


def _score(meta) -> str:
    value = meta.metrics.get("mAP") if isinstance(meta.metrics, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "val mAP not recorded"
    return f"val mAP {value:.1f}" + (" (EMA)" if meta.metrics.get("weights") == "ema" else "")


def _level_for(method: str, spec, level: str) -> str | None:
    """The level a map is taken at, as the CAM view takes it: the chosen one when the model has
    it; else the complete CAM combined, a layer method's finest level."""
    if level in spec.level_names:
        return level
    if method == CAM or not method_info(method).layered:
        return None
    return min(spec.levels, key=lambda lv: lv.stride).name


def compute(snapshots: dict[int, Path], images: list[EpochImage], method: str = CAM, depth: str | None = "input",
            level: str = "combined", device=None, model: str | None = None,
            class_names: tuple[str, ...] | list[str] | None = None, run: str = "",
            progress: Callable[[tuple[int, int, str]], None] | None = None,
            should_stop: Callable[[], bool] | None = None, threshold: float = 0.5,
            strict_level: bool = False) -> EpochMaps:
    """Every snapshot's map of each image's label: one row per epoch of ``snapshots``.

    ``level``: combined or a level name; one the model lacks is taken as the CAM view takes it
    (combined, or a layer method's finest level), or with ``strict_level`` refused.
    ``model`` and ``class_names``: the run's (a snapshot of another is refused, named);
    ``progress((done, total, what))`` after each map; ``should_stop()`` polled between maps
    (then :class:`~catviz.models.attribution.Cancelled`). The last epoch is computed first:
    it names the top label of images given none."""
    from catviz.models.attribution import Cancelled
    from catviz.models.device import resolve_device

    info = method_info(method)
    if not snapshots:
        raise ValueError(f"{run or 'the run'}: no snapshots to draw (train with --snapshot-every K)")
    if not images:
        raise ValueError("no image to draw")
    device = device if device is not None and not isinstance(device, str) else resolve_device(device or "auto")
    epochs = sorted(snapshots)
    found = EpochMaps(run, model or "", method, depth if method == CAM else None, level,
                      [EpochImage(i.name, i.image, i.label, i.label_note) for i in images], threshold=threshold)
    total, done = len(epochs) * len(images), 0
    rows: dict[int, EpochRow] = {}
    for epoch in [epochs[-1], *epochs[:-1]]:
        path = snapshots[epoch]
        if should_stop is not None and should_stop():
            raise Cancelled("maps across epochs cancelled")
        loaded = inference.load_model(path, device)
        meta = loaded.meta
        if model and meta.model != model:
            raise CheckpointError(f"{path}: a snapshot of {meta.model!r}, not of the run's {model!r}; refused")
        if class_names is None:
            class_names = tuple(meta.class_names)
        if tuple(meta.class_names) != tuple(class_names):
            raise CheckpointError(f"{path}: a snapshot of another label set ({describe_labels(meta.class_names)}), "
                                  f"not the run's ({describe_labels(class_names)}); refused")
        found.model = found.model or meta.model
        spec = loaded.spec
        why = info.unavailable_for(spec)
        if why:
            raise ValueError(f"{path}: {why}")
        if method == CAM and depth not in spec.depths:
            raise ValueError(f"{path}: {meta.model} has no depth {depth!r} ({', '.join(spec.depths)})")
        if strict_level and level != "combined" and level not in spec.level_names:
            raise ValueError(f"{path}: {meta.model} has no level {level!r} ({', '.join(spec.level_names)})")
        at = _level_for(method, spec, level)
        row = EpochRow(epoch, path, _score(meta), [], [])
        for column in found.images:
            if should_stop is not None and should_stop():
                raise Cancelled("maps across epochs cancelled")
            result = inference.run_model(loaded, column.image)
            if column.label is None:  # the last epoch's top label (computed first)
                column.label = meta.class_names[int(result.probabilities.argmax())]
                column.label_note = f"top at epoch {epoch}"
            if column.label not in meta.class_names:
                raise ValueError(f"{path}: no label {column.label!r} in this snapshot "
                                 f"({describe_labels(meta.class_names)}); refused")
            label = meta.class_names.index(column.label)
            if method == CAM and depth == "tokens":
                heat = cam_map(result, label, at or "combined")
            else:
                heat = inference.run_attribution(loaded, column.image, label, at, method,
                                                 should_stop=should_stop, depth=depth if method == CAM else None)
            row.maps.append(np.asarray(heat, np.float32))
            row.probabilities.append(float(result.probabilities[label]))
            done += 1
            if progress is not None:
                progress((done, total, f"epoch {epoch}: {column.name}"))
        rows[epoch] = row
        del loaded
    found.rows = [rows[e] for e in epochs]
    return found


@dataclass
class EpochFigure:
    """The figure (RGB uint8) and where each epoch's row starts and ends (pixel rows)."""

    image: np.ndarray
    rows: list[tuple[int, int, int]]  # (epoch, top, bottom)
    columns: list[tuple[int, int]]  # each image column's (left, right)


def _scales(maps: EpochMaps, signed: bool, shared: bool, positive_only: bool) -> list[list[Scale]]:
    """[row][column] → the scale a map is drawn on."""
    if not signed:
        return [[UNIT_SCALE for _ in row.maps] for row in maps.rows]
    percentile = display_percentile(method_info(maps.method), maps.depth or "")
    if not shared:
        return [[symmetric_scale([m], positive_only, percentile) for m in row.maps] for row in maps.rows]
    per_column = [symmetric_scale([row.maps[c] for row in maps.rows], positive_only, percentile)
                  for c in range(len(maps.images))]
    return [per_column for _ in maps.rows]


def title_text(maps: EpochMaps) -> str:
    info = method_info(maps.method)
    where = f" at the {depth_title(maps.depth)}" if maps.depth else ""
    level = f", level {maps.level}" if maps.level and (maps.method == CAM or info.layered) else ""
    return f"{maps.run} ({maps.model}): {info.title}{where}{level}, one row per snapshot epoch"


def render(maps: EpochMaps, opacity: float = 0.75, colormap: str = DIVERGING, shared_scale: bool = True,
           positive_only: bool = False) -> EpochFigure:
    """The figure of :func:`compute`'s maps: a title, the images with their labels, a row per
    epoch (its number and val mAP at the left; each map captioned with the label's probability),
    each column's colour bar when its epochs share a scale, and a legend."""
    info = method_info(maps.method)
    colour = colormap_for(colormap, info.signed)
    columns = len(maps.images)
    width = LEFT + max(columns, 2) * CELL  # one image: room for the title and legend still
    scales = _scales(maps, info.signed, shared_scale, positive_only)
    tiles = [_letterbox(column.image) for column in maps.images]
    parts = [_strip(width, _wrap(title_text(maps), width - 12), BLACK, 6)]
    # the images, each with the label its maps explain
    heads = [_wrap(column.name, CELL - 8)[:2] + _wrap(f"label {column.label}"
                                                      + (f" ({column.label_note})" if column.label_note else ""), CELL - 8)
             for column in maps.images]
    head_h = CELL + 6 + LINE * max(len(lines) for lines in heads)
    strip = np.full((head_h, width, 3), PAPER, np.uint8)
    _text(strip, ["image and", "the label", "explained"], 6, 6, GREY)
    for c, ((tile, _), lines) in enumerate(zip(tiles, heads, strict=True)):
        strip[:CELL, LEFT + c * CELL: LEFT + (c + 1) * CELL] = tile
        _text(strip, lines, LEFT + c * CELL + 4, CELL + 2, BLACK)
    parts.append(strip)
    top = sum(p.shape[0] for p in parts)
    row_h = CELL + 6 + LINE
    boxes = []
    for r, row in enumerate(maps.rows):
        strip = np.full((row_h, width, 3), PAPER, np.uint8)
        _text(strip, [f"epoch {row.epoch}", *_wrap(row.score, LEFT - 10)], 6, CELL // 2 - 20, BLACK)
        for c, ((tile, (y, x, h, w)), heat) in enumerate(zip(tiles, row.maps, strict=True)):
            base = muted(tile) if colour == DIVERGING else tile
            cell = np.full((CELL, CELL, 3), BACKDROP, np.uint8)
            cell[y: y + h, x: x + w] = overlay(base[y: y + h, x: x + w], heat, opacity, colour, scales[r][c])
            strip[:CELL, LEFT + c * CELL: LEFT + (c + 1) * CELL] = cell
            p = row.probabilities[c]
            text = f"p({maps.images[c].label}) {probability_text(p, maps.threshold)}"
            _text(strip, _wrap(text, CELL - 8)[:1], LEFT + c * CELL + 4, CELL + 1, BLACK)
        cv2.line(strip, (0, row_h - 1), (width, row_h - 1), BACKDROP, 1)
        boxes.append((row.epoch, top, top + row_h))
        top += row_h
        parts.append(strip)
    shared = info.signed and shared_scale
    if shared or not info.signed:
        parts.append(_bars(width, [scales[0][c] for c in range(columns)] if maps.rows else [], colour, info.signed))
    parts.append(_strip(width, _wrap(_legend(maps, info, colour, shared), width - 12), GREY, 4))
    return EpochFigure(np.concatenate(parts, axis=0), boxes,
                       [(LEFT + c * CELL, LEFT + (c + 1) * CELL) for c in range(columns)])


def _legend(maps: EpochMaps, info, colour: str, shared: bool) -> str:
    what = (f"{info.title} in {info.units}: red raises the label's logit, blue lowers it (image in grey)"
            if info.signed and colour == DIVERGING else f"{info.title}, {info.units}, colour map {colour}")
    if info.signed:
        what += ("; one scale per image across the epochs (bar under each column), so colours compare down a "
                 "column" if shared else "; each map on its own scale: colours do not compare between maps")
    return (f"Rows: the run's snapshots (its weights after that epoch; val mAP from the snapshot's metadata). "
            f"Columns: the images and the label each explains; under each map, that epoch's probability of it. "
            f"{what}.")


def _strip(width: int, lines: list[str], colour, pad: int) -> np.ndarray:
    strip = np.full((2 * pad + LINE * len(lines), width, 3), PAPER, np.uint8)
    _text(strip, lines, 6, pad - 2, colour)
    return strip


def _bars(width: int, scales: list[Scale], colour: str, signed: bool) -> np.ndarray:
    """Under each column: a horizontal colour bar of its scale, low at the left."""
    strip = np.full((BAR_HEIGHT, width, 3), PAPER, np.uint8)
    _text(strip, ["scale"], 6, 4, GREY)
    for c, scale in enumerate(scales):
        left, right = LEFT + c * CELL + 12, LEFT + (c + 1) * CELL - 12
        colours = lookup_table(colour, scale)
        strip[6:18, left:right] = cv2.resize(colours[None, :, :], (right - left, 12), interpolation=cv2.INTER_NEAREST)
        cv2.rectangle(strip, (left, 6), (right - 1, 17), GREY, 1)
        low = f"{scale.low:+.3g}" if signed and scale.low else f"{scale.low:.3g}"
        high = f"{scale.high:+.3g}" if signed else f"{scale.high:.3g}"
        _text(strip, [low], left, 18, BLACK)
        (w, _), _ = cv2.getTextSize(high, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)
        _text(strip, [high], right - w, 18, BLACK)
        if scale.signed:
            _text(strip, ["0"], (left + right) // 2 - 3, 18, BLACK)
    return strip

