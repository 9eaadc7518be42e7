"""The batched pass over a split: cache, invalidation, resuming, corrupt files, bad images, boxes."""

import json

import numpy as np
import pytest
import torch

from catviz import dataset_results
from catviz.dataset_results import run_dataset
from catviz.dataset_source import open_dataset
from catviz.inference import load_model
from catviz.models.checkpoint import CheckpointError
from catviz.train_cli.data import DatasetError

from .conftest import CLASSES, make_checkpoint
from .dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


@pytest.fixture
def source(tmp_path):
    return open_dataset("coco-format", write_boxes_dataset(tmp_path / "data"))


@pytest.fixture
def models(small_checkpoints):  # noqa: F811
    return {role: load_model(path, torch.device("cpu")) for role, path in small_checkpoints.items()}


def chunk_files(cache, model):
    return sorted(p.name for p in cache.rglob("chunk-*.npz") if p.parent.name == dataset_results.file_sha256(model.path))


def test_boxes_follow_the_sample_order(source):
    assert [s.path.name for s in source.split.samples] == [f"{i:03d}.png" for i in range(len(VAL))]
    first = source.boxes[0]
    assert first[:, 0].tolist() == [CLASSES.index("cat"), CLASSES.index("dog")]
    assert first[:, 1:3].tolist() == [[8, 6], [40, 30]]
    assert source.boxes[2][:, 3].tolist() == [1, 0, 0]  # the crowd flag


