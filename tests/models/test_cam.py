import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_image

import models
from models.cam import (
    ActivationCapture,
    class_activation_maps,
    grad_cam,
    gradient_maps,
)

TINY = [n for n in models.list_models() if n.endswith("_tiny")]


def _model(name: str):
    torch.manual_seed(0)
    return models.create_model(name, num_classes=4).eval()


@pytest.mark.parametrize("name", TINY)
def test_exact_cams_average_to_their_levels_logit(name):
    model = _model(name)
    result = class_activation_maps(model, torch.randn(2, 3, 96, 128))
    assert result.logits.shape == (2, 4)
    for level, maps in result.maps.items():
        assert maps.shape[:2] == (2, 4) and isinstance(maps, np.ndarray)
        if not result.exact[level]:
            continue
        bias = model.classifiers[level].bias.detach().numpy()
        np.testing.assert_allclose(maps.mean((2, 3)) + bias, result.level_logits[level], atol=1e-5)
    assert result.combined.shape[:2] == (2, 4)


def test_cam_exactness_per_level_is_as_documented():
    assert class_activation_maps(_model("baseline_tiny"), torch.randn(1, 3, 64, 64)).exact == {"S5": True}
    assert class_activation_maps(_model("cat_tiny"), torch.randn(1, 3, 64, 64)).exact == {
        "P5": True, "P4": False, "P3": False}
    assert all(class_activation_maps(_model("cat_mha_tiny"), torch.randn(1, 3, 64, 64)).exact.values())


def test_pma_level_map_distributes_the_first_order_share_over_the_lower_grid():
    model = _model("cat_tiny")
    images = torch.randn(1, 3, 64, 96)
    result = class_activation_maps(model, images)
    assert result.maps["P4"].shape == (1, 4, 4, 6)
    assert result.maps["P3"].shape == (1, 4, 8, 12)
    # mean(M) = g · (o - b_o): check against autograd on the same block.
    out = model(images, return_features=True)
    block, classifier = model.clf["P4"], model.classifiers["P4"]
    query = out.features["P4.query"]
    context = out.features["P4.context"].flatten(2).transpose(1, 2)
    attn_out, _ = block.attn(query, context, context)
    attn_out = attn_out.detach().requires_grad_()
    for label in range(4):
        logit = classifier(block.post_attention(query.detach(), attn_out))[0, 0, label]
        (grad,) = torch.autograd.grad(logit, attn_out)
        share = (grad * (attn_out - block.attn.out_proj.bias)).sum()
        np.testing.assert_allclose(result.maps["P4"][0, label].mean(), share.item(), rtol=1e-4, atol=1e-6)


def test_cams_refuse_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        class_activation_maps(_model("cat_tiny").train(), torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("name", ["baseline_tiny", "cat_tiny", "cat_mha_tiny", "fpn_tiny"])
def test_batched_gradient_maps_equal_grad_cam_per_label(name):
    model = _model(name)
    image = torch.randn(1, 3, 96, 128)
    for level, layer in model.target_layers().items():
        maps = gradient_maps(model, image, layer)
        assert maps.shape[0] == 4
        for label in range(4):
            reference = grad_cam(model, image, label, level)
            # grad-cam scales to [0, 1] at input size, twice (per layer, then aggregated).
            ours = scale_cam_image(scale_cam_image(maps[label : label + 1], (128, 96)))
            np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_grad_cam_methods_from_the_package_run_on_cat_levels():
    model = _model("cat_tiny")
    for method in (GradCAM, GradCAMPlusPlus):
        heat = grad_cam(model, torch.randn(1, 3, 64, 64), label=1, level="P3", method=method)
        assert heat.shape == (1, 64, 64) and 0 <= heat.min() and heat.max() <= 1


def test_activation_capture_releases_its_hook_and_memory_stays_flat():
    model = _model("cat_tiny")
    layer = model.target_layers()["P3"]
    image = torch.randn(1, 3, 64, 64)
    for _ in range(3):
        gradient_maps(model, image, layer)
    import tracemalloc

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(20):
        gradient_maps(model, image, layer)
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert not layer._forward_hooks
    assert growth < 1_000_000
    with ActivationCapture(layer) as capture:
        model(image)
        assert capture.activation is not None
    assert capture.activation is None and not layer._forward_hooks
