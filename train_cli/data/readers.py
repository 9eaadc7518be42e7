"""The dataset registry and its readers: every dataset becomes a list of (image path, label
vector, object boxes), read in one pass over its annotation files.

:data:`DATASETS` maps a name (``--dataset``) to its :class:`DatasetFormat`: a description
for ``--help``, its reader, and how its folder is found. Every command (training,
``catviz-eval``, the app, the dataset pass and ``--faithfulness``) reads it; adding a format
is one :func:`register_dataset` call with a reader, and its tests.

All files are checked up front, before any training starts: a missing root, a wrong
layout, malformed JSON/XML, a malformed entry (a field of the wrong type, a box with a
negative size), a duplicate id, an annotation pointing at a missing image or an unknown
category, an empty split all raise :class:`DatasetError` naming the path and the entry
(``images[4]``, ``annotations[1]``, ``categories[2]``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_logger = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip


class DatasetError(ValueError):
    """A dataset problem, found before training; the message names the path."""


#: Columns of a sample's box array: label index, the box's corners in original image pixels
#: (x0, y0) top left, (x1, y1) bottom right, and 1 for a COCO crowd region.
BOX_COLUMNS = ("label", "x0", "y0", "x1", "y1", "crowd")


def boxes_array(rows: list) -> np.ndarray:
    """(K, 6) float64 box rows (see :data:`BOX_COLUMNS`); K may be 0."""
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(BOX_COLUMNS))


@dataclass(frozen=True)
class Sample:
    path: Path
    target: np.ndarray  # (C,) int8: 1 present, 0 absent, -1 difficult (ignored by AP)
    #: (K, 6) the objects' boxes, see BOX_COLUMNS (VOC: its non-difficult objects)
    boxes: np.ndarray = dataclasses.field(default_factory=lambda: boxes_array([]))


@dataclass(frozen=True)
class MultiLabelSplit:
    name: str
    class_names: list[str]
    samples: list[Sample]
    #: annotations whose object has no usable box (e.g. ``("annotations[1]",)``): their label
    #: counts, their object is missing from ``Sample.boxes``
    unboxed: tuple[str, ...] = ()

    def targets(self) -> np.ndarray:
        return np.stack([s.target for s in self.samples])


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} not found")
    return path


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path


def _check_split(split: MultiLabelSplit, source: Path) -> MultiLabelSplit:
    if not split.samples:
        raise DatasetError(f"{source}: split {split.name!r} has no images")
    missing = [s.path for s in split.samples if not s.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"{source}: annotation points at a missing image {missing[0]}{more}")
    return split


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from err
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror or err})") from err


def _is_id(value) -> bool:
    """COCO's ids are integers; some exporters write strings, kept as they were (a file may mix them)."""
    return isinstance(value, int | str) and not isinstance(value, bool)


def _id_order(value) -> tuple[bool, int | str]:
    """Sort key for ids: integers in order, then strings."""
    return isinstance(value, str), value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_box(value) -> bool:
    """COCO's ``[x, y, width, height]``: four finite numbers, width and height >= 0 (0: a degenerate box, kept)."""
    return (isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)
            and value[2] >= 0 and value[3] >= 0)


