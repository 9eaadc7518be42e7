"""The app's model side (no Qt): results as numpy, every attribution method, rollout."""

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
    layers = [cat.attention[f"lrd.{i}"] for i in range(spec.lrd_layers)]
    np.testing.assert_allclose(cat.rollout, attention_rollout(layers), rtol=1e-6)  # computed off the GUI thread
    base = run_model(loaded["baseline"], IMAGE)
    assert set(base.cams) == set(loaded["baseline"].spec.level_names) and base.attention == {}
    assert base.rollout is None


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


def test_attention_rollout_is_a_row_stochastic_product():
    rng = np.random.default_rng(0)
    layers = [rng.random((8, 6, 6)) for _ in range(2)]
    layers = [w / w.sum(-1, keepdims=True) for w in layers]
    rollout = attention_rollout(layers)
    np.testing.assert_allclose(rollout.sum(-1), 1.0)
    a = [0.5 * w.mean(0) + 0.5 * np.eye(6) for w in layers]
    np.testing.assert_allclose(rollout, a[1] @ a[0])


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
