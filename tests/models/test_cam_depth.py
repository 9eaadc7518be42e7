"""Complete CAMs at every depth (issue 24): the contract, the frozen point, ties, pixels."""

import numpy as np
import pytest
import torch

from catviz import models
from catviz.methods import DEPTH_TITLES
from catviz.models.cam import class_activation_maps, route_max
from catviz.models.frozen import FrozenPoint

NAMES = models.list_models()
TINY = [n for n in NAMES if n.endswith("_tiny")]
FULL = [n for n in NAMES if not n.endswith("_tiny")]


def _model(name: str, num_classes: int = 3):
    torch.manual_seed(0)
    small = {} if name.endswith("_tiny") or name.startswith("baseline") else dict(fpn_channels=32, num_heads=4)
    model = models.create_model(name, num_classes=num_classes, **small).eval()
    with torch.no_grad():  # non-zero biases, BatchNorm statistics and LayerNorm scales everywhere
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.normal_(0, 0.2)
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
            elif isinstance(module, torch.nn.MultiheadAttention):
                module.in_proj_bias.normal_(0, 0.2)
                module.out_proj.bias.normal_(0, 0.2)
            elif isinstance(module, torch.nn.Linear | torch.nn.Conv2d) and module.bias is not None:
                module.bias.normal_(0, 0.2)
    return model


