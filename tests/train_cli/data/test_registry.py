"""The dataset registry: one parse gives labels and boxes, and every command's ``--dataset``
offers exactly the registered formats, a newly registered one included."""

import argparse
import json

import numpy as np
import pytest

from catviz import app, faithfulness
from catviz.dataset_source import open_dataset
from catviz.train_cli import config, evaluate
from catviz.train_cli.data import (
    BOX_COLUMNS,
    DATASETS,
    DatasetError,
    DatasetFormat,
    MultiLabelSplit,
    Sample,
    describe_datasets,
    load_split,
    register_dataset,
)
from catviz.train_cli.data.readers import VOC_CLASSES
from tests.fixtures import write_coco_format, write_image

#: ``catviz-train --dataset``'s help before the registry, written out by hand.
HELP = ("coco (MS-COCO 2014), voc (VOC2007), coco-format (annotations/{train,val}.json + images/{train,val}/), "
        "demo (generated offline)")


def test_the_built_in_formats_and_their_help():
    assert list(DATASETS) == ["coco", "voc", "coco-format", "demo"]
    assert describe_datasets() == HELP and config.HELP["dataset"] == HELP
    assert [f.name for f in DATASETS.values() if not f.needs_root] == ["demo"]


def test_coco_boxes_come_with_the_labels_as_corners_with_the_crowd_flag(tmp_path):
    root = write_coco_format(tmp_path)
    val = load_split("coco-format", root, "val")
    col = {name: i for i, name in enumerate(BOX_COLUMNS)}
    first = val.samples[0]  # image 1: a crowd car [0, 0, 10, 10] and a zebra [5, 5, 10, 10]
    assert first.path.name == "1.png" and first.boxes.shape == (2, 6)
    car, zebra = val.class_names.index("car"), val.class_names.index("zebra")
    assert first.boxes[:, [col["label"], col["x0"], col["y0"], col["x1"], col["y1"], col["crowd"]]].tolist() == [
        [car, 0, 0, 10, 10, 1], [zebra, 5, 5, 15, 15, 0]]
    for sample in val.samples:  # every positive label has a box in this set, and every box a positive label
        assert set(sample.boxes[:, 0].astype(int)) == set(np.flatnonzero(sample.target == 1))
    assert val.unboxed == ()


def test_an_annotation_without_a_box_keeps_its_label_and_is_named(tmp_path):
    root = write_coco_format(tmp_path)
    path = root / "annotations" / "val.json"
    data = json.loads(path.read_text())
    del data["annotations"][0]["bbox"]
    path.write_text(json.dumps(data))
    val = load_split("coco-format", root, "val")
    assert val.unboxed == ("annotations[0]",)
    assert val.samples[0].target.sum() == 2 and len(val.samples[0].boxes) == 1


def test_a_malformed_box_is_refused_naming_the_file_and_entry(tmp_path):
    root = write_coco_format(tmp_path)
    path = root / "annotations" / "val.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["bbox"] = [1, 2, -3, 4]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"val.json: annotations\[1\] 'bbox' must be"):
        load_split("coco-format", root, "val")


def test_voc_boxes_are_pixel_inclusive_and_leave_out_difficult_objects(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    write_image(voc / "JPEGImages" / "000001.jpg", seed=1)
    obj = ("<object><name>{}</name><difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin>"
           "<xmax>{}</xmax><ymax>{}</ymax></bndbox></object>")
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "000001.xml").write_text(
        "<annotation>" + obj.format("dog", 0, 1, 1, 10, 20) + obj.format("cat", 1, 1, 1, 50, 50)
        + "<object><name>car</name><difficult>0</difficult></object></annotation>")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    sample = load_split("voc", tmp_path, "val").samples[0]
    # pixels 1..10 (1-based, inclusive) are the 10 pixels [0, 10) in 0-based corners
    assert sample.boxes.tolist() == [[VOC_CLASSES.index("dog"), 0, 0, 10, 20, 0]]
    assert sample.target[VOC_CLASSES.index("car")] == 1  # a label without a box still counts


def _read_tiny(root, split, keep_unannotated, class_names):
    image = root / "x.png"
    write_image(image, seed=0)
    return MultiLabelSplit(split, ["a", "b"], [Sample(image, np.array([1, 0], np.int8),
                                                      np.array([[0, 1, 2, 11, 12, 0]], np.float64))])


@pytest.fixture
def tiny_format():
    fmt = register_dataset(DatasetFormat("tiny", "one image, for tests", _read_tiny))
    yield fmt
    del DATASETS[fmt.name]


def test_a_registered_format_is_offered_by_every_command_and_read_once(tmp_path, tiny_format, capsys):
    assert "tiny (one image, for tests)" in describe_datasets()
    train = config.build_parser().parse_args(["--dataset", "tiny"])
    assert train.dataset == "tiny"
    scoring = argparse.ArgumentParser()
    evaluate.add_arguments(scoring)
    assert scoring.parse_args(["x.safetensors", "--dataset", "tiny"]).dataset == "tiny"
    assert app.build_parser().parse_args(["--dataset", "tiny"]).dataset == "tiny"
    assert faithfulness.build_parser().parse_args(["--faithfulness", "--dataset", "tiny"]).dataset == "tiny"
    with pytest.raises(DatasetError, match="--data-root is required for dataset 'tiny'"):
        load_split("tiny", None, "val")
    source = open_dataset("tiny", tmp_path)
    assert source.class_names == ["a", "b"] and source.boxes[0].tolist() == [[0, 10, 10, 0]]  # width, height


def test_an_unknown_dataset_names_those_offered():
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'; choose coco, voc, coco-format, demo"):
        load_split("imagenet", None, "val")
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        open_dataset("imagenet", None)
