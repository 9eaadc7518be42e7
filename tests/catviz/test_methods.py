"""The map-method registry: every registered method's maps are what its record declares, and
every reader (the CAM view's menu, ``catviz export --method``, ``catviz-eval --faithfulness``)
offers exactly the registered set, a newly registered method included."""

import numpy as np
import pytest
import torch

from catviz import app, faithfulness, methods
from catviz.explain import MapRequest, cam_path_share, compute_map
from catviz.methods import (
    CAM,
    EXPENSIVE,
    METHODS,
    DeletionScore,
    MapMethod,
    method_info,
    register_method,
)
from catviz.models import create_model
from catviz.models.attribution import black_baseline
from catviz.models.cam import class_activation_maps
from catviz.qt_cam_view import QtCamView
from catviz.state import AppState

#: What users see today, written out by hand: the menu in order, and the faithfulness keys.
MENU = ["CAM", "GradCAM", "GradCAM++", "XGradCAM", "EigenCAM", "ScoreCAM", "LayerCAM", "HiResCAM",
        "Integrated Gradients", "Occlusion"]
DEFAULT_KEYS = ["cam", "gradcam", "gradcam++", "eigencam", "scorecam", "ig", "occlusion"]
SIZE = 64


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    image = torch.randn(1, 3, SIZE, SIZE)
    return {name: create_model(name, num_classes=3).eval() for name in ("baseline_tiny", "cat_tiny")}, image


def _map(name, model, image, label, level=None):
    request = MapRequest(black_baseline((0.5,) * 3, (0.25,) * 3), n_steps=4)
    return compute_map(name, model, image, label, level, request)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if m.cost == EXPENSIVE else n
                                  for n, m in METHODS.items()])  # expensive: ~10 s each on 2 cores
@pytest.mark.parametrize("model_name", ["baseline_tiny", "cat_tiny"])
def test_each_method_gives_maps_as_its_record_declares(tiny, name, model_name):
    """Shape (input size), sign (signed: both signs over three labels of a random model; else
    min-max in [0, 1]),
    label dependence, and whether the level matters, each measured on the maps themselves."""
    models, image = tiny
    model, info = models[model_name], method_info(name)
    first, second, third = (_map(name, model, image, label) for label in range(3))
    assert first.shape == (SIZE, SIZE) and np.isfinite(first).all()
    values = np.stack([first, second, third])
    if info.signed:  # logit units: some label's map takes something away somewhere
        assert values.min() < 0 < values.max()
    else:
        assert values.min() >= 0 and values.max() <= 1 + 1e-6
    assert np.allclose(first, second) == info.label_independent
    levels = model.spec.level_names
    if len(levels) > 1:  # the coarsest and the finest level's maps differ only for a layered method
        coarse, fine = _map(name, model, image, 0, levels[0]), _map(name, model, image, 0, levels[-1])
        assert (not np.allclose(coarse, fine)) == info.layered


def test_the_menu_export_and_faithfulness_offer_exactly_the_registered_methods(qtbot):
    view = QtCamView(AppState())
    qtbot.addWidget(view)
    menu = [view.method.itemText(i) for i in range(view.method.count())]
    kept = [view.method.itemData(i) for i in range(view.method.count())]
    assert menu == MENU and kept == list(METHODS)
    export = next(a for a in app.build_export_parser()._actions if a.dest == "method")
    assert list(export.choices) == list(METHODS) and export.default == CAM
    parser = faithfulness.build_parser()
    assert parser.parse_args(["--faithfulness"]).methods == ",".join(DEFAULT_KEYS)
    assert set(faithfulness.method_keys()) == {m.key for m in METHODS.values()}
    assert faithfulness.method_keys()["cam"] == "complete CAM"  # the table's name, as before


def test_costs_and_scales_are_declared():
    assert {m.name for m in METHODS.values() if m.cost == EXPENSIVE} == {"ScoreCAM", "Integrated Gradients",
                                                                           "Occlusion"}
    assert method_info("Integrated Gradients").scale_percentile == 99.0 and method_info(CAM).units


def _dummy(method, model, image, label, level, request):
    """A registered method's runner: the label's index everywhere."""
    return np.full(tuple(image.shape[-2:]), float(label), np.float32)


@pytest.fixture
def dummy():
    method = register_method(MapMethod(
        "Dummy", "dummy", "Dummy map", True, "label index", False, f"{__name__}:_dummy", note="for tests"))
    yield method
    del METHODS[method.name]


