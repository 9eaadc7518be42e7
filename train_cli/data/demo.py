"""The offline demo set: multi-label scenes of digits at very different sizes.

Built deterministically, with no download. Each 128x128 scene holds 1-4 distinct
digits, each scaled to a size drawn log-uniformly from 16 to 80 pixels, in a colour
that contrasts with a smooth background crossed by clutter strokes; the labels are
the digits present ("0".."9"). A quarter of the digits are real handwriting:
scikit-learn's bundled UCI digits (1,797 8x8 scans by 43 writers; train scenes use
the first 1,400, val scenes the other 397, so validation handwriting is unseen). The
rest are typeset in OpenCV's Hershey fonts with random weight and a ±20° slant.
Small digits cover a fraction of one stride-32 cell, large ones most of the image:
the object-size spread that motivates CAT's cross-layer fusion. Written in COCO
format (with boxes), so the reader for any COCO-format set loads it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np

_logger = logging.getLogger(__name__)

VERSION = 3
IMAGE_SIZE = 128
SPLITS = {"train": (2400, 0), "val": (600, 1)}  # images, seed offset
CLASS_NAMES = [str(d) for d in range(10)]
MIN_SIZE, MAX_SIZE = 16, 80
TRAIN_SCANS = 1400
SCAN_SHARE = 0.25  # the other digits are typeset in OpenCV's Hershey fonts


def default_root() -> Path:
    return Path(os.environ.get("CATVIZ_CACHE", Path.home() / ".cache" / "catviz")) / f"demo-v{VERSION}"


def background(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A smooth random-colour float image crossed by 1-3 clutter strokes."""
    low = rng.uniform(40, 215, (4, 4, 3)).astype(np.float32)
    image = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    for _ in range(rng.integers(1, 4)):  # clutter strokes that are no digit
        p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
        color = rng.uniform(0, 255, 3).tolist()
        cv2.line(image, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color, int(rng.integers(1, 3)))
    return image


FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
         cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)


def typeset_mask(text: str, size: int, rng: np.random.Generator, fonts: tuple[int, ...] = FONTS) -> np.ndarray:
    """A (size, size) mask of ``text`` in a random font of ``fonts``, weight and slant."""
    font = fonts[rng.integers(len(fonts))]
    canvas = np.zeros((64, 64), np.uint8)
    thickness = int(rng.integers(2, 6))
    (w, h), _ = cv2.getTextSize(text, font, 1.0, thickness)
    scale = 44 / max(w, h)
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    cv2.putText(canvas, text, ((64 - w) // 2, (64 + h) // 2), font, scale, 255, thickness, cv2.LINE_AA)
    rotation = cv2.getRotationMatrix2D((32, 32), float(rng.uniform(-20, 20)), 1.0)
    canvas = cv2.warpAffine(canvas.astype(np.float32) / 255, rotation, (64, 64))
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


def paste(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int], rng: np.random.Generator) -> None:
    """Blend ``mask`` into ``image`` at ``box`` (x, y, size) in a colour contrasting with what is behind."""
    x, y, size = box
    mask = np.clip(mask, 0, 1)[..., None]
    behind = image[y : y + size, x : x + size]
    # Dark digits on light ground and light on dark, in a random hue: always legible.
    light = behind.mean() < 128
    color = rng.uniform(180, 255, 3) if light else rng.uniform(0, 70, 3)
    image[y : y + size, x : x + size] = behind * (1 - mask) + color * mask


def _scene(scans: np.ndarray, digits: np.ndarray, rng: np.random.Generator):
    image = background(rng)
    count = int(rng.integers(1, 5))
    classes = rng.choice(10, size=count, replace=False)
    boxes = []
    for cls in classes:
        size = int(np.exp(rng.uniform(np.log(MIN_SIZE), np.log(MAX_SIZE))))
        for _ in range(30):  # place with little overlap
            x, y = (int(v) for v in rng.integers(0, IMAGE_SIZE - size, 2))
            if all(_overlap((x, y, size), b) < 0.2 for b in boxes):
                break
        boxes.append((x, y, size))
        if rng.random() < SCAN_SHARE:  # a real handwritten scan
            scan = scans[rng.choice(np.flatnonzero(digits == cls))].astype(np.float32) / 16.0
            mask = cv2.resize(scan, (size, size), interpolation=cv2.INTER_CUBIC)
        else:
            mask = typeset_mask(str(cls), size, rng)
        paste(image, mask, boxes[-1], rng)
    return np.clip(image, 0, 255).astype(np.uint8), list(zip(classes.tolist(), boxes, strict=True))


def _overlap(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1]))
    return ix * iy / min(a[2] ** 2, b[2] ** 2)


def build_demo_set(root: Path, seed: int = 0) -> Path:
    """Write the demo set under ``root`` (deterministic for a seed); return ``root``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    scan_ranges = {"train": slice(0, TRAIN_SCANS), "val": slice(TRAIN_SCANS, None)}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)]
    for split, (count, offset) in SPLITS.items():
        rng = np.random.default_rng([seed, offset])
        scans, labels = digits.images[scan_ranges[split]], digits.target[scan_ranges[split]]
        image_dir = root / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            image, objects = _scene(scans, labels, rng)
            file_name = f"{index:05d}.png"
            cv2.imwrite(str(image_dir / file_name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            images.append({"id": index, "file_name": file_name, "width": IMAGE_SIZE, "height": IMAGE_SIZE})
            for cls, (x, y, size) in objects:
                annotations.append({
                    "id": len(annotations), "image_id": index, "category_id": cls + 1,
                    "bbox": [x, y, size, size], "area": size * size, "iscrowd": 0,
                })  # fmt: skip
        with open(root / "annotations" / f"{split}.json", "w") as f:
            json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    (root / "VERSION").write_text(f"{VERSION} seed={seed}\n")
    return root


def ensure_demo_set(root: Path | None = None, seed: int = 0) -> Path:
    """The demo set's folder, generated on first use (a few seconds)."""
    root = root or default_root()
    if (root / "VERSION").is_file() and (root / "VERSION").read_text().strip() == f"{VERSION} seed={seed}":
        return root
    _logger.info("generating the demo set under %s", root)
    return build_demo_set(root, seed)