def _relative_error(result, level: str) -> float:
    """|mean(map) + offset - level logit| / max |level logit|, summed in float64."""
    got = result.maps[level].astype(np.float64).mean((2, 3)) + result.offsets[level]
    expected = result.level_logits[level].astype(np.float64)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def _check_contract(model, images, depth, labels=None):
    result = class_activation_maps(model, images, depth=depth, labels=labels)
    chosen = list(range(model.num_classes)) if labels is None else list(labels)
    with torch.no_grad():
        out = model(images)
    assert result.depth == depth
    for level in model.spec.levels:
        np.testing.assert_allclose(result.level_logits[level.name], out.level_logits[level.name][:, chosen].numpy(),
                                   rtol=1e-5, atol=1e-6)
        assert _relative_error(result, level.name) <= 1e-4, (level.name, depth)
        assert result.exact[level.name]
        parts = result.layer_share[level.name]
        np.testing.assert_allclose(sum(v.astype(np.float64) for v in parts.values()),
                                   result.level_logits[level.name], rtol=1e-4, atol=1e-4 * np.abs(
                                       result.level_logits[level.name]).max())
        paths = result.path_share[level.name]  # the path share: every route's parts, with the offset, sum to the logit
        assert set(level.sources) <= set(paths) <= {*level.sources, "fusion"}
        np.testing.assert_allclose(sum(v.astype(np.float64) for parts in paths.values() for v in parts.values())
                                   + result.offsets[level.name], result.level_logits[level.name], rtol=1e-4,
                                   atol=1e-4 * np.abs(result.level_logits[level.name]).max())
        if depth != model.spec.depths[0]:  # below the tokens the classifier's bias is the only offset
            bias = model.classifiers[level.name].bias.detach().numpy()[chosen]
            np.testing.assert_array_equal(result.offsets[level.name], np.broadcast_to(bias, (images.shape[0], len(chosen))))
            expected_grid = images.shape[-2:] if depth == "input" else min(
                (lv.grid(*images.shape[-2:]) for lv in model.spec.levels), key=lambda g: -g[0] * g[1])
            if depth == "s3":
                expected_grid = (-(-images.shape[-2] // 8), -(-images.shape[-1] // 8))
            assert result.maps[level.name].shape == (images.shape[0], len(chosen), *expected_grid)
    return result


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize(("batch", "size"), [(2, (64, 64)), (1, (100, 75))])  # odd, non-square: ceil grids
def test_every_depth_adds_up_for_every_tiny_variant(name, batch, size):
    model = _model(name)
    torch.manual_seed(1)
    images = torch.randn(batch, 3, *size)
    assert model.spec.depths[0] == "tokens" and model.spec.depths[-1] == "input"
    for depth in model.spec.depths:
        _check_contract(model, images, depth, labels=None if depth == "tokens" else [2, 0])


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL)
def test_every_depth_adds_up_for_every_full_size_variant(name):
    model = _model(name)  # the full backbone (ResNeXt50), 32 FPN channels to keep it quick
    torch.manual_seed(2)
    images = torch.randn(1, 3, 64, 96)
    for depth in model.spec.depths:
        _check_contract(model, images, depth, labels=[2])


def test_depths_are_the_same_names_for_both_models_where_they_mean_the_same():
    cat, baseline = _model("cat_tiny"), _model("baseline_tiny")
    assert cat.spec.depths == ("tokens", "fpn", "stages", "s3", "input")
    assert baseline.spec.depths == ("tokens", "s3", "input")
    assert set(cat.spec.depths) <= set(DEPTH_TITLES)


def test_an_unknown_depth_is_refused_naming_the_model_s_depths():
    with pytest.raises(ValueError, match="tokens, s3, input"):
        class_activation_maps(_model("baseline_tiny"), torch.randn(1, 3, 64, 64), depth="fpn")
    with pytest.raises(ValueError, match="out of range"):
        class_activation_maps(_model("cat_tiny"), torch.randn(1, 3, 64, 64), depth="input", labels=[3])


def test_a_subset_of_labels_gives_the_same_maps_as_all_labels():
    model = _model("cat_tiny")
    images = torch.randn(1, 3, 64, 64)
    for depth in ("tokens", "input"):
        every = class_activation_maps(model, images, depth=depth)
        one = class_activation_maps(model, images, depth=depth, labels=[2])
        assert one.labels == (2,)
        for level in every.maps:
            np.testing.assert_allclose(one.maps[level][:, 0], every.maps[level][:, 2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TINY)
def test_one_backward_for_the_summed_levels_gives_the_combined_map(name):
    """split_levels=False: one backward per label of the summed level logits gives the same
    combined map as one per level (the credit is linear in the gradient), at every depth."""
    model = _model(name)
    images = torch.randn(1, 3, 64, 48)
    for depth in model.spec.depths[1:]:
        every = class_activation_maps(model, images, depth=depth, labels=[1])
        summed = class_activation_maps(model, images, depth=depth, labels=[1], split_levels=False, path_share=False)
        assert summed.maps == {} and summed.layer_share == {} and summed.path_share == {}
        assert summed.exact == {"combined": True}
        np.testing.assert_allclose(summed.combined, every.combined, rtol=1e-4, atol=1e-5 * np.abs(every.combined).max())
        offsets = sum(summed.offsets.values())
        total = summed.combined.astype(np.float64).mean((2, 3)) + offsets
        np.testing.assert_allclose(total, summed.logits, rtol=1e-4, atol=1e-5)


def test_a_subset_of_levels_gives_those_levels_and_their_sum():
    model = _model("cat_tiny")
    images = torch.randn(1, 3, 64, 64)
    every = class_activation_maps(model, images, depth="input", labels=[0])
    p3 = class_activation_maps(model, images, depth="input", labels=[0], levels=["P3"])
    assert set(p3.maps) == {"P3"} and set(p3.path_share) == {"P3"} and set(p3.offsets) == {"P3"}
    np.testing.assert_allclose(p3.maps["P3"], every.maps["P3"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p3.combined, every.maps["P3"], rtol=1e-5, atol=1e-6)
    bare = class_activation_maps(model, images, depth="input", labels=[0], levels=["P3"], path_share=False)
    assert bare.path_share == {}
    np.testing.assert_allclose(bare.maps["P3"], every.maps["P3"], rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="P5, P4, P3"):
        class_activation_maps(model, images, depth="input", levels=["P2"])
    for wrong in ("P3", []):  # a string is not a list of levels; no level explains nothing
        with pytest.raises(ValueError, match="non-empty sequence"):
            class_activation_maps(model, images, depth="input", levels=wrong)
    twice = class_activation_maps(model, images, depth="input", labels=[0], levels=["P3", "P3"], split_levels=False)
    np.testing.assert_allclose(twice.combined, p3.combined, rtol=1e-4, atol=1e-5 * np.abs(p3.combined).max())


def test_a_stop_request_ends_the_maps_between_backward_passes():
    from catviz.models.attribution import Cancelled

    calls = []

    def stop_on_the_second_ask():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        class_activation_maps(_model("cat_tiny"), torch.randn(1, 3, 64, 64), depth="input", labels=[0],
                              should_stop=stop_on_the_second_ask)
    assert len(calls) == 2  # asked before each backward pass: the first ran, the second was not started


def test_the_frozen_point_leaves_the_forward_alone():
    model = _model("cat_mha_tiny")
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        before = model(images)
    with torch.no_grad(), FrozenPoint(model, skip=tuple(model.classifiers.values())):
        frozen = model(images)
    with torch.no_grad():
        after = model(images)
    torch.testing.assert_close(frozen.logits, before.logits, rtol=1e-5, atol=1e-5)  # same values, frozen gradients
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=0)  # hooks gone: the normal forward
    assert not any(m._forward_hooks for m in model.modules())


def test_input_maps_are_pixel_level_and_follow_the_input():
    model = _model("cat_tiny")
    torch.manual_seed(3)
    images = torch.randn(1, 3, 64, 64)
    first = class_activation_maps(model, images, depth="input", labels=[0]).maps["P3"][0, 0]
    block = first[:8, :8]  # one stride-8 cell of the finest level's grid
    assert np.unique(block).size > 32  # not constant within a stride block
    changed = images.clone()
    changed[..., 40:48, 16:24] = -changed[..., 40:48, 16:24]
    second = class_activation_maps(model, changed, depth="input", labels=[0]).maps["P3"][0, 0]
    diff = np.abs(second - first)
    assert np.all(diff[40:48, 16:24] > 0)  # every changed pixel's own term x · ∂logit/∂x changes
    assert diff[40:48, 16:24].mean() > 10 * np.median(diff)  # most so where the input changed


def test_a_tied_max_is_split_evenly_by_hand():
    upper = torch.tensor([[[1.0, 1.0, 0.0, 1.0], [0.0, 2.0, 2.0, -1.0]]])  # (B=1, C=2, N=4)
    credit = torch.tensor([[[3.0, 4.0]]])  # (B, R=1, C)
    expected = torch.tensor([[[1.0, 1.0 + 2.0, 2.0, 1.0]]])  # channel 0: 3/3 to 0, 1, 3; channel 1: 4/2 to 1, 2
    torch.testing.assert_close(route_max(upper, credit), expected)


def test_ties_on_a_uniform_image_are_split_as_torch_amax_derives():
    """cat_no_lrd_tiny, uniform 256² image: many P5 channels tie across positions. The routed
    credit equals gradient × input of Σ_c credit_c · amax_c (torch splits amax's derivative
    evenly among ties), an implementation that shares no code with route_max."""
    model = _model("cat_no_lrd_tiny")
    image = torch.full((1, 3, 256, 256), 0.5)
    with torch.no_grad():
        upper = model(image, return_features=True).features["P5"].flatten(2)  # (1, C, N)
    ties = (upper == upper.amax(-1, keepdim=True)).sum(-1)
    assert (ties > 1).sum() >= 4  # the case the rule is for
    credit = torch.randn(1, 2, upper.shape[1])
    leaf = upper.clone().requires_grad_()
    expected = torch.stack([(torch.autograd.grad((credit[0, r] * leaf.amax(-1)[0]).sum(), leaf)[0][0]
                             * upper[0]).sum(0) for r in range(2)])[None]
    routed = route_max(upper, credit * upper.amax(-1)[:, None])
    torch.testing.assert_close(routed, expected, rtol=1e-5, atol=1e-6)
    result = _check_contract(model, image, "tokens")  # and the maps still add up
    for depth in ("fpn", "input"):
        _check_contract(model, image, depth, labels=[0])
    share = result.layer_share["P4"]["P5"]
    assert np.isfinite(share).all()


def test_the_stem_max_pool_splits_a_tie_evenly_on_a_constant_image():
    """On a constant image every interior 3x3 window of the stem's max-pool ties. Inside the
    frozen point its derivative is split evenly among the tied positions: for a window whose
    positions all tie (not the -inf padding), that is average pooling's derivative
    (count_include_pad=False), an implementation that shares no code with the hook."""
    model = _model("cat_tiny")
    stem = model.backbone
    image = torch.full((1, 3, 64, 64), 0.3)
    taken = {}
    handle = stem.maxpool.register_forward_pre_hook(lambda m, args: taken.setdefault("x", args[0].detach()))
    with torch.no_grad():
        model(image)
    handle.remove()
    x = taken["x"].clone().requires_grad_()
    inner = x[..., 4:-4, 4:-4]  # away from the convolutions' zero padding
    assert (inner == inner[..., :1, :1]).all(), "the pool's input is constant inside"
    upstream = torch.rand(1, x.shape[1], *stem.maxpool(x).shape[-2:])
    with torch.enable_grad(), FrozenPoint(stem):
        (split,) = torch.autograd.grad((stem.maxpool(x) * upstream).sum(), x)
    (plain,) = torch.autograd.grad((stem.maxpool(x) * upstream).sum(), x)  # torch: the first index takes it
    pool = torch.nn.AvgPool2d(3, 2, 1, count_include_pad=False)
    (even,) = torch.autograd.grad((pool(x) * upstream).sum(), x)
    rows = cols = slice(6, -6)  # every window covering these positions lies in the constant part
    torch.testing.assert_close(split[..., rows, cols], even[..., rows, cols])
    assert not torch.allclose(plain[..., rows, cols], even[..., rows, cols])  # torch's rule differs
    torch.testing.assert_close(split.sum(), plain.sum())  # the same credit, placed differently
    for depth in ("s3", "input"):  # and the maps of a constant image still add up
        _check_contract(model, image, depth, labels=[1])


@pytest.mark.parametrize("name", ["cat_tiny", "cat_mha_tiny"])
def test_the_path_share_of_a_route_is_what_flows_through_it(name):
    """Each route's input part, computed backwards instead (an implementation sharing no code
    with the forward-mode one): the level logit's derivative at the route's FPN output, a,
    then the input's credit in Σ a · route (the route's own backward pass to the pixels).
    Its total is the route's layer share at the tokens, whatever the depth."""
    model = _model(name)
    torch.manual_seed(4)
    images = torch.randn(1, 3, 64, 96)
    label, level = 1, "P3"
    result = class_activation_maps(model, images, depth="input", labels=[label])
    stages = class_activation_maps(model, images, depth="stages", labels=[label])
    tokens = class_activation_maps(model, images, labels=[label])
    skip = tuple(model.classifiers.values())
    with torch.enable_grad(), FrozenPoint(model, skip=skip, cuts={"fpn": model.fpn}) as point:
        logit = model(images).level_logits[level][:, label].sum()
        derivatives = torch.autograd.grad(logit, point.cut_outputs["fpn"])
    _, names = model.route_taps()
    for i, route in enumerate(names):
        kept: dict = {}
        handle = model.fpn.register_forward_hook(lambda m, args, out, kept=kept: kept.setdefault("routes", out))
        with torch.enable_grad(), FrozenPoint(model, skip=skip):
            x = images.clone().requires_grad_()
            model(x)
            (grad,) = torch.autograd.grad((derivatives[i] * kept["routes"][i]).sum(), x)
        handle.remove()
        parts = result.path_share[level][route]
        np.testing.assert_allclose(parts["input"][0, 0], float((grad * images).sum()), rtol=1e-4, atol=1e-5)
        for other in (result, stages):
            total = sum(float(v[0, 0]) for v in other.path_share[level][route].values())
            np.testing.assert_allclose(total, tokens.layer_share[level][route][0, 0], rtol=1e-4, atol=1e-5)
    assert set(stages.path_share[level]["R5"]) == {"S5", "biases"}  # P5, hence R5, is computed from S5 alone
    assert set(stages.path_share[level]["P3"]) == {"S3", "S4", "S5", "biases"}
