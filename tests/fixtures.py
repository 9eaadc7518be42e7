"""Small datasets written by the tests themselves (COCO-format, VOC2007)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, seed: int, size: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def write_coco_format(root: Path, images_per_split: int = 6) -> Path:
    """Categories with non-contiguous ids (3, 7, 42), an unannotated image, a crowd box."""
    categories = [{"id": 42, "name": "zebra"}, {"id": 3, "name": "car"}, {"id": 7, "name": "dog"}]
    for split in ("train", "val"):
        images, annotations = [], []
        for i in range(images_per_split):
            write_image(root / "images" / split / f"{i}.png", seed=i)
            images.append({"id": 100 + i, "file_name": f"{i}.png", "width": 64, "height": 64})
            if i == 0:
                continue  # no annotation
            cat = categories[i % 3]["id"]
            annotations.append({"id": len(annotations), "image_id": 100 + i, "category_id": cat,
                                "bbox": [0, 0, 10, 10], "iscrowd": int(i == 1)})
            if i % 2:
                annotations.append({"id": len(annotations), "image_id": 100 + i, "category_id": 42,
                                    "bbox": [5, 5, 10, 10], "iscrowd": 0})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


VOC_OBJECT = "<object><name>{name}</name><difficult>{difficult}</difficult></object>"


def write_voc(root: Path) -> Path:
    """VOC2007 layout; image 000002 has only a difficult 'cat'."""
    voc = root / "VOCdevkit" / "VOC2007"
    objects = {
        "000001": [("dog", 0), ("person", 0)],
        "000002": [("cat", 1)],
        "000003": [("cat", 1), ("cat", 0), ("car", 0)],
    }
    for image_id, objs in objects.items():
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", seed=int(image_id))
        xml = "<annotation>" + "".join(VOC_OBJECT.format(name=n, difficult=d) for n, d in objs) + "</annotation>"
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{image_id}.xml").write_text(xml)
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n000002\n")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000003\n")
    return root
