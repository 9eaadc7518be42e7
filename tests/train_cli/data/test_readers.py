import json

import numpy as np
import pytest

from catviz.train_cli.data import DatasetError, load_splits
from catviz.train_cli.data.readers import VOC_CLASSES
from tests.fixtures import write_coco_format, write_voc


def test_coco_format_maps_non_contiguous_ids_in_id_order_and_drops_unannotated(tmp_path):
    train, val = load_splits("coco-format", write_coco_format(tmp_path))
    assert train.class_names == ["car", "dog", "zebra"]  # ids 3, 7, 42
    assert len(train.samples) == 5  # image 0 has no annotation
    first = train.samples[0]  # image 1: a crowd 'car' (id 3) + 'zebra' (id 42)
    assert first.path.name == "1.png"
    assert first.target.tolist() == [1, 0, 1]
    assert val.class_names == train.class_names


def test_coco_format_can_keep_unannotated_images_as_negatives(tmp_path):
    train, _ = load_splits("coco-format", write_coco_format(tmp_path), keep_unannotated=True)
    assert len(train.samples) == 6
    assert train.samples[0].target.tolist() == [0, 0, 0]


def test_voc_difficult_only_labels_are_minus_one(tmp_path):
    train, test = load_splits("voc", write_voc(tmp_path))
    col = {n: i for i, n in enumerate(VOC_CLASSES)}
    t = train.targets()
    assert t[0, col["dog"]] == 1 and t[0, col["person"]] == 1
    assert t[1, col["cat"]] == -1  # only a difficult cat
    assert test.targets()[0, col["cat"]] == 1  # a non-difficult cat wins
    assert t.shape == (2, 20) and len(test.samples) == 1


@pytest.mark.parametrize("dataset", ["coco", "voc", "coco-format"])
def test_missing_data_root_names_the_path(tmp_path, dataset):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nope'}: data root not found"):
        load_splits(dataset, tmp_path / "nope")


def test_wrong_layout_names_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match="instances_train2014.json: annotation file not found"):
        load_splits("coco", tmp_path)
    with pytest.raises(DatasetError, match="VOC2007 folder 'Annotations'"):
        load_splits("voc", tmp_path)


def test_malformed_json_names_file_and_line(tmp_path):
    root = write_coco_format(tmp_path)
    (root / "annotations" / "train.json").write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(DatasetError, match=r"train.json: malformed JSON at line 2"):
        load_splits("coco-format", root)


def test_malformed_voc_xml_names_the_file(tmp_path):
    root = write_voc(tmp_path)
    (root / "VOCdevkit/VOC2007/Annotations/000002.xml").write_text("<annotation><object>")
    with pytest.raises(DatasetError, match=r"000002.xml: malformed XML"):
        load_splits("voc", root)


def _edit_train_json(root, edit):
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_annotation_pointing_at_a_missing_image_is_reported_up_front(tmp_path):
    root = write_coco_format(tmp_path)
    (root / "images" / "train" / "3.png").unlink()
    with pytest.raises(DatasetError, match=r"missing image .*train/3.png"):
        load_splits("coco-format", root)


def test_unknown_category_and_unknown_image_ids_name_the_annotation_entry(tmp_path):
    # The entry's position, not its "id" (which may be absent, repeated or equal to another index).
    root = write_coco_format(tmp_path)
    _edit_train_json(root, lambda d: d["annotations"].insert(1, {"id": 1, "image_id": 101, "category_id": 999}))
    with pytest.raises(DatasetError, match=r"train.json: annotations\[1\]: unknown category_id 999"):
        load_splits("coco-format", root)
    root = write_coco_format(tmp_path / "b")
    _edit_train_json(root, lambda d: d["annotations"].append({"id": 98, "image_id": 7, "category_id": 3}))
    with pytest.raises(DatasetError, match=r"train.json: annotations\[\d+\]: unknown image_id 7"):
        load_splits("coco-format", root)


