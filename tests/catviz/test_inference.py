"""The app's model side (no Qt): results as numpy, every attribution method, rollout."""

import copy
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from catviz.inference import load_model, relative_auc, run_attribution, run_deletion_auc, run_model
from catviz.methods import grad_cam_methods
from catviz.models.attribution import Cancelled
from catviz.models.faithfulness import deletion_auc
from catviz.models.preprocess import preprocess
from catviz.results import attention_rollout

from .conftest import make_checkpoint

IMAGE = np.random.default_rng(0).integers(0, 255, (100, 130, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def loaded(checkpoints):
    return {role: load_model(path, torch.device("cpu")) for role, path in checkpoints.items()}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A CAT at 32 px input: attributions (a forward per channel or patch) stay quick."""
    path = make_checkpoint(tmp_path_factory.mktemp("small") / "cat32.safetensors", "cat_tiny", input_size=32)
    return load_model(path, torch.device("cpu"))


def test_run_model_returns_numpy_outputs_cams_and_attention_grids(loaded):
    cat = run_model(loaded["cat"], IMAGE)
    spec = loaded["cat"].spec
    assert cat.probabilities.shape == (5,) and ((0 <= cat.probabilities) & (cat.probabilities <= 1)).all()
    np.testing.assert_allclose(
        1 / (1 + np.exp(-sum(cat.level_logits.values()))), cat.probabilities, rtol=1e-5)
    assert set(cat.grids) == set(spec.level_names)
    for level in spec.levels:  # the grids follow the spec's strides at the checkpoint's input size
        assert cat.grids[level.name] == (-(-96 // level.stride),) * 2
    coarse = spec.levels[0].name
    n = cat.grids[coarse][0] * cat.grids[coarse][1]
    assert cat.attention["lrd.0"].shape == (spec.num_heads, n, n)
    for key in spec.attention_keys:
        if key.startswith("clf."):
            assert cat.attention[key].shape == (spec.num_heads, *cat.grids[key[4:]])
    finest = min(spec.levels, key=lambda level: level.stride).name
    assert cat.cams[finest].shape == (5, *cat.grids[finest]) == cat.combined_cam.shape
    assert cat.rollout.shape == (n, n)  # computed off the GUI thread (its values: the uniform-attention test)
    base = run_model(loaded["baseline"], IMAGE)
    assert set(base.cams) == set(loaded["baseline"].spec.level_names) and base.attention == {}
    assert base.rollout is None


def test_run_model_rolls_out_every_lrd_layer_with_the_residual(loaded):
    """With its query and key projections zeroed, every LRD head attends uniformly: each
    layer's weights are J/N (J all ones). With the residual, a layer is A = (I + J/N) / 2;
    J/N is idempotent, so A^L = (I + (2^L - 1) J/N) / 2^L: the rollout of L layers keeps
    2^-L of each token on itself and spreads the rest evenly over all N."""
    uniform = copy.deepcopy(loaded["cat"].model)
    for block in uniform.lrd:
        dim = block.attn.embed_dim
        with torch.no_grad():
            block.attn.in_proj_weight[: 2 * dim].zero_()  # q and k
            block.attn.in_proj_bias[: 2 * dim].zero_()
    result = run_model(dataclasses.replace(loaded["cat"], model=uniform), IMAGE)
    layers = loaded["cat"].spec.lrd_layers
    n = result.rollout.shape[0]
    assert layers == 2 and n == len(result.attention["lrd.0"][0])
    np.testing.assert_allclose(result.attention["lrd.0"], 1 / n, rtol=1e-5)  # the premise: uniform attention
    expected = np.eye(n) / 2**layers + (1 - 1 / 2**layers) / n  # 1/4 on the diagonal, 3/(4N) everywhere
    np.testing.assert_allclose(result.rollout, expected, rtol=1e-5, atol=1e-7)


def test_roles_come_from_the_checkpoint(loaded):
    assert loaded["baseline"].role == "baseline" and loaded["cat"].role == "cat"


@pytest.mark.parametrize("method", [m for m in grad_cam_methods() if m != "ScoreCAM"])
@pytest.mark.parametrize("role", ["cat", "baseline"])
def test_every_offered_grad_cam_method_runs_at_every_level(loaded, method, role):
    for level in loaded[role].spec.level_names:
        heat = run_attribution(loaded[role], IMAGE, 2, level, method)
        assert heat.shape == (96, 96)
        assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def test_score_cam_reports_progress_can_be_cancelled_and_prints_nothing(small, capfd):
    level = small.spec.level_names[-1]
    fractions = []
    heat = run_attribution(small, IMAGE, 1, level, "ScoreCAM", progress=fractions.append)
    assert heat.shape == (32, 32) and np.isfinite(heat).all()
    assert fractions and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert "it/s" not in capfd.readouterr().err  # grad-cam's tqdm bar does not reach the terminal
    polls = []

    def stop_on_third_poll() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(Cancelled):
        run_attribution(small, IMAGE, 1, level, "ScoreCAM", should_stop=stop_on_third_poll)
    assert len(polls) == 3  # it stopped at once


@pytest.mark.parametrize("method", ["Integrated Gradients", "Occlusion"])
def test_input_attributions_report_progress_and_stop_when_asked(small, method):
    fractions = []
    with pytest.raises(Cancelled):  # stop as soon as the first chunk reported progress
        run_attribution(small, IMAGE, 0, small.spec.level_names[-1], method,
                        progress=fractions.append, should_stop=lambda: bool(fractions))
    assert len(fractions) == 1 and 0 < fractions[0] < 1


def test_a_label_out_of_range_is_a_clear_error(loaded):
    with pytest.raises(ValueError, match="out of range"):
        run_attribution(loaded["cat"], IMAGE, 5, loaded["cat"].spec.level_names[0], "GradCAM")


def test_attention_rollout_by_hand_on_two_tokens():
    """rollout[i, j]: the share of token j (at the input) in token i after the last layer.

    Layer 0: both tokens attend to token 0 (heads [[1, 0], [1, 0]] and the same). With the
    residual (half the attention, half the token itself) token 0 stays token 0 and token 1
    becomes half token 0, half token 1.
    Layer 1: two heads, one attending to token 0, one to token 1: the mean is [[.5, .5],
    [.5, .5]]; with the residual, token 0 takes 3/4 of itself and 1/4 of token 1, token 1
    takes 1/4 of token 0 and 3/4 of itself. So, over the input:
    token 0 = 3/4 (token 0) + 1/4 (1/2, 1/2) = (7/8, 1/8);
    token 1 = 1/4 (token 0) + 3/4 (1/2, 1/2) = (5/8, 3/8).
    """
    to_first = np.array([[[1.0, 0.0], [1.0, 0.0]]] * 2)
    split = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    np.testing.assert_allclose(attention_rollout([to_first, split]), [[7 / 8, 1 / 8], [5 / 8, 3 / 8]])
    # the other order: layer 1 first mixes both tokens 3/4 + 1/4, then layer 0 leaves token 0
    # as it is and makes token 1 half token 0, half itself: (3/4, 1/4), then
    # 1/2 (3/4, 1/4) + 1/2 (1/4, 3/4) = (1/2, 1/2)
    np.testing.assert_allclose(attention_rollout([split, to_first]), [[3 / 4, 1 / 4], [1 / 2, 1 / 2]])
    # weights whose rows do not sum to 1 (e.g. masked): A + I is renormalised per row:
    # [[2, 0], [2, 0]] / 2 + I / 2 = [[1.5, 0], [1, .5]] → [[1, 0], [2/3, 1/3]]
    np.testing.assert_allclose(attention_rollout([np.array([[[2.0, 0.0], [2.0, 0.0]]])]), [[1, 0], [2 / 3, 1 / 3]])


class _LessSure(nn.Module):
    """``inner``'s model, its probabilities times ``factor``: the same deletion curve, scaled."""

    def __init__(self, inner: nn.Module, factor: float):
        super().__init__()
        self.inner, self.factor, self.num_classes = inner, factor, inner.num_classes

    def forward(self, images):
        return SimpleNamespace(logits=torch.logit(torch.sigmoid(self.inner(images).logits) * self.factor))


def test_deletion_auc_is_relative_to_the_intact_probability_so_models_compare(loaded):
    sure = loaded["cat"]
    unsure = dataclasses.replace(sure, model=_LessSure(sure.model, 0.5).eval())
    saliency = np.random.default_rng(1).random((12, 12))
    relative = [run_deletion_auc(m, IMAGE, 2, saliency) for m in (sure, unsure)]
    assert relative[0] == pytest.approx(relative[1], rel=1e-4)  # same curve shape: the same score
    meta = sure.meta
    tensor = preprocess(IMAGE, meta.input_size, meta.mean, meta.std)
    raw = [deletion_auc(m.model, tensor, 2, saliency) for m in (sure, unsure)]
    assert raw[1] == pytest.approx(raw[0] / 2, rel=1e-4)  # the raw areas do not compare
    with torch.no_grad():
        start = float(torch.sigmoid(sure.model(tensor).logits[0, 2]))
    assert relative[0] <= raw[0] / start + 1e-6  # each step's share, capped at 1
    assert [score.raw for score in relative] == pytest.approx(raw, rel=1e-4)


def test_relative_auc_of_a_curve_is_its_area_over_its_start():
    assert relative_auc(np.array([0.5, 0.25, 0.0])) == pytest.approx(0.5)
    assert relative_auc(np.array([0.2, 0.4, 0.1])) == pytest.approx(0.875)  # a rise counts as keeping it all
    with pytest.raises(ValueError, match="nothing to delete"):
        relative_auc(np.array([0.0, 0.0]))
