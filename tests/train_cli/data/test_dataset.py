"""MultiLabelDataset's in-memory cache of decoded images: same outputs, fewer decodes."""

import numpy as np
import pytest
import torch

from catviz.models.preprocess import load_image
from catviz.train_cli.data import load_splits
from catviz.train_cli.data.dataset import MultiLabelDataset, TransformConfig
from tests.fixtures import write_coco_format

IMAGE_BYTES = 64 * 64 * 3  # the fixture's images, decoded
EVERYTHING = 2**30


@pytest.fixture
def split(tmp_path):
    return load_splits("coco-format", write_coco_format(tmp_path / "data"))[0]


@pytest.fixture
def decodes(monkeypatch):
    """The paths ``MultiLabelDataset`` decodes, in order."""
    paths = []

    def counting(path):
        paths.append(path)
        return load_image(path)

    monkeypatch.setattr("catviz.train_cli.data.dataset.load_image", counting)
    return paths


def items(dataset: MultiLabelDataset, epoch: int) -> list:
    dataset.set_epoch(epoch)
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize("train, transform", [
    (True, TransformConfig(img_size=48, crop="multiscale")),
    (True, TransformConfig(img_size=48, crop="plain")),
    (True, TransformConfig(img_size=48, randaugment=True, cutout=0.5)),
    (False, TransformConfig(img_size=48)),
], ids=["multiscale", "plain", "augment", "eval"])
def test_cached_items_equal_decoded_ones_in_every_epoch(split, train, transform):
    cached = MultiLabelDataset(split, transform, train=train, seed=5, cache_bytes=EVERYTHING)
    decoded = MultiLabelDataset(split, transform, train=train, seed=5)
    for epoch in range(2):  # epoch 0 fills the cache, epoch 1 reads from it
        for (image, target), (expected_image, expected_target) in zip(items(cached, epoch), items(decoded, epoch), strict=True):
            assert torch.equal(image, expected_image) and torch.equal(target, expected_target)
    assert len(cached._cache) == len(split.samples)


def test_a_cached_dataset_decodes_each_image_once(split, decodes):
    cached = MultiLabelDataset(split, TransformConfig(img_size=48), train=True, cache_bytes=EVERYTHING)
    items(cached, 0)
    assert len(decodes) == len(split.samples)
    items(cached, 1)
    assert len(decodes) == len(split.samples)


def test_without_a_budget_every_item_is_decoded(split, decodes):
    uncached = MultiLabelDataset(split, TransformConfig(img_size=48), train=True)
    items(uncached, 0)
    items(uncached, 1)
    assert len(decodes) == 2 * len(split.samples)
    assert not uncached._cache


def test_the_cache_stops_at_its_budget(split, decodes):
    budget = 2 * IMAGE_BYTES + IMAGE_BYTES // 2  # two images and a half
    dataset = MultiLabelDataset(split, TransformConfig(img_size=48), train=False, cache_bytes=budget)
    items(dataset, 0)
    assert sorted(dataset._cache) == [0, 1]
    assert sum(image.nbytes for image in dataset._cache.values()) <= budget
    decodes.clear()
    items(dataset, 1)
    assert decodes == [sample.path for sample in split.samples[2:]]  # the rest, decoded again


def test_a_broken_image_is_not_cached_and_warns_every_time(split, decodes, caplog):
    broken = split.samples[1].path
    broken.write_bytes(b"not a png at all" * 8)
    dataset = MultiLabelDataset(split, TransformConfig(img_size=48), train=True, cache_bytes=EVERYTHING)
    with caplog.at_level("WARNING", logger="catviz.train_cli.data.dataset"):
        for epoch in range(2):
            assert items(dataset, epoch)[1] is None
    assert [r.getMessage().startswith(f"skipping image: {broken}") for r in caplog.records] == [True, True]
    assert decodes.count(broken) == 2
    assert sorted(dataset._cache) == [0, 2, 3, 4]


def test_cached_images_are_read_only(split):
    dataset = MultiLabelDataset(split, TransformConfig(img_size=48), train=True, cache_bytes=EVERYTHING)
    items(dataset, 0)
    assert len(dataset._cache) == len(split.samples)
    for image in dataset._cache.values():
        assert image.dtype == np.uint8 and not image.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            image[0, 0] = 0


def test_fill_cache_decodes_up_to_the_budget_skipping_broken_images(split, decodes):
    split.samples[0].path.write_bytes(b"broken")
    dataset = MultiLabelDataset(split, TransformConfig(img_size=48), train=True, cache_bytes=2 * IMAGE_BYTES)
    dataset.fill_cache()
    assert sorted(dataset._cache) == [1, 2]  # the broken first image left out, then full
    assert decodes == [sample.path for sample in split.samples[:4]]  # stopped at the first that did not fit
