"""The paper's Fig. 3 as an image: per image, baseline and CAT CAMs of each label.

Each image gets two rows (baseline, CAT); the first column is the image, then one
column per label (the ground truth when known, else labels either model predicts),
each the CAM overlaid with "label probability" underneath. A ground-truth label a
model misses (probability below the threshold) is captioned in red, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.checkpoint import atomic_write

from .inference import InferenceResult
from .render import cam_for_label, overlay

CELL = 192
CAPTION = 22
RED, BLACK, GREY = (220, 30, 30), (20, 20, 20), (120, 120, 120)


@dataclass
class FigureRow:
    name: str
    image: np.ndarray
    results: dict[str, InferenceResult]  # role → result
    ground_truth: set[str] | None


def labels_to_show(row: FigureRow, class_names: list[str], threshold: float, most: int = 4) -> list[int]:
    if row.ground_truth:
        return [class_names.index(n) for n in sorted(row.ground_truth) if n in class_names][:most]
    scores = np.max([r.probabilities for r in row.results.values()], axis=0)
    order = [int(i) for i in np.argsort(-scores) if scores[i] >= threshold]
    return (order or [int(np.argmax(scores))])[:most]


def _cell(image: np.ndarray, caption: str, color) -> np.ndarray:
    tile = np.full((CELL + CAPTION, CELL, 3), 255, np.uint8)
    tile[:CELL] = cv2.resize(image, (CELL, CELL), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, caption[:24], (4, CELL + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return tile


def render_figure(rows: list[FigureRow], class_names: list[str], threshold: float = 0.5,
                  opacity: float = 0.5) -> np.ndarray:
    """An RGB uint8 figure; width fits the image with the most labels."""
    blocks = []
    for row in rows:
        labels = labels_to_show(row, class_names, threshold)
        for role, result in row.results.items():
            cells = [_cell(row.image, f"{role}: {row.name}", BLACK)]
            for label in labels:
                p = float(result.probabilities[label])
                missed = row.ground_truth is not None and class_names[label] in row.ground_truth and p < threshold
                heat = overlay(row.image, cam_for_label(result, label), opacity)
                cells.append(_cell(heat, f"{class_names[label]} {p:.2f}", RED if missed else BLACK))
            blocks.append(cells)
    width = max(len(cells) for cells in blocks) * CELL
    lines = []
    for cells in blocks:
        line = np.full((CELL + CAPTION, width, 3), 255, np.uint8)
        line[:, : len(cells) * CELL] = np.concatenate(cells, axis=1)
        lines.append(line)
    return np.concatenate(lines, axis=0)


def save_png(path, figure: np.ndarray) -> None:
    """Encode and write atomically: a reader never sees half a PNG."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: could not encode PNG")
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data.tobytes()))
