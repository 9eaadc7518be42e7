"""The paper's Fig. 3 as an image: per image, baseline and CAT maps of each label.

Each image gets two rows (baseline, CAT); the first column is the image, then one
column per label (the ground truth when known, else labels either model predicts),
each the map overlaid with "label probability" underneath. A ground-truth label a
model misses (probability below the threshold) is captioned in red, as in the paper.
Photos keep their aspect ratio (letterboxed into square cells); captions wrap; column
headers, a legend and, per image, a colour bar in the method's units (left out when each
map has its own scale) frame the grid.

The maps are drawn with :mod:`catviz.render`, exactly as the app's panels draw them:
signed maps (the complete CAM, in logit units) with the diverging colour map over a
muted image, by default on one zero-centred scale shared by baseline and CAT.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from catviz.models.checkpoint import atomic_write

from .evidence import (
    FAINT_STRENGTH,
    PER_CELL,
    SUMMED,
    difference_map,
    faint_share,
    totals_convention,
    totals_text,
)
from .methods import CAM, depth_title, display_percentile, method_info
from .render import (
    DIVERGING,
    SMALL_VALUE_FLOOR,
    Scale,
    cam_map,
    colormap_for,
    drawn_strength,
    lookup_table,
    muted,
    overlay,
    symmetric_scale,
)
from .results import InferenceResult, at_or_above, probability_text

CELL = 192
LINE = 15  # caption line height (px)
HEADER = 26
BAR = 86  # colour-bar column: the bar and its tick labels
RED, BLACK, GREY, PAPER, BACKDROP = (220, 30, 30), (20, 20, 20), (110, 110, 110), (255, 255, 255), (236, 236, 236)
FONT, FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.42
#: Encoders by output suffix: a figure is written in the format its name says.
ENCODINGS = {".png": [], ".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95]}


@dataclass
class FigureRow:
    """One image: its picture (any size; a thumbnail is enough), each role's results, and
    for methods other than CAM the maps already computed (role → label → map)."""

    name: str
    image: np.ndarray
    results: dict[str, InferenceResult]  # role → result
    ground_truth: set[str] | None
    maps: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    input_size: int | None = None  # the models' input side (the larger): the difference maps' grid


#: The pseudo-role of the difference row (``render_figure(difference=True)``).
DIFFERENCE = "CAT - baseline"


def labels_to_show(row: FigureRow, class_names: list[str], threshold: float, most: int = 4) -> list[int]:
    if row.ground_truth:
        return [class_names.index(n) for n in sorted(row.ground_truth) if n in class_names][:most]
    scores = np.max([r.probabilities for r in row.results.values()], axis=0)
    order = [int(i) for i in np.argsort(-scores) if at_or_above(scores[i], threshold)]
    return (order or [int(np.argmax(scores))])[:most]


def thumbnail(image: np.ndarray, size: int = CELL) -> np.ndarray:
    """``image`` shrunk (aspect kept) to fit a ``size`` square: all a figure row needs to keep."""
    h, w = image.shape[:2]
    factor = size / max(h, w)
    if factor >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


def _letterbox(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A CELL x CELL tile with ``image`` fitted inside, aspect kept, centred on a backdrop."""
    h, w = image.shape[:2]
    factor = CELL / max(h, w)
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    fitted = cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    tile = np.full((CELL, CELL, 3), BACKDROP, np.uint8)
    y, x = (CELL - size[1]) // 2, (CELL - size[0]) // 2
    tile[y: y + size[1], x: x + size[0]] = fitted
    return tile, (y, x, size[1], size[0])


