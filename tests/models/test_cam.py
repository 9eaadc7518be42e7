import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.image import scale_cam_image

from catviz import models
from catviz.models.attention import AttentionBlock
from catviz.models.cam import (
    EXPLANATION_MARKDOWN,
    ActivationCapture,
    _spread,
    class_activation_maps,
    grad_cam,
    gradient_maps,
)

NAMES = models.list_models()
TINY = [n for n in NAMES if n.endswith("_tiny")]
SIZES = [(96, 128), (100, 75)]  # the second: odd, non-square, grids not multiples of each other


def _model(name: str, num_classes: int = 4):
    torch.manual_seed(0)
    small = {} if name.endswith("_tiny") or name.startswith("baseline") else dict(fpn_channels=32, num_heads=4)
    return models.create_model(name, num_classes=num_classes, **small).eval()


def _block_biases(model):
    """Every bias and LayerNorm shift inside the LRD and CLF attention blocks."""
    blocks = [m for m in model.modules() if isinstance(m, AttentionBlock)]
    return [
        p
        for b in blocks
        for p in (b.attn.in_proj_bias, b.attn.out_proj.bias, b.ffn[0].bias, b.ffn[3].bias, b.norm1.bias, b.norm2.bias)
    ]


def _close(actual, expected):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", SIZES)
def test_complete_cams_add_up_to_every_level_logit(name, size):
    model = _model(name, num_classes=4 if name.endswith("_tiny") else 3)
    torch.manual_seed(1)
    with torch.no_grad():  # non-zero biases and LayerNorm shapes everywhere (torch inits many at 0/1)
        for p in _block_biases(model):
            p.normal_(0, 0.2)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
    spec = model.spec
    result = class_activation_maps(model, torch.randn(2, 3, *size))
    assert tuple(result.maps) == spec.level_names and all(result.exact.values())
    for level in spec.levels:
        maps = result.maps[level.name]
        assert maps.shape == (2, model.num_classes, *level.grid(*size))
        _close(maps.mean((2, 3)) + result.offsets[level.name], result.level_logits[level.name])
        share = result.layer_share[level.name]
        assert tuple(share) == (*level.sources, "offset")
        _close(sum(share.values()), result.level_logits[level.name])
        assert all(np.abs(v).max() > 0 for v in share.values())
        if level.kind == "gap":
            np.testing.assert_array_equal(result.offsets[level.name], np.broadcast_to(
                model.classifiers[level.name].bias.detach().numpy(), (2, model.num_classes)))
    finest = min(spec.levels, key=lambda level: level.stride)
    assert result.combined.shape[-2:] == finest.grid(*size)
    _close(result.combined.mean((2, 3)) + sum(result.offsets.values()), result.logits)


@pytest.mark.parametrize("name", [n for n in TINY if not n.startswith(("baseline", "fpn"))] + ["cat"])
def test_without_block_biases_the_offsets_are_the_classifiers_bias(name):
    model = _model(name)
    with torch.no_grad():
        for p in _block_biases(model):
            p.zero_()
    result = class_activation_maps(model, torch.randn(2, 3, 96, 64))
    for level, classifier in model.classifiers.items():
        bias = np.broadcast_to(classifier.bias.detach().numpy(), (2, 4))
        np.testing.assert_array_equal(result.offsets[level], bias)
        np.testing.assert_array_equal(result.layer_share[level]["offset"], bias)
        _close(result.maps[level].mean((2, 3)), result.level_logits[level] - bias)


@pytest.mark.parametrize("name", ["cat_tiny", "cat_mha_tiny"])
def test_each_image_of_a_batch_is_explained_on_its_own(name):
    model = _model(name)
    images = torch.randn(2, 3, 64, 96)
    both = class_activation_maps(model, images)
    second = class_activation_maps(model, images[1:])
    for level in both.maps:
        np.testing.assert_allclose(both.maps[level][1:], second.maps[level], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(both.offsets[level][1:], second.offsets[level], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("coarse", "fine", "ratio"), [((3, 2), (12, 8), 4), ((7, 5), (13, 10), 2),
                                                     ((4, 3), (13, 10), 4), ((3, 3), (4, 5), 2)])
def test_spreading_a_coarse_grid_keeps_its_total_and_its_cells(coarse, fine, ratio):
    # The last case is no ceil-chain (3 cells cannot come from 4 at stride 2): proportional fallback.
    shares = torch.randn(2, 3, *coarse)
    spread = _spread(shares, fine, ratio)
    assert spread.shape == (2, 3, *fine)
    torch.testing.assert_close(spread.mean((2, 3)), shares.sum((2, 3)))
    assert len(spread[0, 0].unique()) == coarse[0] * coarse[1]  # every coarse cell lands somewhere


def test_cams_reuse_a_forward_pass_given_to_them():
    model = _model("cat_tiny")
    images = torch.randn(1, 3, 64, 64)
    out = model(images, return_features=True)
    again = class_activation_maps(model, images * 0, out)  # the images are not run again
    np.testing.assert_array_equal(again.logits, out.logits.detach().numpy())


def test_explanation_text_is_there_for_the_app():
    assert "offset" in EXPLANATION_MARKDOWN and "LayerNorm" in EXPLANATION_MARKDOWN


def test_cams_refuse_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        class_activation_maps(_model("cat_tiny").train(), torch.randn(1, 3, 64, 64))


def test_grad_cam_refuses_training_mode_and_bad_labels_and_levels():
    model = _model("cat_tiny").train()
    with pytest.raises(ValueError, match="eval mode"):
        grad_cam(model, torch.randn(1, 3, 64, 64), label=0, level="P3")
    assert model.training  # not switched behind the caller's back
    model.eval()
    for label, message in ((4, "out of range"), (-1, "out of range"), (1.0, "integer"), (True, "integer")):
        with pytest.raises(ValueError, match=message):
            grad_cam(model, torch.randn(1, 3, 64, 64), label=label, level="P3")
    with pytest.raises(ValueError, match="P5, P4, P3"):
        grad_cam(model, torch.randn(1, 3, 64, 64), label=0, level="S5")


def test_grad_cam_releases_its_hooks_even_on_error():
    model = _model("cat_tiny")
    layer = model.target_layers()["P3"]

    def failing_target(output):
        raise IndexError("boom")  # grad-cam's own __exit__ would swallow this and return None

    with pytest.raises(IndexError, match="boom"):
        grad_cam(model, torch.randn(1, 3, 64, 64), label=0, level="P3",
                 method=lambda **kw: _FailingCAM(failing_target, **kw))
    assert not layer._forward_hooks


class _FailingCAM(GradCAM):
    def __init__(self, target, **kwargs):
        super().__init__(**kwargs)
        self._target = target

    def __call__(self, input_tensor, targets):
        return super().__call__(input_tensor, [self._target] * len(targets))


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
