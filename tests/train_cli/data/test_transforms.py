"""ML-GCN's MultiScaleCrop, checked against its definition (ML-GCN util.py, engine.py)."""

import numpy as np
import pytest

from catviz.train_cli.data import transforms
from catviz.train_cli.data.dataset import MultiLabelDataset, TransformConfig
from catviz.train_cli.data.readers import MultiLabelSplit, Sample


def test_the_paper_recipe_uses_ml_gcn_scales_and_distortion():
    assert transforms.ML_GCN_SCALES == (1.0, 0.875, 0.75, 0.66, 0.5)
    assert transforms.ML_GCN_MAX_DISTORT == 2


def test_crop_sizes_of_a_640x480_coco_image_at_448():
    # ML-GCN: base 480; int(480 * s) = 480, 420, 360, 316, 240 (none within 2 px of 448);
    # (w, h) pairs whose scale indices differ by at most 2: 5 + 2*4 + 2*3 = 19.
    sides = [480, 420, 360, 316, 240]
    expected = [(sides[j], sides[i]) for i in range(5) for j in range(5) if abs(i - j) <= 2]
    pairs = transforms.crop_sizes(640, 480, 448)
    assert pairs == expected and len(pairs) == 19
    assert (480, 360) in pairs and (240, 360) in pairs  # two steps of distortion either way
    assert (480, 316) not in pairs and (240, 420) not in pairs  # three steps: excluded


def test_a_side_within_2_px_of_the_output_snaps_to_it():
    # base 450: int(450 * s) = 450 -> 448 (|450 - 448| < 3), 393, 337, 297, 225
    sides = [448, 393, 337, 297, 225]
    assert transforms.crop_sizes(450, 600, 448) == [(sides[j], sides[i]) for i in range(5) for j in range(5) if abs(i - j) <= 2]
    # the demo set: 128x128 scenes at 128 give 128, 112, 96, 84, 64
    assert sorted({w for w, _ in transforms.crop_sizes(128, 128, 128)}) == [64, 84, 96, 112, 128]


def test_thirteen_fixed_offsets_on_a_quarter_grid():
    # crop 420x360 of 640x480: w_step = 220 // 4 = 55, h_step = 120 // 4 = 30 (ML-GCN fill_fix_offset order)
    assert transforms.fixed_offsets(640, 480, 420, 360) == [
        (0, 0), (220, 0), (0, 120), (220, 120), (110, 60),
        (0, 60), (220, 60), (110, 120), (110, 0),
        (55, 30), (165, 30), (55, 90), (165, 90),
    ]
    assert transforms.fixed_offsets(640, 480, 420, 360, more_fix_crop=False) == [(0, 0), (220, 0), (0, 120), (220, 120), (110, 60)]
    # floor division: a free space of 7 px gives steps of 1, so the "right" corner is at 4, not 7
    assert transforms.fixed_offsets(427, 100, 420, 100)[1] == (4, 0)


def test_sampling_reaches_every_size_and_offset_and_stays_inside_the_image():
    seen = set()
    for seed in range(1500):
        x, y, w, h = transforms.sample_crop(640, 480, 448, np.random.default_rng(seed))
        assert (w, h) in transforms.crop_sizes(640, 480, 448)
        assert (x, y) in transforms.fixed_offsets(640, 480, w, h)
        assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 480
        seen.add((x, y, w, h))
    every = {(x, y, w, h) for w, h in transforms.crop_sizes(640, 480, 448) for x, y in transforms.fixed_offsets(640, 480, w, h)}
    assert seen == every


def test_the_crop_is_the_sampled_region_resized():
    yy, xx = np.mgrid[0:480, 0:640]
    image = np.stack([xx % 256, yy % 256, (xx // 256) * 100 + (yy // 256)], -1).astype(np.uint8)
    x, y, w, h = transforms.sample_crop(640, 480, 448, np.random.default_rng(7))
    out = transforms.multi_scale_crop(image, 448, np.random.default_rng(7))
    assert out.shape == (448, 448, 3)
    assert tuple(out[0, 0]) == tuple(image[y, x])  # bilinear corners keep the corner pixel


def write_image(path, size=(96, 160)):
    import cv2

    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize("crop", ["multiscale", "plain"])
def test_the_training_dataset_uses_the_chosen_crop_reproducibly(tmp_path, crop, monkeypatch):
    path = write_image(tmp_path / "a.png")
    split = MultiLabelSplit("train", ["x"], [Sample(path, np.ones(1, np.float32))])
    calls = []
    monkeypatch.setattr("catviz.train_cli.data.dataset.multi_scale_crop",
                        lambda image, size, rng: calls.append(image.shape) or transforms.multi_scale_crop(image, size, rng))
    dataset = MultiLabelDataset(split, TransformConfig(img_size=64, crop=crop), train=True, seed=3)
    first, again = dataset[0][0], dataset[0][0]
    assert first.shape == (3, 64, 64) and (first == again).all()
    assert calls == ([(96, 160, 3)] * 2 if crop == "multiscale" else [])
