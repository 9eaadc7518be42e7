"""A dataset's evaluation split with its ground truth and its object boxes (no torch, no Qt).

The split comes from ``train_cli``'s readers (the same images, labels and order that
``catviz-eval`` scores); the boxes are read here from the same annotation files, because
the readers keep labels only. Boxes are used for one thing: the size of the largest
object of each positive (image, label), see :mod:`catviz.dataset_report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catviz.train_cli.data import DATASETS, DatasetError, MultiLabelSplit, load_split

_logger = logging.getLogger(__name__)

#: Columns of a sample's box array: label index, width, height (original image pixels),
#: and 1 for a COCO crowd region (used only when a label has no other instance).
BOX_COLUMNS = ("label", "width", "height", "crowd")


@dataclass
class DatasetSource:
    """An evaluation split: ``split.samples[i]`` has the boxes ``boxes[i]``."""

    name: str  # coco, voc, coco-format or demo
    root: Path  # the resolved dataset folder
    split: MultiLabelSplit
    boxes: list[np.ndarray]  # per sample: (K, 4) float64, see BOX_COLUMNS

    @property
    def class_names(self) -> list[str]:
        return self.split.class_names

    @property
    def key(self) -> str:
        """Identifies (dataset, root, split) in the results cache."""
        text = f"{self.name}\0{self.root.resolve()}\0{self.split.name}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def relative(self, path: Path) -> str:
        """An image's path relative to the dataset folder (its key in the cache)."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_posix()

    def describe(self) -> str:
        return f"{self.name} {self.split.name} ({len(self.split.samples)} images, {len(self.class_names)} labels) in {self.root}"


def open_dataset(name: str, data_root: str | Path | None, limit: int = 0,
                 keep_unannotated: bool = False) -> DatasetSource:
    """The validation split of ``name`` (as ``catviz-eval`` reads it) with its boxes.

    ``limit``: keep the first N images (0: all). Raises :class:`DatasetError` naming the
    path for a missing or malformed dataset.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose {', '.join(DATASETS)}")
    val = load_split(name, data_root, "val", keep_unannotated)  # the train split is not read
    if limit:
        val = MultiLabelSplit(val.name, val.class_names, val.samples[:limit])
    root = _resolved_root(name, data_root)
    if name == "voc":
        boxes = _voc_boxes(val)
    else:
        boxes = _coco_boxes(*_coco_files(name, root), val)
    return DatasetSource(name, root, val, boxes)


def _resolved_root(name: str, data_root: str | Path | None) -> Path:
    if name == "demo":
        from catviz.train_cli.data.demo import ensure_demo_set

        return ensure_demo_set(Path(data_root) if data_root else None)
    return Path(data_root).expanduser()


def _coco_files(name: str, root: Path) -> tuple[Path, Path]:
    """The val annotation file and image folder, as ``train_cli.data.load_split`` reads them."""
    if name == "coco":
        return root / "annotations" / "instances_val2014.json", root / "val2014"
    return root / "annotations" / "val.json", root / "images" / "val"


def _finite_size(values) -> tuple[float, float] | None:
    """(width, height) of a box, or None when it is not two finite non-negative numbers."""
    try:
        width, height = float(values[0]), float(values[1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(width) and math.isfinite(height)) or width < 0 or height < 0:
        return None
    return width, height


def _coco_boxes(json_path: Path, image_dir: Path, split: MultiLabelSplit) -> list[np.ndarray]:
    """Boxes of a COCO instances file, in the split's sample order (``bbox`` = x, y, w, h)."""
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        categories = sorted(data["categories"], key=lambda c: c["id"])
        column = {c["id"]: i for i, c in enumerate(categories)}
        file_names = {img["id"]: img["file_name"] for img in data["images"]}
        annotations = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{json_path}: cannot read boxes: {err}") from err
    rows: dict[Path, list[tuple[float, float, float, float]]] = {}
    unusable = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            continue
        size = _finite_size((ann.get("bbox") or [None] * 4)[2:4])
        name = file_names.get(ann.get("image_id"))
        label = column.get(ann.get("category_id"))
        if size is None or name is None or label is None:
            unusable.append(f"annotations[{i}]")
            continue
        rows.setdefault(image_dir / name, []).append((label, *size, float(bool(ann.get("iscrowd")))))
    if unusable:
        _logger.warning("%s: %d annotations without a usable box, e.g. %s (their objects count as 'no box')",
                        json_path, len(unusable), ", ".join(unusable[:5]))
    return [_as_array(rows.get(s.path, [])) for s in split.samples]


def _voc_boxes(split: MultiLabelSplit) -> list[np.ndarray]:
    """Non-difficult objects of each VOC image (``Annotations/<id>.xml``; pixel-inclusive boxes)."""
    column = {name: i for i, name in enumerate(split.class_names)}
    result = []
    for sample in split.samples:
        xml_path = sample.path.parent.parent / "Annotations" / f"{sample.path.stem}.xml"
        rows = []
        try:
            objects = ET.parse(xml_path).getroot().findall("object")
        except (OSError, ET.ParseError) as err:
            raise DatasetError(f"{xml_path}: cannot read boxes: {err}") from err
        for obj in objects:
            label = column.get((obj.findtext("name") or "").strip())
            if label is None or (obj.findtext("difficult") or "0").strip() == "1":
                continue
            box = obj.find("bndbox")
            try:
                x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                continue  # an object without a usable box: its label counts as 'no box'
            size = _finite_size((x2 - x1 + 1, y2 - y1 + 1))
            if size is not None:
                rows.append((label, *size, 0.0))
        result.append(_as_array(rows))
    return result


def _as_array(rows: list) -> np.ndarray:
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(BOX_COLUMNS))
