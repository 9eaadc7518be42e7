"""Models describe themselves: ``model.spec`` and ``model.target_layers()`` across the registry."""

import dataclasses

import pytest
import torch

from catviz import models

NAMES = models.list_models()
TINY = [n for n in NAMES if n.endswith("_tiny")]

# (kind, sources) per level, coarse first: what each variant is by the paper's Table 3.
EXPECTED = {
    "baseline": {"S5": ("gap", ("S5",))},
    "fpn": {"P5": ("gap", ("P5",)), "P4": ("gap", ("P4",)), "P3": ("gap", ("P3",))},
    "cat_no_clf": {"P5": ("gap", ("R5",)), "P4": ("gap", ("P4",)), "P3": ("gap", ("P3",))},
    "cat_no_lrd": {"P5": ("gap", ("P5",)), "P4": ("pma", ("P5", "P4")), "P3": ("pma", ("P5", "P4", "P3"))},
    "cat_mha": {"P5": ("gap", ("R5",)), "P4": ("mha", ("R5", "P4")), "P3": ("mha", ("R5", "P4", "P3"))},
    "cat": {"P5": ("gap", ("R5",)), "P4": ("pma", ("R5", "P4")), "P3": ("pma", ("R5", "P4", "P3"))},
}


def _model(name: str):
    torch.manual_seed(0)
    small = {} if name.endswith("_tiny") or name.startswith("baseline") else dict(fpn_channels=32, num_heads=4)
    return models.create_model(name, num_classes=3, **small).eval()


@pytest.mark.parametrize("name", NAMES)
def test_spec_states_levels_kinds_and_sources(name):
    spec = _model(name).spec
    expected = EXPECTED[name.removesuffix("_tiny")]
    assert spec.level_names == tuple(expected)
    assert {lvl.name: (lvl.kind, lvl.sources) for lvl in spec.levels} == expected
    assert spec.role == ("baseline" if name.startswith("baseline") else "cat")
    assert spec.clf == {"cat_mha": "mha", "cat": "pma", "cat_no_lrd": "pma"}.get(name.removesuffix("_tiny"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.role = "x"
    assert hash(spec) == hash(_model(name).spec)


@pytest.mark.parametrize("name", TINY + ["cat", "cat_mha"])
@pytest.mark.parametrize("size", [(64, 96), (96, 64), (100, 75)])
def test_spec_matches_what_the_forward_pass_returns(name, size):
    model = _model(name)
    spec = model.spec
    out = model(torch.randn(1, 3, *size), return_attention=True, return_features=True)
    assert tuple(out.level_logits) == spec.level_names
    assert tuple(out.attention) == spec.attention_keys
    assert sum(k.startswith("lrd.") for k in spec.attention_keys) == spec.lrd_layers
    assert {w.shape[1] for w in out.attention.values()} == ({spec.num_heads} if spec.attention_keys else set())
    assert (spec.num_heads == 0) == (not spec.attention_keys)
    for level in spec.levels:
        # The explanation grid of a level is the input divided by its stride.
        grid = out.features[level.name if level.kind == "gap" else f"{level.name}.context"].shape[-2:]
        assert tuple(grid) == level.grid(*size)


@pytest.mark.parametrize("name", TINY)
def test_target_layers_are_the_models_own_answer_one_per_level(name):
    model = _model(name)
    layers = model.target_layers()
    assert tuple(layers) == model.spec.level_names
    grids = {}
    handles = [m.register_forward_hook(lambda m, i, o, k=k: grids.__setitem__(k, o.shape[-2:]))
               for k, m in layers.items()]
    try:
        model(torch.randn(1, 3, 64, 96))
    finally:
        for handle in handles:
            handle.remove()
    for level in model.spec.levels:
        assert tuple(grids[level.name]) == (64 // level.stride, 96 // level.stride)


def test_heads_and_layers_follow_the_constructor():
    spec = models.create_model("cat_tiny", num_classes=2, num_heads=4, lrd_layers=3).spec
    assert spec.num_heads == 4 and spec.lrd_layers == 3
    assert spec.attention_keys == ("lrd.0", "lrd.1", "lrd.2", "clf.P4", "clf.P3")
    assert models.create_model("fpn_tiny", num_classes=2).spec.num_heads == 0
    with pytest.raises(KeyError, match="P5, P4, P3"):
        spec.level("S5")
