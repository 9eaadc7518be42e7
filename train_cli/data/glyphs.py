"""The glyph set: a single-label classification task for pretraining the demo's trunk.

The paper fine-tunes an ImageNet-pretrained backbone; the demo's stand-in for ImageNet is
this set, generated on the fly and offline: one letter or symbol per image, typeset in
one of OpenCV's eight Hershey fonts (optionally italic), with random size, weight, slant,
position and colour, on the demo set's kind of background (smooth colour field, clutter
strokes). **No digit is a class**, and neither are the letters that look like one (O, I,
l, Z, S, B, G, g, q ...), so the demo set's digits stay new categories for the trunk, as
COCO's categories are for an ImageNet trunk. Sample ``i`` of a split is a pure function of
``(seed, split, i)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from .demo import background, paste, typeset_mask

# Letters that do not resemble a digit, and symbols that fill a glyph box.
GLYPHS = tuple("ACEFHJKLMNPRTUVWXY" "acefhkmnprtuvwxy" "#$%&()*+/<=>?@[]{}~!^")
DIGIT_LOOKALIKES = frozenset("OoDQIilj|Zz2SsB8Gb6gq9")  # 0, 1, 2, 5, 8, 6, 9
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
FONTS = HERSHEY_FONTS + tuple(f | cv2.FONT_ITALIC for f in HERSHEY_FONTS)
IMAGE_SIZE = 64
MIN_SIZE, MAX_SIZE = 20, 60
SPLIT_OFFSETS = {"train": 0, "val": 1}


def glyph_sample(index: int, split: str = "train", seed: int = 0, size: int = IMAGE_SIZE) -> tuple[np.ndarray, int]:
    """(uint8 RGB image of ``size``², class index into :data:`GLYPHS`) for sample ``index``."""
    rng = np.random.default_rng([seed, SPLIT_OFFSETS[split], index])
    label = int(rng.integers(len(GLYPHS)))
    image = background(rng, size)
    side = int(np.exp(rng.uniform(np.log(MIN_SIZE), np.log(MAX_SIZE))) * size / IMAGE_SIZE)
    x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
    paste(image, typeset_mask(GLYPHS[label], side, rng, FONTS), (x, y, side), rng)
    return np.clip(image, 0, 255).astype(np.uint8), label


class GlyphDataset:
    """``length`` samples of a split as normalised (3, size, size) tensors and labels."""

    def __init__(self, length: int, split: str, seed: int, mean, std, size: int = IMAGE_SIZE):
        self.length, self.split, self.seed, self.size = length, split, seed, size
        self.mean = np.asarray(mean, np.float32) * 255
        self.std = np.asarray(std, np.float32) * 255

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        import torch

        image, label = glyph_sample(index, self.split, self.seed, self.size)
        tensor = torch.from_numpy(((image - self.mean) / self.std).transpose(2, 0, 1).copy())
        return tensor, label