def test_string_ids_are_kept_and_a_wrong_id_type_is_reported_on_its_entry(tmp_path):
    root = write_coco_format(tmp_path)

    def rename(d):  # some exporters write string ids; a file may mix them with integers
        old = d["images"][4]["id"]
        d["images"][4]["id"] = "abc"
        for ann in d["annotations"]:
            if ann["image_id"] == old:
                ann["image_id"] = "abc"

    before = load_splits("coco-format", root)[0].samples
    _edit_train_json(root, rename)
    after = load_splits("coco-format", root)[0].samples
    assert sorted(s.path.name for s in after) == sorted(s.path.name for s in before)  # 4.png, now "abc", kept
    assert after[-1].path.name == "4.png"  # string ids after the integers
    _edit_train_json(root, lambda d: d["images"][4].update(id=4.5))
    with pytest.raises(DatasetError, match=r"train.json: images\[4\] 'id' must be an integer or string id, got 4.5"):
        load_splits("coco-format", root)


def test_a_duplicate_id_names_both_entries(tmp_path):
    root = write_coco_format(tmp_path)
    _edit_train_json(root, lambda d: d["images"][4].update(id=d["images"][1]["id"]))
    with pytest.raises(DatasetError, match=r"train.json: images\[4\]: duplicate image id 101 \(also images\[1\]\)"):
        load_splits("coco-format", root)


def test_an_empty_split_is_an_error(tmp_path):
    root = write_coco_format(tmp_path)
    _edit_train_json(root, lambda d: d.update(images=[], annotations=[]))
    with pytest.raises(DatasetError, match="train.json: split 'train' has no images"):
        load_splits("coco-format", root)


def test_a_split_with_images_but_no_annotations_says_so_and_how_to_keep_them(tmp_path):
    root = write_coco_format(tmp_path, images_per_split=8)
    path = root / "annotations" / "val.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "annotations": []}))
    with pytest.raises(DatasetError, match=r"val.json: split 'val': 0 of 8 images annotated \(unannotated images "
                                           r"are dropped, as ML-GCN; --keep-unannotated keeps them as all-negative\)"):
        load_splits("coco-format", root)
    _, val = load_splits("coco-format", root, keep_unannotated=True)
    assert len(val.samples) == 8 and not val.targets().any()


@pytest.mark.parametrize("bbox", [[0, 0, 0, 10], [1, 2, 10, 0], [0.5, 0.5, 3.25, 4.0]])
def test_zero_size_and_fractional_boxes_are_accepted(tmp_path, bbox):
    root = write_coco_format(tmp_path)
    _edit_train_json(root, lambda d: d["annotations"][0].update(bbox=bbox))
    train, _ = load_splits("coco-format", root)
    assert len(train.samples) == 5


def test_boxes_are_optional_and_crowd_boxes_still_count_as_labels(tmp_path):
    root = write_coco_format(tmp_path)
    _edit_train_json(root, lambda d: [a.pop("bbox") for a in d["annotations"]])
    train, _ = load_splits("coco-format", root)
    assert train.samples[0].target.tolist() == [1, 0, 1]  # image 1: a crowd 'car' + 'zebra'


def test_coco_2014_layout_is_read(tmp_path):
    src = write_coco_format(tmp_path / "src")
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (src / "images" / split).rename(root / f"{split}2014")
        (src / "annotations" / f"{split}.json").rename(root / "annotations" / f"instances_{split}2014.json")
    train, val = load_splits("coco", root)
    assert len(train.samples) == 5 and train.class_names == ["car", "dog", "zebra"]
    assert np.array_equal(val.targets(), train.targets())


