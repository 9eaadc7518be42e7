"""``catviz export --depth``: the complete CAM's depth in the figure (issue 24)."""

import cv2
import numpy as np

from catviz.app import main

from .conftest import write_good_images


def _export(*args, checkpoints):
    models = ["--baseline", str(checkpoints["baseline"]), "--cat", str(checkpoints["cat"])]
    return main(["export", *map(str, args), *models, "--device", "cpu"])


def test_export_draws_the_chosen_depth(tmp_path, checkpoints):
    good = write_good_images(tmp_path / "imgs", 1)
    figures = {}
    for depth in ("tokens", "input"):
        out = tmp_path / f"{depth}.png"
        assert _export(*good, "--out", out, "--depth", depth, checkpoints=checkpoints) == 0
        figures[depth] = cv2.imread(str(out))
    assert figures["tokens"].shape == figures["input"].shape
    assert not np.array_equal(figures["tokens"], figures["input"])  # other maps, other header


def test_a_depth_one_model_lacks_is_refused_naming_its_depths(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 1)
    assert _export(*good, "--out", tmp_path / "f.png", "--depth", "fpn", checkpoints=checkpoints) == 2
    err = capsys.readouterr().err
    assert "baseline model has no such depth; it has tokens, s3, input" in err
    assert not (tmp_path / "f.png").exists()
