"""A dataset's evaluation split with its ground truth and its object boxes (no torch, no Qt).

The split comes from ``train_cli``'s dataset registry (the same images, labels and order
that ``catviz-eval`` scores), boxes included: the annotation files are read once, there.
Boxes are used for one thing here: the size of the largest object of each positive
(image, label), see :mod:`catviz.dataset_report`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catviz.train_cli.data import BOX_COLUMNS as CORNER_COLUMNS
from catviz.train_cli.data import MultiLabelSplit, dataset_format

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
    fmt = dataset_format(name)
    root = fmt.root(data_root)
    val = fmt.read(root, "val", keep_unannotated, None)  # the train split is not read
    if val.unboxed:
        _logger.warning("%s: %d annotations without a usable box, e.g. %s (their objects count as 'no box')",
                        root, len(val.unboxed), ", ".join(val.unboxed[:5]))
    if limit:
        val = MultiLabelSplit(val.name, val.class_names, val.samples[:limit], val.unboxed)
    return DatasetSource(name, root, val, [sizes(s.boxes) for s in val.samples])


def sizes(boxes: np.ndarray) -> np.ndarray:
    """A sample's boxes (the reader's corners, see ``train_cli.data.BOX_COLUMNS``) as
    label, width, height, crowd (see :data:`BOX_COLUMNS`)."""
    col = {name: i for i, name in enumerate(CORNER_COLUMNS)}
    return np.stack([boxes[:, col["label"]], boxes[:, col["x1"]] - boxes[:, col["x0"]],
                     boxes[:, col["y1"]] - boxes[:, col["y0"]], boxes[:, col["crowd"]]], axis=1)