def _wrap(text: str, width: int) -> list[str]:
    """Lines of ``text`` that fit ``width`` pixels (words kept whole where they fit)."""
    (char_w, _), _ = cv2.getTextSize("n", FONT, FONT_SCALE, 1)
    return textwrap.wrap(text, max(4, width // char_w - 1), break_long_words=True) or [""]


def _text(canvas: np.ndarray, lines: list[str], x: int, y: int, color) -> None:
    for i, line in enumerate(lines):
        cv2.putText(canvas, line, (x, y + 12 + i * LINE), FONT, FONT_SCALE, color, 1, cv2.LINE_AA)


def _fitted(text: str, width: int) -> list[str]:
    """``text`` on one line when its drawn width fits ``width``, else wrapped (:func:`_wrap`)."""
    return [text] if cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0] <= width else _wrap(text, width)


def _evidence_lines(heat: np.ndarray | None, info, logit: float | None, offset: float | None,
                    alpha: np.ndarray | None) -> list[str]:
    """A cell's evidence under its label: "+0.41 -1.54 = net -1.13", "= logit -1.58 - offset -0.45"
    and the share of |mass| drawn faint, as the app's panels say them (none for a method without totals)."""
    if heat is None or totals_convention(info) is None:
        return []
    lines, _ = totals_text(heat, info, logit, offset, minus="-")
    share = faint_share(heat, alpha) if alpha is not None else 0.0
    lines += [f"faint: {share:.0%} of |mass|"] if share >= 0.01 else []
    return [part for line in lines for part in _fitted(line, CELL - 8)]


def _difference(row: FigureRow, label: int, depth: str | None):
    """CAT - baseline of one label's complete CAMs (combined) on the input pixels, or None."""
    base, cat = row.results.get("baseline"), row.results.get("cat")
    maps = [_map_of(row, role, label, CAM) for role in ("baseline", "cat")]
    if base is None or cat is None or any(m is None for m in maps) or not base.level_logits or not cat.level_logits:
        return None
    depth = depth or "tokens"
    offsets = [r.offset(label, "combined", depth) for r in (base, cat)]
    if any(o is None for o in offsets):
        return None
    side = row.input_size or max(max(m.shape) for m in maps)
    return difference_map(maps[1], maps[0], cat.logit(label), base.logit(label), offsets[1], offsets[0], (side, side))


def _map_of(row: FigureRow, role: str, label: int, method: str) -> np.ndarray | None:
    if method == CAM and not row.maps.get(role):  # token depth: the CAMs of the forward pass
        return cam_map(row.results[role], label)
    return row.maps.get(role, {}).get(label)


def colour_bar(height: int, scale: Scale, colormap: str) -> np.ndarray:
    """A vertical bar (high value on top) with its limits and zero written beside it."""
    column = np.full((height, BAR, 3), PAPER, np.uint8)
    top, bottom = 8, height - 8
    colours = lookup_table(colormap, scale)[::-1]  # row 0 = the highest value
    column[top:bottom, 6:22] = cv2.resize(colours[:, None, :], (16, bottom - top), interpolation=cv2.INTER_NEAREST)
    cv2.rectangle(column, (6, top), (21, bottom - 1), GREY, 1)
    ticks = [(scale.high, top), (scale.low, bottom - 1)]
    if scale.signed:
        ticks.append((0.0, (top + bottom) // 2))
    for value, y in ticks:
        cv2.line(column, (22, y), (26, y), GREY, 1)
        cv2.putText(column, f"{value:+.3g}" if scale.signed and value else f"{value:.3g}", (28, y + 4), FONT, FONT_SCALE,
                    BLACK, 1, cv2.LINE_AA)
    return column


def render_figure(rows: list[FigureRow], class_names: list[str], threshold: float = 0.5, opacity: float = 0.75,
                  colormap: str = DIVERGING, method: str = CAM, shared_scale: bool = True,
                  positive_only: bool = False, caption: str = "", depth: str | None = None,
                  difference: bool = False, small_values: bool = False) -> np.ndarray:
    """An RGB uint8 figure; width fits the image with the most labels; ``caption`` (see
    :func:`caption_text`) is written under the legend; ``depth``: the complete CAM's,
    named in the header. Each map's caption gives its evidence totals (as the app's panels).
    ``difference``: a third row per image, CAT - baseline of each label's complete CAM on the
    input pixels (see :func:`catviz.evidence.difference_map`). ``small_values``: every non-zero
    value drawn visibly (:data:`catviz.render.SMALL_VALUE_FLOOR`).

    ``method``'s maps (CAM: each result's complete CAM; others: ``row.maps``) are drawn
    with ``colormap`` (signed maps stay diverging over a muted image, as in the app).
    With ``shared_scale`` one zero-centred scale covers every map of an image, baseline
    and CAT alike, so equal colours mean equal values; otherwise each map has its own.
    """
    info = method_info(method)
    colour = colormap_for(colormap, info.signed)
    plans = [(row, labels_to_show(row, class_names, threshold)) for row in rows]
    columns = 1 + max(len(labels) for _, labels in plans)
    bar = shared_scale or not info.signed  # a colour bar column only where it shows every map's scale
    floor = SMALL_VALUE_FLOOR if small_values and info.signed else 0.0
    plans = [(row, labels, _maps(row, labels, method, difference and info.name == CAM, depth)) for row, labels in plans]
    percentile = display_percentile(info, depth or "tokens")  # as the app's panels: pixel maps end at the 99th
    scales = [_scales(maps, info, shared_scale, positive_only, percentile) for _, _, maps in plans]
    captions = []  # per row block: per role: per cell: (lines, colour)
    for (row, labels, maps), (_, scale_of) in zip(plans, scales, strict=True):
        block = {}
        for role, result in row.results.items():
            cells = [(_wrap(f"{role}: {row.name}", CELL - 8), BLACK)]
            for label in labels:
                p = float(result.probabilities[label])
                missed = row.ground_truth is not None and class_names[label] in row.ground_truth \
                    and not at_or_above(p, threshold)
                heat = maps[(role, label)]
                evidence = _evidence_lines(heat, info, result.logit(label) if result.level_logits else None,
                                           result.offset(label, "combined", depth or "tokens") if info.name == CAM
                                           else None, _alpha(heat, scale_of(heat), opacity, floor, colour))
                cells.append((_wrap(f"{class_names[label]} {probability_text(p, threshold)}", CELL - 8) + evidence,
                              RED if missed else BLACK))
            block[role] = cells
        if any(key[0] == DIFFERENCE for key in maps):
            cells = [(_wrap(f"{DIFFERENCE}: {row.name}", CELL - 8), BLACK)]
            for label in labels:
                diff = maps.get((DIFFERENCE, label))
                lines = _wrap(f"{class_names[label]} dlogit {diff.delta_logit:+.2f}", CELL - 8) if diff is not None \
                    else _wrap(f"{class_names[label]}: no difference", CELL - 8)
                if diff is not None:
                    lines += _evidence_lines(diff.heat, info, diff.delta_logit, diff.delta_offset,
                                             _alpha(diff.heat, scale_of(diff.heat), opacity, floor, colour))
                    lines = [line.replace("logit", "dlogit").replace("offset", "doffset") if line.startswith("=")
                             else line for line in lines]
                cells.append((lines, BLACK))
            block[DIFFERENCE] = cells
        captions.append(block)
    caption_h = 6 + LINE * max(len(lines) for block in captions for cells in block.values() for lines, _ in cells)
    width = columns * CELL + (BAR if bar else 0)

    parts = [_header(columns, width, info.title + (f" at {depth_title(depth)}" if depth else ""), bar)]
    for (row, labels, maps), block, (shared, scale_of) in zip(plans, captions, scales, strict=True):
        tile, (y, x, h, w) = _letterbox(row.image)
        base = muted(tile) if colour == DIVERGING else tile
        lines = []
        for role, cells in block.items():
            line = np.full((CELL + caption_h, width, 3), PAPER, np.uint8)
            line[:CELL, :CELL] = tile
            for i, label in enumerate([None, *labels]):
                if label is not None:
                    heat = maps.get((role, label))
                    heat = heat.heat if role == DIFFERENCE and heat is not None else heat
                    cell = np.full((CELL, CELL, 3), BACKDROP, np.uint8)
                    if heat is not None:
                        cell[y: y + h, x: x + w] = overlay(base[y: y + h, x: x + w], heat, opacity, colour,
                                                           scale_of(heat), floor)
                    line[:CELL, i * CELL: (i + 1) * CELL] = cell
                text, color = cells[i]
                _text(line, text, i * CELL + 4, CELL + 2, color)
            lines.append(line)
        block_image = np.concatenate(lines, axis=0)
        if shared is not None and bar:
            block_image[:, columns * CELL:] = colour_bar(block_image.shape[0], shared, colour)
        cv2.line(block_image, (0, block_image.shape[0] - 1), (width, block_image.shape[0] - 1), BACKDROP, 1)
        parts.append(block_image)
    truth = any(row.ground_truth for row in rows)
    parts.append(_legend(width, info, colour, threshold, shared_scale, truth, difference and info.name == CAM,
                         small_values and info.signed))
    if caption:
        lines = _wrap(caption, width - 12)
        strip = np.full((8 + LINE * len(lines), width, 3), PAPER, np.uint8)
        _text(strip, lines, 6, 2, GREY)
        parts.append(strip)
    return np.concatenate(parts, axis=0)


def _maps(row: FigureRow, labels: list[int], method: str, difference: bool, depth: str | None) -> dict:
    """(role, label) → the map drawn; with ``difference``, (DIFFERENCE, label) → its DifferenceMap."""
    maps = {(role, label): _map_of(row, role, label, method) for role in row.results for label in labels}
    if difference:
        maps |= {(DIFFERENCE, label): _difference(row, label, depth) for label in labels}
    return maps


def _scales(maps: dict, info, shared_scale: bool, positive_only: bool, percentile: float = 100.0):
    """(the image's shared scale or None, map → the scale it is drawn on); a scale ends at
    ``percentile`` of |value| (see :func:`catviz.methods.display_percentile`)."""
    present = [m.heat if key[0] == DIFFERENCE else m for key, m in maps.items() if m is not None]
    shared = (symmetric_scale(present, positive_only, percentile) if info.signed else Scale(0.0, 1.0)) \
        if present else None
    if shared_scale or not info.signed:
        return shared, lambda heat: shared
    return shared, lambda heat: symmetric_scale([heat], positive_only, percentile)


def _alpha(heat: np.ndarray | None, scale: Scale | None, opacity: float, floor: float, colormap: str):
    """The opacity each value is drawn with (None where every cell has the same: sequential colours)."""
    if heat is None or scale is None or colormap != DIVERGING or not scale.signed:
        return None
    return drawn_strength(heat, scale, opacity, floor)


def caption_text(models: dict[str, tuple[str, str]], label: str | None, threshold: float, method: str,
                 level: str, image: str | None = None) -> str:
    """What a saved view or figure shows, in one line: the image, each model (its name and
    file), the label, the threshold, the map method and the level (the depth it explains)."""
    parts = [image] if image else []
    parts += [f"{role}: {name} ({file})" for role, (name, file) in models.items()]
    parts += [f"label {label}"] if label else []
    parts += [f"threshold {threshold:.2f}", method, f"level {level}"]
    return " · ".join(parts)


def header_text(columns: int, title: str, bar: bool = True) -> list[str]:
    """The header's texts: "image", then one over all map columns (a numbered column such as
    "label 1" would read as the label named 1), then the colour bar's when there is one."""
    forms = (f"{title} per label, named under each map", f"{title} per label", title)
    maps = next((f for f in forms if len(_wrap(f, (columns - 1) * CELL - 8)) == 1), title)  # the longest that fits
    return ["image", maps, "scale"] if bar else ["image", maps]


def _header(columns: int, width: int, title: str, bar: bool) -> np.ndarray:
    strip = np.full((HEADER, width, 3), PAPER, np.uint8)
    image, maps, *scale = header_text(columns, title, bar)
    _text(strip, [image], 4, 4, GREY)
    _text(strip, _wrap(maps, (columns - 1) * CELL - 8)[:1], CELL + 4, 4, GREY)
    _text(strip, scale, columns * CELL + 4, 4, GREY)
    return strip


def _legend(width: int, info, colormap: str, threshold: float, shared_scale: bool, truth: bool,
            difference: bool = False, small_values: bool = False) -> np.ndarray:
    """What the colours and captions mean; the red caption only where some image has its ground truth."""
    if info.signed and colormap == DIVERGING:
        colours = (f"{info.title}, in {info.units}: red raises the label's logit, blue lowers it, no colour = 0 "
                   "(image shown in grey)")
    else:
        colours = f"{info.title}, {info.units}, colour map {colormap}"
    if info.signed:
        colours += (f"; one scale per image, shared by baseline{', CAT and their difference' if difference else ' and CAT'}"
                    " (bar at the right)" if shared_scale
                    else "; each map on its own scale, so colours do not compare between maps (no colour bar)")
    entries = [
        (_wrap(f"Red caption: a ground-truth label the model misses (probability < {threshold:g}).", width - 12), RED),
    ] if truth else []
    rows = "Rows: baseline, CAT" + (" and CAT - baseline (on the input pixels; dlogit = its mean + doffset)"
                                    if difference else " per image")
    faint = (f"the share of |mass| drawn faint (under {FAINT_STRENGTH:.0%} of full strength: opacity and colour "
             "both fade with |value|)")
    evidence = {
        PER_CELL: "; under each map its evidence for and against the label, their sum (net) = logit - offset "
                  f"(logit units), and {faint}",
        SUMMED: f"; under each map its attributions' sums for and against the label (they add up to "
                f"logit - logit(black image)), and {faint}",
    }.get(totals_convention(info), "")
    if small_values:
        evidence += f"; small values drawn as {SMALL_VALUE_FLOOR:.0%} of the scale, so they show"
    entries += [
        (_wrap(f"{rows}; captions: label and probability{evidence}. " + colours + ".", width - 12), BLACK),
    ]
    height = 8 + LINE * sum(len(lines) for lines, _ in entries)
    strip = np.full((height, width, 3), PAPER, np.uint8)
    y = 2
    for lines, color in entries:
        _text(strip, lines, 6, y, color)
        y += LINE * len(lines)
    return strip


def save_figure(path: str | Path, figure: np.ndarray) -> None:
    """Encode by the file's suffix (PNG or JPEG) and write atomically: a reader never sees half a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ENCODINGS:
        raise ValueError(f"{path}: unknown figure format {path.suffix!r}; use one of {', '.join(ENCODINGS)}")
    ok, data = cv2.imencode(suffix, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), ENCODINGS[suffix])
    if not ok:
        raise OSError(f"{path}: could not encode the figure as {suffix}")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data.tobytes()))


