from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from catviz import models
from catviz.models.attribution import Cancelled, black_baseline, integrated_gradients, occlusion

#: Each function with the path points it is given (Occlusion has none).
METHODS = {"ig": lambda *a, n_steps=32, **kw: integrated_gradients(*a, n_steps=n_steps, **kw),
           "occlusion": lambda *a, n_steps=None, **kw: occlusion(*a, **kw)}


def _model(name: str = "cat_tiny"):
    torch.manual_seed(0)
    return models.create_model(name, num_classes=3).eval()


class PatchModel(nn.Module):
    """logit 0 = sum of the pixels in rows/cols 8..11 (all channels); logit 1 = 0."""

    num_classes = 2

    def forward(self, images):
        patch = images[:, :, 8:12, 8:12].sum((1, 2, 3))
        return SimpleNamespace(logits=torch.stack([patch, torch.zeros_like(patch)], 1))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["baseline_tiny", "cat_tiny"])
def test_attributions_are_signed_maps_at_input_resolution(name, method):
    images = torch.randn(2, 3, 32, 48)
    maps = METHODS[method](_model(name), images, 1, n_steps=4)
    assert isinstance(maps, np.ndarray) and maps.shape == (2, 32, 48) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps > 0).any() and (maps < 0).any()


@pytest.mark.parametrize("name", ["baseline_tiny", "cat_tiny"])
def test_integrated_gradients_are_complete(name):
    """Sum of attributions = logit(image) - logit(reference), up to the path rule's error."""
    model, images = _model(name), torch.randn(2, 3, 32, 32)
    reference = black_baseline((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    maps = integrated_gradients(model, images, 2, baseline=reference, n_steps=64)
    with torch.no_grad():
        expected = (model(images).logits[:, 2] - model(reference.expand_as(images)).logits[:, 2]).numpy()
    assert np.abs(expected).min() > 0.05  # a difference worth explaining
    np.testing.assert_allclose(maps.sum((1, 2)), expected, rtol=0.05, atol=0.01)


def test_integrated_gradients_of_a_linear_model_are_gradient_times_input():
    images = torch.randn(1, 3, 20, 20)
    maps = integrated_gradients(PatchModel().eval(), images, 0, n_steps=2)
    expected = np.zeros((20, 20), np.float32)
    expected[8:12, 8:12] = images[0, :, 8:12, 8:12].sum(0).numpy()
    np.testing.assert_allclose(maps[0], expected, atol=1e-5)


def test_occlusion_attributes_only_where_a_window_meets_the_evidence():
    images = torch.rand(1, 3, 32, 32) + 0.5  # positive evidence everywhere
    maps = occlusion(PatchModel().eval(), images, 0)[0]  # window 4, stride 2
    assert (maps[8:12, 8:12] > 0).all()
    assert maps[:5].max() == 0 and maps[15:].max() == 0 and maps[:, 15:].max() == 0
    assert occlusion(PatchModel().eval(), images, 1).max() == 0  # label 1 ignores the image


def test_black_baseline_is_black_after_denormalising():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = black_baseline(mean, std)
    assert reference.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(reference.flatten() * torch.tensor(std) + torch.tensor(mean), 0, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_progress_rises_to_one_and_a_stop_raises_cancelled(method):
    model, images = _model(), torch.randn(1, 3, 32, 32)
    seen = []
    METHODS[method](model, images, 0, n_steps=24, progress=seen.append)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 1.0
    calls = []

    def stop_after_first_chunk():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        METHODS[method](model, images, 0, n_steps=24, should_stop=stop_after_first_chunk)
    assert len(calls) == 2  # it stopped at the first check after the request


def test_bad_requests_are_clear_errors():
    model, images = _model(), torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="out of range"):
        occlusion(model, images, 3)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        occlusion(model, images[0], 0)
    with pytest.raises(ValueError, match="at least 1"):
        integrated_gradients(model, images, 0, n_steps=0)
    with pytest.raises(ValueError, match="eval mode"):
        integrated_gradients(model.train(), images, 0)
