"""Weight decay groups: every parameter decays by default (the paper), biases and norms opt-out."""

import pytest
import torch
from torch import nn

from catviz.train_cli.config import TrainConfig, resolve_config
from catviz.train_cli.train import param_groups


def small_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4 * 6 * 6), nn.Linear(144, 2))
    for p in model.parameters():  # non-zero everywhere (norm biases start at 0, which decay leaves at 0)
        nn.init.uniform_(p, 0.5, 1.0)
    return model


def decayed_after_one_step(model: nn.Module, groups: list[dict]) -> dict[str, bool]:
    """Which parameters an SGD step with zero gradients changes (only weight decay moves them)."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    torch.optim.SGD(groups, lr=0.1, weight_decay=0.1).step()
    return {name: not torch.equal(before[name], p) for name, p in model.named_parameters()}


def test_default_decays_every_parameter_including_biases_and_norms():
    model = small_model()
    groups = param_groups(model)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(decayed_after_one_step(model, groups).values())


def test_opt_out_exempts_exactly_biases_and_norm_weights():
    model = small_model()
    moved = decayed_after_one_step(model, param_groups(model, decay_bias_norm=False))
    for name, p in model.named_parameters():
        assert moved[name] == (p.ndim > 1), name
    assert not moved["1.weight"] and not moved["3.weight"] and not moved["0.bias"] and moved["0.weight"]


def test_the_paper_recipe_decays_every_parameter_and_crops_multiscale():
    assert TrainConfig().decay_bias_norm is True and TrainConfig().crop == "multiscale"


@pytest.mark.parametrize(("argv", "decay_bias_norm", "crop"), [
    ([], True, "multiscale"),  # the demo preset: the paper's recipe, scaled
    (["--decay-bias-norm", "--crop", "multiscale"], True, "multiscale"),
    (["--no-decay-bias-norm", "--crop", "plain"], False, "plain"),
])
def test_flags_override_the_preset(argv, decay_bias_norm, crop):
    cfg = resolve_config(["--dataset", "demo", *argv])
    assert (cfg.decay_bias_norm, cfg.crop) == (decay_bias_norm, crop)
