"""The CAM tab states each map's evidence totals, what opacity hides, and where the models differ."""

from __future__ import annotations

import re

import numpy as np
import pytest

from catviz.qt_cam_view import QtCamView
from catviz.render import cam_map
from catviz.state import ATTRIBUTION

from .conftest import write_good_images
from .test_views import fill, show

NUMBER = r"([+−]\d+\.\d\d)"


def number(text: str) -> float:
    return float(text.replace("−", "-"))


def totals_of(title: str) -> tuple[float, float, float]:
    """(positive, negative, net) as a panel's title writes them: "+0.41 −1.54 = net −1.13"."""
    match = re.search(rf"{NUMBER} {NUMBER} = net {NUMBER}", title)
    assert match, title
    return tuple(number(g) for g in match.groups())


def identity_of(title: str) -> tuple[float, float]:
    """(logit, offset) from "= logit −1.58 − offset −0.45"."""
    match = re.search(rf"= logit {NUMBER} − offset {NUMBER}", title)
    assert match, title
    return number(match.group(1)), number(match.group(2))


def expected_totals(heat: np.ndarray) -> tuple[float, float]:
    """Positive and negative evidence, each cell's value over the cell count (written out here)."""
    heat = heat.astype(np.float64)
    return float(np.clip(heat, 0, None).sum() / heat.size), float(np.clip(heat, None, 0).sum() / heat.size)


def test_every_complete_map_states_its_totals_and_net_as_logit_minus_offset(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state

    view = show(qtbot, QtCamView(state), (1100, 800))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    label = state.class_names.index(state.shown_label())
    for role, panel in view.panels.items():
        result = state.result(role)
        positive, negative, net = totals_of(panel.title.text)
        want = expected_totals(cam_map(result, label))
        assert (positive, negative) == pytest.approx(want, abs=0.006)
        logit, offset = identity_of(panel.title.text)
        assert logit == pytest.approx(sum(float(v[label]) for v in result.level_logits.values()), abs=0.006)
        assert offset == pytest.approx(sum(float(v[label]) for v in result.offsets.values()), abs=0.006)
        assert net == pytest.approx(logit - offset, abs=0.011)
    cat = state.result("cat")
    for level, panel in view.level_panels.items():
        positive, negative, net = totals_of(panel.title.text)
        assert (positive, negative) == pytest.approx(expected_totals(cat.cams[level][label]), abs=0.006)
        assert net == pytest.approx(float(cat.level_logits[level][label] - cat.offsets[level][label]), abs=0.011)
        assert "offset" in panel.title.toolTip() and "cells" in panel.title.toolTip()

    view.method.setCurrentText("GradCAM")  # no completeness: no totals, and why
    qtbot.waitUntil(lambda: view.panels["cat"].heat is not None, timeout=60000)
    title = view.panels["cat"].title
    assert "totals —" in title.text and "No evidence totals for GradCAM" in title.toolTip()
    assert "|mass|" not in title.text  # unsigned maps are drawn at one opacity


def test_at_the_input_pixels_the_offset_is_the_classifier_bias(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state

    view = show(qtbot, QtCamView(state), (1100, 800))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1), depth="input")
    qtbot.waitUntil(lambda: all(p.heat is not None for p in view.panels.values()), timeout=60000)
    label = state.class_names.index(state.shown_label())
    for role, panel in view.panels.items():
        model = state.models[role].model
        bias = sum(float(c.bias.detach()[label]) for c in model.classifiers.values())
        logit, offset = identity_of(panel.title.text)
        assert offset == pytest.approx(bias, abs=0.006)
        positive, negative, net = totals_of(panel.title.text)
        assert (positive, negative) == pytest.approx(expected_totals(panel.heat), abs=0.006)
        assert net == pytest.approx(logit - offset, abs=0.011)  # exact below the tokens too


def test_the_share_of_mass_drawn_faintly_is_stated_and_show_small_values_draws_it(qtbot, app_state, checkpoints,
                                                                                   tmp_path):
    state, controller = app_state

    view = show(qtbot, QtCamView(state), (1100, 800))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    state.update_settings(opacity=0.3)  # a cell m = |v| / limit of the scale shows at 0.3 sqrt(m) m
    panel = view.panels["baseline"]
    magnitude = np.abs(panel.heat.astype(np.float64))
    m = np.clip(magnitude / panel.scale.limit, 0, 1)
    share = magnitude[0.3 * np.sqrt(m) * m < 0.1].sum() / magnitude.sum()
    assert share > 0.01  # at 0.3 most of a map is faint
    assert f"{share:.1%} of the map's |mass| is drawn faint" in panel.title.toolTip()
    assert f"{share:.0%} of |mass| drawn faint" in panel.title.text
    state.update_settings(opacity=1.0)
    view.small_values.setChecked(True)  # every non-zero cell at least 0.3 of the scale: sqrt(0.3) 0.3 = 0.16
    assert state.settings.small_values
    alpha = panel.heat_item.image[..., 3]  # coloured at full opacity; the item's opacity scales it
    assert alpha.min() >= np.floor(np.sqrt(0.3) * 255)  # every non-zero cell visible
    assert "0.0% of the map's |mass| is drawn faint" in panel.title.toolTip()
    assert "drawn faint" not in panel.title.text


@pytest.mark.parametrize("depth", ["tokens", "input"])
def test_the_difference_panel_adds_up_to_the_logit_difference(qtbot, app_state, checkpoints, tmp_path, depth):
    state, controller = app_state

    view = show(qtbot, QtCamView(state), (1280, 800))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1), depth=depth)
    assert not view.difference_panel.view.isVisible()
    view.difference.setChecked(True)
    assert state.settings.cam_difference and view.difference_panel.view.isVisible()
    qtbot.waitUntil(lambda: view.difference_panel.heat is not None, timeout=60000)
    label = state.class_names.index(state.shown_label())
    base, cat = state.result("baseline"), state.result("cat")
    delta = sum(float(v[label]) for v in cat.level_logits.values()) - sum(float(v[label]) for v in base.level_logits.values())
    title = view.difference_panel.title.text
    assert "CAT − baseline" in title and state.shown_label() in title
    assert ("classifier tokens" if depth == "tokens" else "input pixels") in title
    assert number(re.search(rf"Δlogit = {NUMBER}", title).group(1)) == pytest.approx(delta, abs=0.006)
    heat = view.difference_panel.heat
    assert heat.shape == (96, 96)  # the models' input pixels, whatever the maps' grids
    sources = (cat.offsets, base.offsets) if depth == "tokens" else (cat.biases, base.biases)
    offsets = [sum(float(v[label]) for v in source.values()) for source in sources]
    residual = float(heat.mean(dtype=np.float64)) + offsets[0] - offsets[1] - delta
    assert abs(residual) <= 1e-4 * max(abs(delta), 1.0)
    scale = view.panels["cat"].scale
    assert view.difference_panel.scale == scale and view.top_bar.isVisible()  # one bar for the row

    view.method.setCurrentText("Occlusion")  # no offset, no logit to add up to: said, not drawn
    assert view.difference_panel.heat is None and "complete CAM only" in view.difference_panel.title.text
    view.difference.setChecked(False)
    assert not view.difference_panel.view.isVisible()
    for role in state.models:
        state.request_cancel(role, ATTRIBUTION)

