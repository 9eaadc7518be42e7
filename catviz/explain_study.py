"""Complete CAMs over a split, reduced per (image, true label) and level (worker side: torch).

For every scored image and every label present in it, each level of each model gives
(from :func:`catviz.models.cam.class_activation_maps`, one forward per batch):

- ``logit``: the level's logit, and ``share[source]``: its split by source layer and the
  offset (the sources sum to the logit);
- ``positive`` / ``negative``: the level map's positive and negative parts, as means over
  its grid (logit units: ``positive + negative + offset = logit``);
- at **token depth** (the level's own grid; each cell covers a block of the input):
  ``in_box``: the share of the positive evidence inside the label's boxes, each cell
  weighted by the fraction of its area the boxes cover (NaN for a map with no positive
  cell), against ``in_box_chance``: the boxes' share of the image (a uniform map's
  value); ``pointing``: 1 when the map's largest cell touches a box of the label (0
  otherwise), against ``pointing_chance``: the share of the grid's cells that touch one.

Boxes: the label's non-crowd boxes (its crowd regions only when it has nothing else),
scaled as the test transform scales the image (to the input size, both sides). Pairs
without a box get NaN for the box measures. Aggregation and intervals:
:func:`catviz.study.aggregate_explanations`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import cv2
import numpy as np
import torch

from catviz.models.cam import class_activation_maps
from catviz.models.faithfulness import boxes_mask
from catviz.train_cli.data import BOX_COLUMNS

from .dataset_results import Model, make_loader
from .dataset_source import DatasetSource
from .study import ExplanationPairs

_COL = {name: k for k, name in enumerate(BOX_COLUMNS)}


def label_boxes(boxes: np.ndarray, label: int, size: tuple[int, int], side: int) -> np.ndarray:
    """(K, 4) x0, y0, x1, y1 of ``label``'s boxes in the ``side`` x ``side`` input; ``size``:
    the file's (height, width), the frame the boxes are given in."""
    rows = boxes[boxes[:, _COL["label"]] == label]
    solid = rows[rows[:, _COL["crowd"]] == 0]
    rows = solid if len(solid) else rows
    h, w = size
    if not len(rows) or h <= 0 or w <= 0:
        return np.zeros((0, 4))
    scale = np.array([side / w, side / h, side / w, side / h])
    return rows[:, [_COL["x0"], _COL["y0"], _COL["x1"], _COL["y1"]]] * scale


def cell_cover(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(h, w) fraction of each grid cell's area that ``mask`` (the input's pixels) covers."""
    return cv2.resize(mask.astype(np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_AREA).astype(np.float64)


def box_measures(saliency: np.ndarray, cover: np.ndarray) -> tuple[float, float, float]:
    """(in_box share of positive evidence, pointing hit, pointing chance) of one level map."""
    positive = np.maximum(saliency, 0)
    total = positive.sum()
    in_box = float((positive * cover).sum() / total) if total > 0 else float("nan")
    top = np.unravel_index(np.argmax(saliency), saliency.shape)  # first in row-major order on ties
    return in_box, float(cover[top] > 0), float((cover > 0).mean())


def explain_split(source: DatasetSource, loaded: Model, scored: np.ndarray, sizes: np.ndarray,
                  batch_size: int = 32, workers: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> ExplanationPairs:
    """One model's :class:`ExplanationPairs` over the ``scored`` images (indices into the split)."""
    meta, model = loaded.meta, loaded.model
    side = meta.input_size
    levels = [lvl.name for lvl in model.spec.levels]
    targets = source.split.targets()
    rows: list[tuple[int, int]] = []
    values: dict[str, list[float]] = {}

    def put(key: str, value: float) -> None:
        values.setdefault(key, []).append(value)

    loader = make_loader(source, [int(i) for i in scored], meta, batch_size, workers)
    done = 0
    for batch, indices, _, failures in loader:
        done += len(indices) + len(failures)
        if batch is None:
            continue
        with torch.no_grad():
            cams = class_activation_maps(model, batch.to(loaded.device))
        for k, index in enumerate(indices):
            for label in np.flatnonzero(targets[index] == 1):
                rows.append((index, int(label)))
                boxes = label_boxes(source.split.samples[index].boxes, int(label), tuple(sizes[index]), side)
                mask = boxes_mask((side, side), boxes) if len(boxes) else None
                put("chance", float(mask.mean()) if mask is not None else float("nan"))
                for lv in levels:
                    saliency = cams.maps[lv][k, label].astype(np.float64)
                    put(f"{lv}/logit", float(cams.level_logits[lv][k, label]))
                    for src, share in cams.layer_share[lv].items():
                        put(f"{lv}/share/{src}", float(share[k, label]))
                    put(f"{lv}/positive", float(np.maximum(saliency, 0).mean()))
                    put(f"{lv}/negative", float(np.minimum(saliency, 0).mean()))
                    measures = box_measures(saliency, cell_cover(mask, saliency.shape)) if mask is not None \
                        else (float("nan"),) * 3
                    for name, value in zip(("in_box", "pointing", "pointing_chance"), measures, strict=True):
                        put(f"{lv}/{name}", value)
        if progress is not None:
            progress(done, len(scored))
    pairs = np.array(rows, np.int64).reshape(-1, 2)
    array = {key: np.array(v, np.float64) for key, v in values.items()}
    empty = np.zeros(0)
    return ExplanationPairs(
        image=pairs[:, 0], label=pairs[:, 1], levels=levels,
        sources={lv: [*(s for s in model.spec.level(lv).sources), "offset"] for lv in levels},
        values=array, chance=array.get("chance", empty))


def explain_models(source: DatasetSource, models: Mapping[str, Model], scored: np.ndarray, sizes: np.ndarray,
                   batch_size: int = 32, workers: int = 0) -> dict[str, ExplanationPairs]:
    return {key: explain_split(source, loaded, scored, sizes, batch_size, workers) for key, loaded in models.items()}
