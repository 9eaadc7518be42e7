"""The model contract, parametrized over every tiny variant in the registry."""

import pytest
import torch

from catviz import models

TINY = [n for n in models.list_models() if n.endswith("_tiny")]
SIZES = [(64, 64), (96, 128), (64, 96)]


def _model(name: str, num_classes: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    return models.create_model(name, num_classes=num_classes)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("size", SIZES)
def test_outputs_and_level_logits_sum_to_logits(name, size):
    model = _model(name).eval()
    out = model(torch.randn(2, 3, *size))
    assert out.logits.shape == (2, 5)
    expected_levels = ["S5"] if name.startswith("baseline") else ["P5", "P4", "P3"]
    assert list(out.level_logits) == expected_levels
    torch.testing.assert_close(sum(out.level_logits.values()), out.logits)
    assert out.attention is None and out.features is None


@pytest.mark.parametrize("name", TINY)
def test_a_gradient_reaches_every_parameter(name):
    model = _model(name).train()
    for module in model.modules():  # timm zero-inits each block's last BN: undo, or grads are 0
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    out = model(torch.randn(2, 3, 64, 64))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, torch.ones_like(out.logits))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("size", SIZES)
def test_attention_rows_sum_to_one_with_documented_shapes(name, size):
    model = _model(name).eval()
    out = model(torch.randn(2, 3, *size), return_attention=True, return_features=True)
    h5, w5 = size[0] // 32, size[1] // 32
    n5 = h5 * w5
    for key, weights in out.attention.items():
        assert weights.shape[:2] == (2, 8)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
        if key.startswith("lrd"):
            assert weights.shape[2:] == (n5, n5)
    if "clf.P3" in out.attention:
        queries = 1 if "mha" not in name else n5
        assert out.attention["clf.P4"].shape[2:] == (queries, n5 * 4)
        assert out.attention["clf.P3"].shape[2:] == (queries, n5 * 16)
    lrd_layers = 0 if ("no_lrd" in name or name.startswith(("fpn", "baseline"))) else 2
    assert sum(k.startswith("lrd") for k in out.attention) == lrd_layers


@pytest.mark.parametrize("name", TINY)
def test_fused_and_inspection_paths_give_the_same_logits(name):
    model = _model(name).eval()
    images = torch.randn(2, 3, 96, 128)
    fused = model(images)
    inspected = model(images, return_attention=True, return_features=True)
    torch.testing.assert_close(fused.logits, inspected.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["cat_tiny", "baseline_tiny"])
def test_same_seed_same_model_and_outputs(name):
    images = torch.randn(1, 3, 64, 64)
    a = _model(name, seed=3).eval()(images).logits
    b = _model(name, seed=3).eval()(images).logits
    c = _model(name, seed=4).eval()(images).logits
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pma_query_is_the_max_over_the_upper_levels_positions():
    model = _model("cat_tiny").eval()
    out = model(torch.randn(1, 3, 64, 96), return_features=True)
    r5 = out.features["P5"]
    torch.testing.assert_close(out.features["P4.query"][:, 0], r5.flatten(2).amax(-1))


def test_cat_differs_from_its_ablations_only_in_the_documented_modules():
    names = {n: {k.split(".")[0] for k, _ in _model(n).named_parameters()} for n in TINY}
    assert names["cat_tiny"] == {"backbone", "fpn", "lrd", "clf", "classifiers"}
    assert names["cat_no_lrd_tiny"] == {"backbone", "fpn", "clf", "classifiers"}
    assert names["cat_no_clf_tiny"] == {"backbone", "fpn", "lrd", "classifiers"}
    assert names["fpn_tiny"] == {"backbone", "fpn", "classifiers"}
    assert names["baseline_tiny"] == {"backbone", "classifiers"}


def test_explained_attention_is_the_modules_attention_with_its_values():
    torch.manual_seed(0)
    block = models.create_model("cat_tiny", num_classes=2).eval().clf["P3"]
    with torch.no_grad():
        block.attn.in_proj_bias.normal_()
    query, context = torch.randn(2, 3, 64), torch.randn(2, 40, 64)
    out, weights, values = block.attend_explained(query, context)
    ref_out, ref_weights = block.attend(query, context, need_weights=True)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    w_v, b_v = block.attn.in_proj_weight.chunk(3)[2], block.attn.in_proj_bias.chunk(3)[2]
    torch.testing.assert_close(values, (context @ w_v.T + b_v).unflatten(-1, (8, 8)).transpose(1, 2))
