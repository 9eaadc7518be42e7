"""The app's model side (no Qt): results as numpy, every grad-cam method, rollout."""

import numpy as np
import pytest
import torch

from catviz.inference import (
    GRAD_CAM_METHODS,
    attention_rollout,
    load_model,
    run_grad_cam,
    run_model,
)

IMAGE = np.random.default_rng(0).integers(0, 255, (100, 130, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def loaded(checkpoints):
    return {role: load_model(path, torch.device("cpu")) for role, path in checkpoints.items()}


def test_run_model_returns_numpy_outputs_cams_and_attention_grids(loaded):
    cat = run_model(loaded["cat"], IMAGE)
    assert cat.probabilities.shape == (5,) and ((0 <= cat.probabilities) & (cat.probabilities <= 1)).all()
    np.testing.assert_allclose(
        1 / (1 + np.exp(-sum(cat.level_logits.values()))), cat.probabilities, rtol=1e-5)
    assert cat.grids == {"P3": (12, 12), "P4": (6, 6), "P5": (3, 3)}
    assert cat.attention["lrd.0"].shape == (8, 9, 9)
    assert cat.attention["clf.P4"].shape == (8, 6, 6) and cat.attention["clf.P3"].shape == (8, 12, 12)
    assert cat.cams["P3"].shape == (5, 12, 12) and cat.combined_cam.shape == (5, 12, 12)
    base = run_model(loaded["baseline"], IMAGE)
    assert set(base.cams) == {"S5"} and base.attention == {}


@pytest.mark.parametrize("method", GRAD_CAM_METHODS)
@pytest.mark.parametrize("role, level", [("cat", "P3"), ("cat", "P5"), ("baseline", "S5")])
def test_every_offered_grad_cam_method_runs(loaded, method, role, level):
    heat = run_grad_cam(loaded[role], IMAGE, 2, level, method)
    assert heat.shape == (96, 96)
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def test_attention_rollout_is_a_row_stochastic_product():
    rng = np.random.default_rng(0)
    layers = [rng.random((8, 6, 6)) for _ in range(2)]
    layers = [w / w.sum(-1, keepdims=True) for w in layers]
    rollout = attention_rollout(layers)
    np.testing.assert_allclose(rollout.sum(-1), 1.0)
    a = [0.5 * w.mean(0) + 0.5 * np.eye(6) for w in layers]
    np.testing.assert_allclose(rollout, a[1] @ a[0])