def test_a_registered_method_appears_in_the_menu_the_export_and_faithfulness(qtbot, tiny, dummy):
    view = QtCamView(AppState())
    qtbot.addWidget(view)
    assert view.method.itemText(view.method.count() - 1) == "Dummy"
    assert app.build_export_parser().parse_args(["--out", "f.png", "--method", "Dummy"]).method == "Dummy"
    args = faithfulness.build_parser().parse_args(["--faithfulness", "--methods", "dummy,cam"])
    assert faithfulness.check_arguments(args).methods == ["dummy", "cam"]
    assert "dummy (Dummy)" in faithfulness.build_parser().format_help().replace("\n", " ")
    models, image = tiny
    model = models["cat_tiny"]
    explainer = faithfulness.Explainer(model, type("Meta", (), {"mean": (0.5,) * 3, "std": (0.25,) * 3})(), 4)
    maps = explainer.maps(image, [0, 2], ["dummy"])
    assert [m.max() for m in maps["dummy"]] == [0.0, 2.0]  # its runner ran, once per label


def test_the_registry_refuses_a_second_method_of_the_same_name_or_key_and_names_those_offered(dummy):
    with pytest.raises(ValueError, match="registered already"):
        register_method(MapMethod("Other", "dummy", "Other", True, "u", False, f"{__name__}:_dummy"))
    with pytest.raises(ValueError, match="registered already"):
        register_method(MapMethod("Dummy", "other", "Other", True, "u", False, f"{__name__}:_dummy"))
    with pytest.raises(ValueError, match="cost"):
        MapMethod("Other", "other", "Other", True, "u", False, f"{__name__}:_dummy", cost="free")
    with pytest.raises(ValueError, match="offered: CAM, GradCAM"):
        method_info("GuidedBackprop")
    assert methods.method_by_key("dummy") is dummy


def test_a_deletion_score_is_the_relative_number_and_keeps_the_raw_area():
    score = DeletionScore(0.45, 0.235)
    assert score == 0.45 and f"{score:.3f}" == "0.450" and 0 <= score <= 1
    assert score.raw == 0.235


def test_integrated_gradients_carries_captum_s_completeness_delta(tiny):
    """The map's sum misses logit(image) - logit(black) by exactly the delta it carries (Captum's)."""
    models, image = tiny
    model = models["baseline_tiny"]
    reference = black_baseline((0.5,) * 3, (0.25,) * 3)
    heat = compute_map("Integrated Gradients", model, image, 1, None, MapRequest(reference, n_steps=4))
    with torch.no_grad():
        gain = float(model(image).logits[0, 1] - model(reference.expand_as(image)).logits[0, 1])
    assert heat.convergence_delta == pytest.approx(float(heat.sum()) - gain, rel=1e-3, abs=1e-4)
    assert heat[:2].convergence_delta is None  # a derived array carries no note


def test_the_complete_cam_s_path_share_below_the_tokens_sums_to_each_level_logit(tiny):
    """Per level, the routes' parts and the offset sum to the level logit (the chart's rows)."""
    models, image = tiny
    for name, model in models.items():
        paths = cam_path_share(model, image, 2, "input")
        with torch.no_grad():
            logits = model(image).level_logits
        assert set(paths) == set(logits)
        for level, routes in paths.items():
            assert set(model.spec.level(level).sources) <= set(routes) and "offset" in routes
            total = sum(v for parts in routes.values() for v in parts.values())
            assert total == pytest.approx(float(logits[level][0, 2]), rel=1e-4, abs=1e-5), (name, level)


def test_the_shown_complete_cam_is_the_sum_of_the_levels_maps(tiny):
    """The map the app shows (one backward for the summed levels) is the per-level maps' sum,
    and one level's map is that level's, both at the input's size."""
    models, image = tiny
    model = models["cat_tiny"]
    every = class_activation_maps(model, image, depth="input", labels=[2])
    shown = compute_map(CAM, model, image, 2, None, MapRequest(depth="input"))
    np.testing.assert_allclose(shown, every.combined[0, 0], rtol=1e-4, atol=1e-5 * np.abs(every.combined).max())
    p4 = compute_map(CAM, model, image, 2, "P4", MapRequest(depth="input"))
    np.testing.assert_allclose(p4, every.maps["P4"][0, 0], rtol=1e-4, atol=1e-5 * np.abs(every.maps["P4"]).max())
