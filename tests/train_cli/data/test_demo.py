import numpy as np

from catviz.train_cli.data import load_splits
from catviz.train_cli.data.demo import CLASS_NAMES, SPLITS, build_demo_set


def test_demo_set_is_deterministic_multilabel_and_coco_format(tmp_path):
    a = build_demo_set(tmp_path / "a")
    train, val = load_splits("demo", a)
    assert train.class_names == CLASS_NAMES
    assert len(train.samples) == SPLITS["train"][0] and len(val.samples) == SPLITS["val"][0]
    labels_per_image = train.targets().sum(1)
    assert labels_per_image.min() >= 1 and labels_per_image.max() <= 4 and labels_per_image.mean() > 2
    assert (train.targets().sum(0) > 100).all()  # every digit is common
    b = build_demo_set(tmp_path / "b")
    for name in ("train/00000.png", "val/00123.png"):
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
    assert np.array_equal(load_splits("demo", b)[1].targets(), val.targets())
