"""Evidence totals and the CAT − baseline difference map add up exactly (catviz.evidence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catviz import models
from catviz.evidence import (
    area_resample,
    difference_map,
    evidence_totals,
    faint_share,
    totals_text,
)
from catviz.explain import MapRequest, compute_map
from catviz.methods import CAM, method_info
from catviz.models.cam import class_activation_maps
from catviz.render import DIVERGING, Scale, colorize, drawn_strength

#: float32 maps and logits: the identities hold to this relative error.
REL = 1e-4


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return {name: models.create_model(name, 5).eval() for name in ("baseline_tiny", "cat_tiny")}


def test_area_resample_by_hand():
    """2x2 onto 3x3: the middle row and column straddle two source cells, half each."""
    source = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected = np.array([[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]])
    np.testing.assert_allclose(area_resample(source, (3, 3)), expected, rtol=1e-6)
    np.testing.assert_allclose(area_resample(source, (4, 6)), np.kron(source, np.ones((2, 3))), rtol=1e-6)  # blocks
    fine = np.arange(24.0).reshape(4, 6)
    np.testing.assert_allclose(area_resample(fine, (2, 3)), fine.reshape(2, 2, 3, 2).mean((1, 3)), rtol=1e-6)


@pytest.mark.parametrize("size", [(7, 5), (13, 10), (96, 128)])
def test_area_resample_keeps_the_mean(size):
    heat = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    assert abs(area_resample(heat, size).mean(dtype=np.float64) - heat.mean(dtype=np.float64)) < 1e-6


def test_totals_by_hand():
    heat = np.array([[2.0, -1.0], [0.0, -3.0]])
    per_cell = evidence_totals(heat)
    assert (per_cell.positive, per_cell.negative, per_cell.net) == (0.5, -1.0, -0.5)  # over 4 cells
    summed = evidence_totals(heat, per_cell=False)
    assert (summed.positive, summed.negative, summed.net) == (2.0, -4.0, -2.0)


def _close(value: float, expected: float) -> bool:
    return abs(value - expected) <= REL * max(abs(expected), 1.0)


@pytest.mark.parametrize("shape", [(64, 64), (64, 96)])
@pytest.mark.parametrize("name", ["baseline_tiny", "cat_tiny"])
def test_totals_of_every_complete_map_add_up_to_logit_minus_offset(tiny, name, shape):
    """positive + negative = net = level logit − offset, every level and combined, every depth."""
    model = tiny[name]
    image = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(2))
    for depth in model.spec.depths:
        cams = class_activation_maps(model, image, depth=depth, labels=[3])
        for j in range(1):
            for level, maps in cams.maps.items():
                totals = evidence_totals(maps[0, j])
                logit, offset = float(cams.level_logits[level][0, j]), float(cams.offsets[level][0, j])
                assert _close(totals.positive + totals.negative, logit - offset), (depth, level)
                assert totals.positive >= 0 >= totals.negative
            combined = evidence_totals(cams.combined[0, j])
            offset = sum(float(o[0, j]) for o in cams.offsets.values())
            assert _close(combined.net, float(cams.logits[0, j]) - offset), depth


@pytest.mark.parametrize(("depth", "shape"), [("tokens", (96, 96)), ("tokens", (96, 128)), ("tokens", (100, 76)),
                                             ("input", (64, 64)), ("input", (64, 96))])
def test_difference_map_mean_plus_offsets_is_the_logit_difference(tiny, depth, shape):
    """CAT − baseline on the input pixels (grids of different sizes resampled by area)."""
    image = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(3))
    labels = [0, 2]
    cams = {name: class_activation_maps(model, image, depth=depth, labels=labels) for name, model in tiny.items()}
    base, cat = cams["baseline_tiny"], cams["cat_tiny"]
    if depth == "tokens":
        assert base.combined.shape[-2:] != cat.combined.shape[-2:]  # the case that needs resampling
    for label in range(len(labels)):
        offsets = {name: sum(float(o[0, label]) for o in c.offsets.values()) for name, c in cams.items()}
        diff = difference_map(cat.combined[0, label], base.combined[0, label], cat.logits[0, label],
                              base.logits[0, label], offsets["cat_tiny"], offsets["baseline_tiny"], shape)
        assert diff.heat.shape == shape and diff.heat.dtype == np.float32
        expected = float(cat.logits[0, label]) - float(base.logits[0, label])
        assert diff.delta_logit == pytest.approx(expected)
        mean = float(diff.heat.mean(dtype=np.float64))
        assert abs(mean + diff.delta_offset - expected) <= REL * max(abs(expected), 1.0), (label, mean, expected)


def test_the_apps_complete_cam_keeps_the_mean_on_a_grid_that_does_not_divide_the_input(tiny):
    """The runner behind the app's maps below the tokens and `catviz export`: a 13x10 grid
    spread over 100x76 pixels still adds up to the logit (bilinear resizing did not)."""
    model = tiny["cat_tiny"]
    image = torch.randn(1, 3, 100, 76, generator=torch.Generator().manual_seed(4))
    for depth in ("tokens", "s3"):
        heat = compute_map(CAM, model, image, 1, None, MapRequest(depth=depth))
        assert heat.shape == (100, 76) and heat.shape != class_activation_maps(model, image).combined.shape[-2:]
        cams = class_activation_maps(model, image, depth=depth, labels=[1])
        offset = sum(float(o[0, 0]) for o in cams.offsets.values())
        assert _close(evidence_totals(heat).net, float(cams.logits[0, 0]) - offset), depth


def test_panel_text_states_the_identity_and_why_other_methods_have_none():
    heat = np.array([[2.0, -1.0], [0.0, -3.0]])
    line, tooltip = totals_text(heat, method_info(CAM), logit=-1.5, offset=-1.0)
    assert line == ["+0.50 −1.00 = net −0.50", "= logit −1.50 − offset −1.00"]
    assert "4 cells" in tooltip
    line, tooltip = totals_text(heat, method_info("Integrated Gradients"))
    assert line == ["sums +2.00 −4.00 = net −2.00"] and "black image" in tooltip
    for method in ("Occlusion", "GradCAM"):
        line, tooltip = totals_text(heat, method_info(method))
        assert line == ["totals —"] and "No evidence totals" in tooltip


def test_faint_share_is_the_mass_drawn_at_under_a_tenth_of_full_strength():
    """A 10 peak and many -0.01 cells: at opacity 1, m = |v|/10 = 0.001 is drawn at opacity sqrt(m)
    ≈ 0.03 in a colour m of the way from white: strength 3e-5, faint; the floor draws them at
    m = 0.3: opacity 0.55, strength 0.16."""
    heat = np.full((10, 10), -0.01)
    heat[0, 0] = 10.0
    scale = Scale(-10.0, 10.0)
    expected = 99 * 0.01 / (10 + 99 * 0.01)
    assert faint_share(heat, drawn_strength(heat, scale, 1.0)) == pytest.approx(expected)
    assert faint_share(heat, drawn_strength(heat, scale, 1.0, floor=0.3)) == 0.0
    drawn = colorize(heat, scale, DIVERGING, 1.0, floor=0.3)
    assert (drawn[1:, 1:, 3] / 255 >= 0.5).all()  # what is drawn agrees
    assert (drawn[5, 5, 2] > drawn[5, 5, 0])  # and blue: negative