def test_voc_boxes_are_pixel_inclusive_and_skip_difficult(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    from tests.fixtures import write_image

    for image_id in ("000001", "000002"):
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", seed=1)
    obj = "<object><name>{}</name><difficult>{}</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "000001.xml").write_text("<annotation>" + obj.format("dog", 0, 1, 1, 10, 20) + "</annotation>")
    (voc / "Annotations" / "000002.xml").write_text(
        "<annotation>" + obj.format("cat", 1, 1, 1, 50, 50) + obj.format("cat", 0, 5, 5, 14, 8) + "</annotation>")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for split in ("trainval", "test"):
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("000001\n000002\n")
    source = open_dataset("voc", tmp_path)
    assert source.boxes[0].tolist() == [[source.class_names.index("dog"), 10, 20, 0]]
    assert source.boxes[1].tolist() == [[source.class_names.index("cat"), 10, 4, 0]]  # the difficult one left out


def test_only_the_val_split_is_read_and_boxless_annotations_are_named(tmp_path, caplog):
    root = write_boxes_dataset(tmp_path / "data")
    (root / "annotations" / "train.json").unlink()  # scoring the val split needs no train split
    val_json = root / "annotations" / "val.json"
    data = json.loads(val_json.read_text())
    del data["annotations"][1]["bbox"]
    val_json.write_text(json.dumps(data))
    source = open_dataset("coco-format", root)
    assert len(source.split.samples) > 0
    assert "1 annotations without a usable box, e.g. annotations[1]" in caplog.text


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        open_dataset("coco-format", tmp_path / "nowhere")


def test_second_pass_reads_everything_from_the_cache(source, models, tmp_path):
    cache = tmp_path / "cache"
    first = run_dataset(source, models, batch_size=3, cache_dir=cache)
    assert first.complete and first.computed == len(VAL)
    assert {r: s.computed for r, s in first.scores.items()} == {"baseline": len(VAL), "cat": len(VAL)}
    assert list(first.scores["cat"].level_logits) == ["P5", "P4", "P3"]  # coarse to fine, as the model gives them
    assert first.scores["cat"].probabilities.dtype == np.float32
    assert first.sizes[1].tolist() == [64, 48]  # (height, width) of the decoded image
    second = run_dataset(source, models, batch_size=3, cache_dir=cache)
    assert second.computed == 0 and all(s.computed == 0 for s in second.scores.values())
    assert list(second.scores["cat"].level_logits) == ["P5", "P4", "P3"]  # the same order from the cache
    for role in models:
        np.testing.assert_array_equal(first.scores[role].probabilities, second.scores[role].probabilities)
        for level, logits in first.scores[role].level_logits.items():
            np.testing.assert_array_equal(logits, second.scores[role].level_logits[level])
    np.testing.assert_array_equal(first.sizes, second.sizes)


def test_the_batched_pass_matches_one_image_at_a_time(source, models, tmp_path):
    from catviz.models.preprocess import load_image, preprocess

    results = run_dataset(source, models, batch_size=4, cache_dir=tmp_path / "cache")
    loaded = models["cat"]
    image = load_image(source.split.samples[5].path)
    with torch.no_grad():
        logits = loaded.model(preprocess(image, loaded.meta.input_size, loaded.meta.mean, loaded.meta.std)).logits
    np.testing.assert_allclose(results.scores["cat"].probabilities[5], torch.sigmoid(logits[0]).numpy(), atol=1e-5)


def test_a_changed_checkpoint_invalidates_only_its_part(source, small_checkpoints, tmp_path):  # noqa: F811
    cat_path = make_checkpoint(tmp_path / "cat.safetensors", "cat_tiny", seed=0, input_size=32)
    models = {"baseline": load_model(small_checkpoints["baseline"], torch.device("cpu")),
              "cat": load_model(cat_path, torch.device("cpu"))}
    cache = tmp_path / "cache"
    before = run_dataset(source, models, cache_dir=cache)
    baseline_files = chunk_files(cache, models["baseline"])
    make_checkpoint(cat_path, "cat_tiny", seed=1, input_size=32)  # retrained: same path, other weights
    models["cat"] = load_model(cat_path, torch.device("cpu"))
    after = run_dataset(source, models, cache_dir=cache)
    assert after.scores["baseline"].computed == 0 and after.scores["cat"].computed == len(VAL)
    assert chunk_files(cache, models["baseline"]) == baseline_files
    np.testing.assert_array_equal(before.scores["baseline"].probabilities, after.scores["baseline"].probabilities)
    assert not np.allclose(before.scores["cat"].probabilities, after.scores["cat"].probabilities)


def test_a_cancelled_pass_resumes_where_it_stopped(source, models, tmp_path):
    cache = tmp_path / "cache"
    seen = []
    partial = run_dataset(source, models, batch_size=2, cache_dir=cache,
                          progress=seen.append, cancelled=lambda: len(seen) >= 2)
    assert not partial.complete and partial.computed == 4
    assert seen[-1].done == 4 and seen[-1].total == len(VAL) and seen[-1].images_per_second > 0
    assert partial.scored().sum() == 4
    resumed = run_dataset(source, models, batch_size=2, cache_dir=cache)
    assert resumed.complete and resumed.computed == len(VAL) - 4
    assert resumed.scored().all()
    full = run_dataset(source, models, batch_size=2, cache_dir=tmp_path / "fresh")
    for role in models:
        np.testing.assert_allclose(resumed.scores[role].probabilities, full.scores[role].probabilities, atol=1e-6)


def test_a_hard_kill_loses_at_most_the_unwritten_chunk(source, models, tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_results, "CHUNK_IMAGES", 2)
    cache = tmp_path / "cache"
    calls = []

    def crash_after_two_batches(progress):
        calls.append(progress)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies mid-pass: nothing is flushed

    with pytest.raises(KeyboardInterrupt):
        run_dataset(source, models, batch_size=2, cache_dir=cache, progress=crash_after_two_batches)
    resumed = run_dataset(source, models, batch_size=2, cache_dir=cache)
    assert resumed.computed == len(VAL) - 4  # both chunks of two images each were on disk


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong dtype", "wrong labels", "out of range"])
def test_a_corrupt_cache_file_is_discarded_and_rebuilt(source, models, tmp_path, damage):
    cache = tmp_path / "cache"
    first = run_dataset(source, models, cache_dir=cache)
    target = next(p for p in cache.rglob("chunk-*.npz") if p.parent.name == first.scores["cat"].sha256)
    if damage == "garbage":
        target.write_bytes(b"PK\x03\x04 this is not a zip file")
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    else:
        with np.load(target) as data:
            arrays = {k: data[k] for k in data.files}
        if damage == "wrong dtype":
            arrays["probabilities"] = arrays["probabilities"].astype(np.float64)
        elif damage == "wrong labels":
            arrays["class_names"] = np.array(["x"] * len(CLASSES))
        else:
            arrays["probabilities"][0, 0] = 7.0
        with open(target, "wb") as f:
            np.savez(f, **arrays)
    again = run_dataset(source, models, cache_dir=cache)
    assert again.scores["cat"].computed == len(VAL) and again.scores["baseline"].computed == 0
    assert not target.exists()
    np.testing.assert_allclose(again.scores["cat"].probabilities, first.scores["cat"].probabilities, atol=1e-6)


def test_undecodable_images_are_listed_and_excluded(tmp_path, models):
    source = open_dataset("coco-format", write_boxes_dataset(tmp_path / "data", broken=(1, 4)))
    results = run_dataset(source, models, batch_size=3, cache_dir=tmp_path / "cache")
    assert sorted(results.failed) == [1, 4]
    assert "001.png" in results.failed[1] and "image" in results.failed[1]
    assert results.scored().tolist() == [i not in (1, 4) for i in range(len(VAL))]
    again = run_dataset(source, models, batch_size=3, cache_dir=tmp_path / "cache")
    assert again.computed == 0 and sorted(again.failed) == [1, 4]  # the failures are cached too


def test_labels_that_differ_from_the_dataset_are_named(source, tmp_path):
    other = make_checkpoint(tmp_path / "other.safetensors", "baseline_tiny", classes=["cat", "dog", "car", "bus", "lamp"])
    with pytest.raises(CheckpointError, match=r"labels tree are not in the checkpoint.*labels lamp are not in the dataset"):
        run_dataset(source, {"baseline": load_model(other, torch.device("cpu"))}, cache_dir=tmp_path / "cache")
    shuffled = make_checkpoint(tmp_path / "shuffled.safetensors", "baseline_tiny", classes=CLASSES[::-1])
    with pytest.raises(CheckpointError, match="another order"):
        run_dataset(source, {"baseline": load_model(shuffled, torch.device("cpu"))}, cache_dir=tmp_path / "cache")


def test_sizes_are_the_files_full_sizes_even_when_decoded_reduced(tmp_path, models):
    import cv2

    root = write_boxes_dataset(tmp_path / "data")
    cv2.imwrite(str(root / "images" / "val" / "006.png"), np.zeros((40, 2500, 3), np.uint8))  # > 2048 px wide
    source = open_dataset("coco-format", root)
    results = run_dataset(source, models, cache_dir=tmp_path / "cache")
    assert results.sizes[6].tolist() == [40, 2500] and results.sizes[0].tolist() == [48, 64]
