"""A small COCO-format dataset with hand-placed boxes, for the dataset comparison tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tests.fixtures import write_image

from .conftest import CLASSES, make_checkpoint

#: (width, height) of each val image and its objects: (label, x, y, w, h, crowd).
VAL = [
    ((64, 48), [("cat", 0, 0, 8, 6, 0), ("dog", 4, 4, 40, 30, 0)]),
    ((48, 64), [("cat", 2, 2, 30, 40, 0), ("cat", 0, 0, 4, 4, 0)]),
    ((64, 64), [("car", 0, 0, 60, 60, 1), ("car", 1, 1, 4, 4, 0), ("bus", 10, 10, 20, 20, 0)]),
    ((64, 64), [("tree", 0, 0, 64, 64, 0)]),
    ((32, 32), [("dog", 0, 0, 10, 10, 0), ("bus", 0, 0, 30, 30, 1)]),
    ((64, 48), [("cat", 5, 5, 20, 20, 0), ("tree", 0, 0, 10, 40, 0)]),
    ((64, 64), [("bus", 0, 0, 16, 16, 0)]),
]


def write_boxes_dataset(root: Path, val=VAL, classes=CLASSES, broken: tuple[int, ...] = ()) -> Path:
    """``annotations/{train,val}.json`` + ``images/{train,val}/``; ``broken``: val images written as junk."""
    categories = [{"id": 10 + i, "name": name} for i, name in enumerate(classes)]
    column = {name: 10 + i for i, name in enumerate(classes)}
    for split, entries in (("train", val[:2]), ("val", val)):
        images, annotations = [], []
        for i, ((width, height), objects) in enumerate(entries):
            path = root / "images" / split / f"{i:03d}.png"
            write_image(path, seed=i, size=max(width, height))
            cv2.imwrite(str(path), cv2.resize(cv2.imread(str(path)), (width, height)))
            if split == "val" and i in broken:
                path.write_bytes(b"not an image")
            images.append({"id": i, "file_name": path.name, "width": width, "height": height})
            for name, x, y, w, h, crowd in objects:
                annotations.append({"id": len(annotations), "image_id": i, "category_id": column[name],
                                    "bbox": [x, y, w, h], "iscrowd": crowd})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


@pytest.fixture(scope="session")
def small_checkpoints(tmp_path_factory):
    """The tiny baseline and CAT at a 32 px input: the dataset passes stay fast."""
    root = tmp_path_factory.mktemp("small-ckpt")
    return {
        "baseline": make_checkpoint(root / "baseline.safetensors", "baseline_tiny", input_size=32),
        "cat": make_checkpoint(root / "cat.safetensors", "cat_tiny", input_size=32),
    }
