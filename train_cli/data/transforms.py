"""ML-GCN's multi-scale crop, the training crop of the paper's recipe.

CAT trains with ML-GCN's code, whose training transform is
``MultiScaleCrop(448, scales=(1.0, 0.875, 0.75, 0.66, 0.5), max_distort=2)`` (defaults
``fix_crop=True, more_fix_crop=True``), then a horizontal flip (ML-GCN ``engine.py`` and
``util.py``). On the *original* image: the crop side is a scale times the shorter image
side, drawn independently for width and height as long as their two scales are at most
``max_distort`` positions apart in the list (a side within 2 px of the output size
snaps to it); the crop's top-left corner is one of 13 fixed positions on a 4x4 grid of
the free space (corners, centre, edge middles, quarter points); the crop is resized to
``size`` x ``size`` (bilinear). Each choice is uniform over its list, as
``random.choice`` is in ML-GCN; the draws here come from the dataset's per-sample
generator, so crops stay reproducible across workers, ranks and resumed runs.
"""

from __future__ import annotations

import cv2
import numpy as np

ML_GCN_SCALES = (1.0, 0.875, 0.75, 0.66, 0.5)
ML_GCN_MAX_DISTORT = 2


def crop_sizes(image_w: int, image_h: int, size: int, scales=ML_GCN_SCALES,
               max_distort: int = ML_GCN_MAX_DISTORT) -> list[tuple[int, int]]:
    """The (width, height) pairs the crop is drawn from (ML-GCN ``_sample_crop_size``)."""
    sides = [int(min(image_w, image_h) * s) for s in scales]
    sides = [size if abs(side - size) < 3 else side for side in sides]
    return [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]


def fixed_offsets(image_w: int, image_h: int, crop_w: int, crop_h: int, more_fix_crop: bool = True) -> list[tuple[int, int]]:
    """The (x, y) top-left corners the crop is drawn from (ML-GCN ``fill_fix_offset``)."""
    w, h = (image_w - crop_w) // 4, (image_h - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]  # corners, centre
    if more_fix_crop:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]  # edge middles, quarters
    return [(i * w, j * h) for i, j in grid]


def sample_crop(image_w: int, image_h: int, size: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(x, y, width, height) of one multi-scale crop."""
    pairs = crop_sizes(image_w, image_h, size)
    crop_w, crop_h = pairs[rng.integers(len(pairs))]
    offsets = fixed_offsets(image_w, image_h, crop_w, crop_h)
    x, y = offsets[rng.integers(len(offsets))]
    return x, y, crop_w, crop_h


def multi_scale_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """An (H, W, C) image's multi-scale crop, resized to (size, size, C)."""
    x, y, w, h = sample_crop(image.shape[1], image.shape[0], size, rng)
    return cv2.resize(np.ascontiguousarray(image[y : y + h, x : x + w]), (size, size), interpolation=cv2.INTER_LINEAR)
