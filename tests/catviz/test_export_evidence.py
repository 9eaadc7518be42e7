"""`catviz export`: each map's evidence totals under it, and --difference's CAT - baseline row."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from catviz import figure, inference
from catviz.app import main
from catviz.methods import method_info

from .conftest import CLASSES, write_good_images


@pytest.fixture(scope="module")
def rows(checkpoints):
    """One image's real results from the tiny pair (token depth: the CAMs come with the forward pass)."""
    image = np.random.default_rng(5).integers(0, 255, (70, 110, 3), dtype=np.uint8)
    loaded = {role: inference.load_model(path, torch.device("cpu")) for role, path in checkpoints.items()}
    results = {role: inference.run_model(m, image) for role, m in loaded.items()}
    return figure.FigureRow("a.png", image, results, None, input_size=96)


def test_the_difference_map_adds_up_to_the_logit_difference(rows):
    for label in range(len(CLASSES)):
        diff = figure._difference(rows, label, None)
        assert diff.heat.shape == (96, 96)  # the input pixels, though the maps' grids differ
        base, cat = rows.results["baseline"], rows.results["cat"]
        delta = sum(float(v[label]) for v in cat.level_logits.values()) - \
            sum(float(v[label]) for v in base.level_logits.values())
        offsets = [sum(float(v[label]) for v in r.offsets.values()) for r in (cat, base)]
        assert abs(float(diff.heat.mean(dtype=np.float64)) + offsets[0] - offsets[1] - delta) <= 1e-4 * max(abs(delta), 1)


def test_captions_give_each_maps_totals_and_the_difference_row_is_drawn(rows):
    heat = rows.results["cat"].combined_cam[0]
    lines = figure._evidence_lines(heat, method_info("CAM"), -1.5, -1.0, None)
    positive, negative = float(np.clip(heat, 0, None).mean()), float(np.clip(heat, None, 0).mean())
    assert lines[0] == f"{positive:+.2f} {negative:+.2f} = net {positive + negative:+.2f}"
    assert lines[1] == "= logit -1.50 - offset -1.00"
    assert figure._evidence_lines(heat, method_info("GradCAM"), None, None, None) == []  # no totals: none said
    plain = figure.render_figure([rows], CLASSES)
    both = figure.render_figure([rows], CLASSES, difference=True)
    assert both.shape[1] == plain.shape[1] and both.shape[0] >= plain.shape[0] + figure.CELL  # a third row
    assert figure.render_figure([rows], CLASSES, method="GradCAM", difference=True).shape[0] < both.shape[0]


def test_difference_flag_needs_cam_and_both_models(tmp_path, checkpoints, capsys):
    good = write_good_images(tmp_path / "imgs", 1)
    for args, message in ((["--method", "GradCAM"], "--difference compares complete CAMs"),
                          (["--baseline", str(checkpoints["baseline"])], "--difference needs both models")):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", *map(str, good), "--out", str(tmp_path / "f.png"), "--difference", *args,
                  "--device", "cpu"])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_export_writes_the_difference_row(tmp_path, checkpoints):
    good = write_good_images(tmp_path / "imgs", 1)
    models = ["--baseline", str(checkpoints["baseline"]), "--cat", str(checkpoints["cat"])]
    common = [*map(str, good), *models, "--device", "cpu", "--depth", "tokens", "--show-small-values"]
    assert main(["export", *common, "--out", str(tmp_path / "plain.png")]) == 0
    assert main(["export", *common, "--out", str(tmp_path / "diff.png"), "--difference"]) == 0
    plain, diff = (cv2.imread(str(tmp_path / f"{name}.png")) for name in ("plain", "diff"))
    assert diff.shape[0] >= plain.shape[0] + figure.CELL
