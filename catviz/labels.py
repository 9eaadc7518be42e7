"""Ground-truth labels for your own images, matched by file name (no Qt, no torch).

Two formats: a CSV with one image a row, ``path,label;label`` (a header row ``path,labels``
is skipped; the path may be a bare file name), or a JSON file: COCO-style (``images`` with
``file_name``, ``annotations`` with ``image_id`` and ``category_id``, ``categories`` with
``id`` and ``name``) or a plain ``{"file name": ["label", ...]}`` mapping (as the bundled
samples' ``ground_truth.json``). An image with no row has no ground truth; names in the
file that match no listed image are reported.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

#: Files looked for beside opened images (a folder's own ground truth).
BESIDE = ("ground_truth.json", "labels.csv", "labels.json")


class LabelsError(ValueError):
    """The file cannot be read as labels: the message names the file and what is wrong."""


def read_labels(path: str | Path) -> dict[str, set[str]]:
    """File name → its labels, from a CSV or a JSON file (see the module's doc)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LabelsError(f"{path}: cannot read it ({err})") from err
    if path.suffix.lower() == ".csv":
        return _from_csv(path, text)
    try:
        data = json.loads(text)
    except ValueError as err:
        raise LabelsError(f"{path}: not JSON ({err}); labels are a .csv (path,label;label) or a .json file") from err
    if isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys():
        return _from_coco(path, data)
    if isinstance(data, dict) and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()):
        return {Path(name).name: set(labels) for name, labels in data.items()}
    raise LabelsError(f"{path}: neither COCO-style JSON (images, annotations, categories) nor "
                      '{"file name": ["label", ...]}')


def _from_csv(path: Path, text: str) -> dict[str, set[str]]:
    labels: dict[str, set[str]] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip() or (number == 1 and row[0].strip().lower() in ("path", "file", "image")):
            continue
        if len(row) > 2:
            raise LabelsError(f"{path}, line {number}: {len(row)} fields; write path,label;label")
        names = row[1].split(";") if len(row) == 2 else []
        labels.setdefault(Path(row[0].strip()).name, set()).update(n.strip() for n in names if n.strip())
    return labels


def _from_coco(path: Path, data: dict) -> dict[str, set[str]]:
    try:
        categories = {c["id"]: str(c["name"]) for c in data["categories"]}
        files = {i["id"]: Path(str(i["file_name"])).name for i in data["images"]}
        labels: dict[str, set[str]] = {name: set() for name in files.values()}
        for a in data["annotations"]:
            labels[files[a["image_id"]]].add(categories[a["category_id"]])
    except (KeyError, TypeError) as err:
        raise LabelsError(f"{path}: COCO-style JSON without {err} where it is needed") from err
    return labels


def labels_beside(folder: Path) -> Path | None:
    """The labels file a folder carries (the samples' ``ground_truth.json``), if any."""
    return next((folder / name for name in BESIDE if (folder / name).is_file()), None)


def match(paths: list[Path], labels: dict[str, set[str]]) -> tuple[dict[Path, set[str]], list[str]]:
    """The labels of ``paths`` (by file name) and the file's names that match none of them."""
    matched = {p: labels[p.name] for p in paths if p.name in labels}
    names = {p.name for p in paths}
    return matched, sorted(n for n in labels if n not in names)


def truth_beside(paths: list[Path]) -> tuple[dict[Path, set[str]], list[str]]:
    """The ground truth of the images in the folders among ``paths``, from each folder's own
    labels file (:data:`BESIDE`), and why a file found there could not be read."""
    from .state import expand_paths

    truth, errors = {}, []
    for folder in (Path(p) for p in paths if Path(p).is_dir()):
        if (found := labels_beside(folder)) is not None:
            try:
                truth.update(match(expand_paths([folder]), read_labels(found))[0])
            except LabelsError as err:
                errors.append(str(err))
    return truth, errors