def _is_name(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_file_name(value) -> bool:
    """A relative path that stays inside the image folder."""
    return _is_name(value) and not Path(value).is_absolute() and ".." not in Path(value).parts


_ID = (_is_id, "an integer or string id")
_NAME = (_is_name, "a non-empty string")
_FILE_NAME = (_is_file_name, "a relative path inside the image folder")
_BOX = (_is_box, "[x, y, width, height], 4 finite numbers with width and height >= 0")


def _entries(path: Path, data: dict, key: str, required: dict, optional: dict | None = None) -> list[dict]:
    """``data[key]``'s entries, each an object whose ``required`` fields (and ``optional`` ones,
    where present) pass their check; unique ids for images and categories."""
    entries = data[key]
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: {key}[{i}] is a {type(entry).__name__}, not an object")
        for field in required:
            if field not in entry:
                raise DatasetError(f"{path}: {key}[{i}] has no {field!r}")
        for field, (ok, expected) in {**required, **(optional or {})}.items():
            if field in entry and not ok(entry[field]):
                raise DatasetError(f"{path}: {key}[{i}] {field!r} must be {expected}, got {entry[field]!r}")
    if key in _SINGULAR:
        _refuse_duplicates(path, f"{_SINGULAR[key]} id", [(f"{key}[{i}]", e["id"]) for i, e in enumerate(entries)])
    return entries


_SINGULAR = {"categories": "category", "images": "image"}


def _refuse_duplicates(path: Path, what: str, values: list[tuple[str, object]]) -> None:
    """``values``: (where, value) pairs, e.g. ``("images[4]", 3)``; the second of a pair is named."""
    seen: dict = {}
    for where, value in values:
        if value in seen:
            raise DatasetError(f"{path}: {where}: duplicate {what} {value!r} (also {seen[value]})")
        seen[value] = where


def read_coco_json(
    json_path: Path,
    image_dir: Path,
    split: str,
    keep_unannotated: bool = False,
    class_names: list[str] | None = None,
) -> MultiLabelSplit:
    """A COCO-style instances file → one label vector per image.

    Labels are the categories sorted by id, mapped to 0..C-1 (for COCO 2014 this is the
    order ML-GCN uses). Crowd annotations count as labels, as in ML-GCN. Images with no
    annotation are dropped (ML-GCN) unless ``keep_unannotated`` keeps them all-negative.
    """
    _require_file(json_path, "annotation file")
    _require_dir(image_dir, "image folder")
    try:
        data = json.loads(_read_text(json_path))
    except json.JSONDecodeError as err:
        raise DatasetError(f"{json_path}: malformed JSON at line {err.lineno}: {err.msg}") from err
    except RecursionError as err:
        raise DatasetError(f"{json_path}: JSON nested too deeply") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{json_path}: not a COCO instances file (a JSON {type(data).__name__}, not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{json_path}: not a COCO instances file (no {key!r} list)")
    category_entries = _entries(json_path, data, "categories", {"id": _ID, "name": _NAME})
    _refuse_duplicates(json_path, "category name",
                       [(f"categories[{i}]", c["name"]) for i, c in enumerate(category_entries)])
    categories = sorted(category_entries, key=lambda c: _id_order(c["id"]))
    names = [c["name"] for c in categories]
    if class_names is not None and names != class_names:
        raise DatasetError(f"{json_path}: categories {names} differ from the training set's {class_names}")
    column = {c["id"]: i for i, c in enumerate(categories)}
    image_entries = _entries(json_path, data, "images", {"id": _ID, "file_name": _FILE_NAME})
    images = {img["id"]: img["file_name"] for img in image_entries}
    labels: dict[int, set[int]] = {}
    boxes: dict[int, list[tuple[float, ...]]] = {}
    unboxed = []
    annotations = _entries(json_path, data, "annotations", {"image_id": _ID, "category_id": _ID},
                           optional={"id": _ID, "bbox": _BOX})
    for i, ann in enumerate(annotations):
        if ann["image_id"] not in images:
            raise DatasetError(f"{json_path}: annotations[{i}]: unknown image_id {ann['image_id']} "
                               "(no images entry has it)")
        if ann["category_id"] not in column:
            raise DatasetError(f"{json_path}: annotations[{i}]: unknown category_id {ann['category_id']} "
                               "(no categories entry has it)")
        labels.setdefault(ann["image_id"], set()).add(column[ann["category_id"]])
        if "bbox" not in ann:
            unboxed.append(f"annotations[{i}]")
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        boxes.setdefault(ann["image_id"], []).append(
            (column[ann["category_id"]], x, y, x + w, y + h, float(bool(ann.get("iscrowd")))))
    samples = []
    for image_id, file_name in sorted(images.items(), key=lambda item: _id_order(item[0])):
        if image_id not in labels and not keep_unannotated:
            continue
        target = np.zeros(len(names), np.int8)
        target[list(labels.get(image_id, ()))] = 1
        samples.append(Sample(image_dir / file_name, target, boxes_array(boxes.get(image_id, []))))
    _logger.info(
        "%s: %d of %d images (%s)", json_path, len(samples), len(images),
        "all kept" if keep_unannotated else "unannotated dropped, ML-GCN convention",
    )
    if images and not samples:
        raise DatasetError(
            f"{json_path}: split {split!r}: 0 of {len(images)} images annotated (unannotated images are dropped, "
            "as ML-GCN; --keep-unannotated keeps them as all-negative)"
        )
    return _check_split(MultiLabelSplit(split, names, samples, tuple(unboxed)), json_path)


def _voc_box(obj: ET.Element) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of a VOC object's pixel-inclusive ``bndbox``, or None when it has no usable one."""
    box = obj.find("bndbox")
    try:
        x_min, y_min, x_max, y_max = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (AttributeError, TypeError, ValueError):
        return None
    corners = (x_min - 1, y_min - 1, x_max, y_max)
    if not all(math.isfinite(v) for v in corners) or x_max < x_min - 1 or y_max < y_min - 1:
        return None
    return corners


def read_voc(root: Path, split: str) -> MultiLabelSplit:
    """VOC2007 (``VOCdevkit/VOC2007`` or that folder itself) → label vectors.

    A class whose only objects in an image are flagged difficult is -1 for that image.
    Boxes: the non-difficult objects' (pixel-inclusive ``xmin..xmax`` is ``x0 = xmin - 1``,
    ``x1 = xmax``); an object without a usable box keeps its label and has no box.
    """
    voc = root / "VOCdevkit" / "VOC2007" if (root / "VOCdevkit").is_dir() else root
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        _require_dir(voc / sub, f"VOC2007 folder {sub!r} (expected VOCdevkit/VOC2007/{sub})")
    ids_file = _require_file(voc / "ImageSets" / "Main" / f"{split}.txt", f"VOC split list {split!r}")
    lines = [(f"line {n}", line.split()[0]) for n, line in enumerate(_read_text(ids_file).splitlines(), 1)
             if line.strip()]
    _refuse_duplicates(ids_file, "image id", lines)
    ids = [image_id for _, image_id in lines]
    column = {name: i for i, name in enumerate(VOC_CLASSES)}
    samples = []
    for image_id in ids:
        xml_path = _require_file(voc / "Annotations" / f"{image_id}.xml", "annotation")
        try:
            objects = ET.parse(xml_path).getroot().findall("object")
        except ET.ParseError as err:
            raise DatasetError(f"{xml_path}: malformed XML: {err}") from err
        target = np.zeros(len(VOC_CLASSES), np.int8)
        boxes = []
        for obj in objects:
            name = (obj.findtext("name") or "").strip()
            if name not in column:
                raise DatasetError(f"{xml_path}: unknown VOC class {name!r}")
            difficult = (obj.findtext("difficult") or "0").strip() == "1"
            if not difficult:
                target[column[name]] = 1
                if (box := _voc_box(obj)) is not None:
                    boxes.append((column[name], *box, 0.0))
            elif target[column[name]] == 0:
                target[column[name]] = -1
        samples.append(Sample(voc / "JPEGImages" / f"{image_id}.jpg", target, boxes_array(boxes)))
    return _check_split(MultiLabelSplit(split, list(VOC_CLASSES), samples), ids_file)


@dataclass(frozen=True)
class DatasetFormat:
    """One ``--dataset``: how its folder is found and its splits are read.

    ``read(root, split, keep_unannotated, class_names)`` reads ``"train"`` or ``"val"``
    under the resolved folder (``class_names``: the labels the split must have, or None).
    ``prepare_root(data_root or None)``, where given, makes the folder (the demo set is
    generated) so ``--data-root`` is optional; otherwise ``--data-root`` is required.
    """

    name: str
    description: str  # for --help: "coco (MS-COCO 2014)"
    read: Callable[[Path, str, bool, list[str] | None], MultiLabelSplit]
    prepare_root: Callable[[Path | None], Path] | None = None

    @property
    def needs_root(self) -> bool:
        return self.prepare_root is None

    def root(self, data_root: str | Path | None) -> Path:
        """The dataset folder (:class:`DatasetError` when it is missing or not given)."""
        if self.prepare_root is not None:
            return self.prepare_root(Path(data_root) if data_root else None)
        if data_root is None:
            raise DatasetError(f"--data-root is required for dataset {self.name!r}")
        return _require_dir(Path(data_root).expanduser(), "data root")


#: The datasets every command reads, by ``--dataset`` name (see :func:`load_split`).
DATASETS: dict[str, DatasetFormat] = {}


def register_dataset(fmt: DatasetFormat) -> DatasetFormat:
    """Offer ``fmt`` to every command's ``--dataset``."""
    if fmt.name in DATASETS:
        raise ValueError(f"dataset {fmt.name!r} is registered already")
    DATASETS[fmt.name] = fmt
    return fmt


def dataset_format(name: str) -> DatasetFormat:
    """The registered format ``name`` (:class:`DatasetError` naming those offered otherwise)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose {', '.join(DATASETS)}")
    return DATASETS[name]


def describe_datasets() -> str:
    """``--dataset``'s help: every name with its description."""
    return ", ".join(f"{f.name} ({f.description})" for f in DATASETS.values())


def _read_coco(root: Path, split: str, keep_unannotated: bool, class_names: list[str] | None) -> MultiLabelSplit:
    return read_coco_json(root / "annotations" / f"instances_{split}2014.json", root / f"{split}2014", split,
                          keep_unannotated, class_names)


def _read_voc(root: Path, split: str, keep_unannotated: bool, class_names: list[str] | None) -> MultiLabelSplit:
    return read_voc(root, "trainval" if split == "train" else "test")


def _read_coco_format(root: Path, split: str, keep_unannotated: bool,
                      class_names: list[str] | None) -> MultiLabelSplit:
    return read_coco_json(root / "annotations" / f"{split}.json", root / "images" / split, split, keep_unannotated,
                          class_names)


def _demo_root(data_root: Path | None) -> Path:
    from .demo import ensure_demo_set

    return ensure_demo_set(data_root)


register_dataset(DatasetFormat("coco", "MS-COCO 2014", _read_coco))
register_dataset(DatasetFormat("voc", "VOC2007", _read_voc))
register_dataset(DatasetFormat("coco-format", "annotations/{train,val}.json + images/{train,val}/", _read_coco_format))
register_dataset(DatasetFormat("demo", "generated offline", _read_coco_format, prepare_root=_demo_root))


def load_split(dataset: str, data_root: str | Path | None, split: str, keep_unannotated: bool = False,
               class_names: list[str] | None = None) -> MultiLabelSplit:
    """One split (``"train"`` or ``"val"``) of the registered ``dataset`` under ``data_root``, the other not read:

    - ``coco``: ``annotations/instances_{train,val}2014.json``, ``{train,val}2014/``.
    - ``voc``: VOC2007 trainval (train) / test (val).
    - ``coco-format``: ``annotations/{train,val}.json`` and ``images/{train,val}/``.
    - ``demo``: the generated demo set (built under ``data_root`` when missing).
    ``class_names``: the labels the split must have (coco-format: the other split's).
    """
    fmt = dataset_format(dataset)
    return fmt.read(fmt.root(data_root), split, keep_unannotated, class_names)


def load_splits(
    dataset: str, data_root: str | Path | None, keep_unannotated: bool = False
) -> tuple[MultiLabelSplit, MultiLabelSplit]:
    """(train, val) of ``dataset`` (see :func:`load_split`); val's labels are checked against train's."""
    train = load_split(dataset, data_root, "train", keep_unannotated)
    return train, load_split(dataset, data_root, "val", keep_unannotated, train.class_names)
