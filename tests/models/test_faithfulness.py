from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from catviz import models
from catviz.models.faithfulness import (
    auc,
    box_area_share,
    box_mass_share,
    boxes_mask,
    deletion_auc,
    insertion_auc,
    perturbation_curves,
    pointing_game,
    road_score,
    road_scores,
    salience_order,
)


class RegionModel(nn.Module):
    """Label 0's logit grows with the mean of the 8x8 top-left region (channel-summed)."""

    num_classes = 2

    def forward(self, images):
        evidence = 8 * (images[:, :, :8, :8].mean((1, 2, 3)) - 1)
        return SimpleNamespace(logits=torch.stack([evidence, -evidence], 1))


def _region_case():
    image = torch.full((1, 3, 24, 24), -0.5)
    image[:, :, :8, :8] = 1.5
    perfect = np.zeros((24, 24), np.float32)
    perfect[:8, :8] = 1
    perfect += np.linspace(0, 0.1, 24 * 24, dtype=np.float32).reshape(24, 24)  # no ties
    return RegionModel().eval(), image, perfect


def test_a_perfect_map_deletes_faster_and_inserts_faster_than_its_reverse():
    model, image, perfect = _region_case()
    assert deletion_auc(model, image, 0, perfect, steps=16) < deletion_auc(model, image, 0, -perfect, steps=16) - 0.3
    assert insertion_auc(model, image, 0, perfect, steps=16) > insertion_auc(model, image, 0, -perfect, steps=16) + 0.3


def test_curves_start_at_the_image_and_end_at_the_fill():
    model, image, perfect = _region_case()
    curves = perturbation_curves(model, image, 0, perfect, steps=8)
    with torch.no_grad():
        p_image = torch.sigmoid(model(image).logits[0, 0]).item()
        p_empty = torch.sigmoid(model(torch.zeros_like(image)).logits[0, 0]).item()
    assert curves["deletion"].shape == (9,) and curves["insertion"].shape == (9,)
    assert curves["deletion"][0] == pytest.approx(p_image) and curves["deletion"][-1] == pytest.approx(p_empty)
    assert curves["insertion"][-1] == pytest.approx(p_image)
    # 64 of 576 pixels are the region: after one step of 72 pixels all of it is gone.
    assert curves["deletion"][1] == pytest.approx(p_empty, abs=1e-6)


def test_low_resolution_maps_are_resized_and_real_models_give_probabilities():
    torch.manual_seed(0)
    model = models.create_model("cat_tiny", num_classes=3).eval()
    value = deletion_auc(model, torch.randn(1, 3, 32, 48), 1, np.random.rand(4, 6), steps=4)
    assert 0.0 <= value <= 1.0


def test_auc_is_the_trapezoid_over_the_fraction():
    assert auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert auc(np.array([1.0, 1.0, 0.0])) == pytest.approx(0.75)


def test_ties_are_broken_in_a_fixed_random_order_not_row_by_row():
    order = salience_order(np.zeros((16, 16)))
    assert sorted(order) == list(range(256)) and not (order[:16] == np.arange(16)).all()
    np.testing.assert_array_equal(order, salience_order(np.zeros((16, 16))))
    assert salience_order(np.arange(4.0).reshape(2, 2))[0] == 3


def test_road_prefers_the_perfect_map():
    model, image, perfect = _region_case()
    torch.manual_seed(0)
    good = road_score(model, image, 0, perfect, percentiles=(50,))
    bad = road_score(model, image, 0, -perfect, percentiles=(50,))
    assert good > bad


def test_pointing_game_and_box_mass_by_hand():
    saliency = np.zeros((10, 10), np.float32)
    saliency[2, 3] = 4.0  # the maximum: row 2, column 3
    saliency[7, 7] = 1.0
    saliency[0, 0] = -5.0  # negative evidence is not mass
    hit = np.array([[3, 2, 5, 4]])  # x0, y0, x1, y1: columns 3-4, rows 2-3
    miss = np.array([[6, 6, 10, 10]])
    assert boxes_mask((10, 10), hit).sum() == 4
    assert pointing_game(saliency, hit) and not pointing_game(saliency, miss)
    assert pointing_game(saliency, np.concatenate([miss, hit]))  # any box of the label
    assert not pointing_game(np.ones((10, 10)), hit)  # a flat map points nowhere
    assert box_mass_share(saliency, hit) == pytest.approx(0.8)
    assert box_mass_share(saliency, miss) == pytest.approx(0.2)
    assert np.isnan(box_mass_share(-np.ones((10, 10)), hit))
    assert box_area_share((10, 10), np.concatenate([miss, hit])) == pytest.approx(0.2)
    assert box_area_share((10, 10), np.array([[0, 0, 5, 10], [0, 0, 5, 10]])) == pytest.approx(0.5)  # union


def test_bad_requests_are_clear_errors():
    model, image, perfect = _region_case()
    with pytest.raises(ValueError, match="out of range"):
        deletion_auc(model, image, 2, perfect)
    with pytest.raises(ValueError, match="one"):
        deletion_auc(model, image.expand(2, -1, -1, -1), 0, perfect)
    with pytest.raises(ValueError, match=r"\(h, w\)"):
        deletion_auc(model, image, 0, perfect[None])
    with pytest.raises(ValueError, match="eval mode"):
        deletion_auc(model.train(), image, 0, perfect)


def test_road_s_sparse_system_is_grad_cam_s_own():
    """catviz builds ROAD's imputation system in one constructor: the same matrix and right-hand
    side as grad-cam's element-by-element setup, for sparse, half and dense removals."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, neighbors_weights

    from catviz.models.faithfulness import _sparse_system

    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 12, 17)).astype(np.float32)
    for removed in (0.1, 0.5, 0.9):
        mask = (rng.random((12, 17)) > removed).astype(np.float32)
        expected, rhs = NoisyLinearImputer.setup_sparse_system(mask, image, neighbors_weights)
        matrix, mine = _sparse_system(mask, image, neighbors_weights)
        np.testing.assert_array_equal(matrix.toarray(), expected.toarray())
        np.testing.assert_array_equal(mine, rhs)


def test_road_per_percentile_averages_to_the_combined_score():
    """road_score over several percentiles is the mean of road_scores, each percentile alone."""
    torch.manual_seed(0)
    model = models.create_model("baseline_tiny", num_classes=2).eval()
    image = torch.randn(1, 3, 32, 32)
    saliency = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    torch.manual_seed(3)
    each = road_scores(model, image, 0, saliency, (30, 70))
    torch.manual_seed(3)
    assert road_score(model, image, 0, saliency, (30, 70)) == pytest.approx(np.mean(list(each.values())))