def _first_image(d):
    return d["images"][0]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(images=[*d["images"], dict(d["images"][1])]),
     r"images\[6\]: duplicate image id 101 \(also images\[1\]\)"),
    (lambda d: d["categories"].append({"id": 3, "name": "bus"}),
     r"categories\[3\]: duplicate category id 3 \(also categories\[1\]\)"),
    (lambda d: d["categories"].append({"id": 9, "name": "dog"}),
     r"categories\[3\]: duplicate category name 'dog' \(also categories\[2\]\)"),
    (lambda d: d["images"].append(5), r"images\[6\] is a int, not an object"),
    (lambda d: d["categories"].append(None), r"categories\[3\] is a NoneType, not an object"),
    (lambda d: d["annotations"].append("x"), r"annotations\[\d+\] is a str, not an object"),
    (lambda d: _first_image(d).pop("id"), r"images\[0\] has no 'id'"),
    (lambda d: _first_image(d).pop("file_name"), r"images\[0\] has no 'file_name'"),
    (lambda d: _first_image(d).update(file_name=None), r"images\[0\] 'file_name' must be a relative path"),
    (lambda d: _first_image(d).update(file_name="../../etc/passwd"), r"images\[0\] 'file_name' must be a relative"),
    (lambda d: _first_image(d).update(id=None), r"images\[0\] 'id' must be an integer or string id, got None"),
    (lambda d: _first_image(d).update(id=True), r"images\[0\] 'id' must be an integer or string id, got True"),
    (lambda d: _first_image(d).update(id=100.0), r"images\[0\] 'id' must be an integer or string id, got 100.0"),
    (lambda d: _first_image(d).update(file_name=7), r"images\[0\] 'file_name' must be a relative path .*, got 7"),
    (lambda d: d["categories"][0].pop("name"), r"categories\[0\] has no 'name'"),
    (lambda d: d["categories"][0].update(name=""), r"categories\[0\] 'name' must be a non-empty string"),
    (lambda d: d["categories"][0].update(id=[1]), r"categories\[0\] 'id' must be an integer or string id, got \[1\]"),
    (lambda d: d["categories"][1].update(name=3), r"categories\[1\] 'name' must be a non-empty string, got 3"),
    (lambda d: d["annotations"][0].update(image_id=None), r"annotations\[0\] 'image_id' must be"),
    (lambda d: d["annotations"][1].update(bbox=[0, 0, -5, 10]),
     r"annotations\[1\] 'bbox' must be \[x, y, width, height\], 4 finite numbers with width and height >= 0, "
     r"got \[0, 0, -5, 10\]"),
    (lambda d: d["annotations"][2].update(bbox=[0, 0, 5, -1]), r"annotations\[2\] 'bbox' must be .*, got \[0, 0, 5, -1\]"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, 5]), r"annotations\[0\] 'bbox' must be .*, got \[0, 0, 5\]"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, "5", 5]), r"annotations\[0\] 'bbox' must be .*, got \[0, 0, '5', 5\]"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, float("nan"), 5]), r"annotations\[0\] 'bbox' must be .*, got \[0, 0, nan, 5\]"),
    (lambda d: d["annotations"][0].update(bbox=[0, 0, 5, float("inf")]), r"annotations\[0\] 'bbox' must be .*, got \[0, 0, 5, inf\]"),
    (lambda d: d["annotations"][0].update(bbox=None), r"annotations\[0\] 'bbox' must be .*, got None"),
    (lambda d: d["annotations"][0].pop("category_id"), r"annotations\[0\] has no 'category_id'"),
])
def test_malformed_coco_entries_are_refused_naming_file_and_entry(tmp_path, edit, message):
    root = write_coco_format(tmp_path)
    _edit_train_json(root, edit)
    with pytest.raises(DatasetError, match=f"train.json: {message}"):
        load_splits("coco-format", root)


def test_a_json_list_and_non_utf8_annotation_files_are_refused_naming_the_file(tmp_path):
    root = write_coco_format(tmp_path)
    path = root / "annotations" / "train.json"
    path.write_text("[1, 2]")
    with pytest.raises(DatasetError, match=r"train.json: not a COCO instances file \(a JSON list"):
        load_splits("coco-format", root)
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "café"}]}
    path.write_bytes(json.dumps(data, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(DatasetError, match=r"train.json: not UTF-8 text"):
        load_splits("coco-format", root)


def test_voc_non_utf8_list_duplicate_ids_and_latin1_xml_are_refused(tmp_path):
    root = write_voc(tmp_path)
    main = root / "VOCdevkit/VOC2007/ImageSets/Main"
    (main / "trainval.txt").write_bytes("000001\n00000\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"trainval.txt: not UTF-8 text"):
        load_splits("voc", root)
    (main / "trainval.txt").write_text("000001\n\n000002\n000001\n")
    with pytest.raises(DatasetError, match=r"trainval.txt: line 4: duplicate image id '000001' \(also line 1\)"):
        load_splits("voc", root)
    (main / "trainval.txt").write_text("000001\n000002\n")
    xml = root / "VOCdevkit/VOC2007/Annotations/000002.xml"
    xml.write_bytes("<annotation><object><name>caf\xe9</name></object></annotation>".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"000002.xml: malformed XML"):
        load_splits("voc", root)
