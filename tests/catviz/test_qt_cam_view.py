"""The CAM view while a map is computed and once it is there: the progress row names the
method being computed, the panels look and sit the same before and after, and the
deletion AUC is shown relative to the model's probability."""

import numpy as np
import pyqtgraph as pg
import pytest
import torch

from catviz.inference import load_model
from catviz.models.faithfulness import deletion_auc
from catviz.models.preprocess import preprocess
from catviz.qt_cam_view import QtCamView
from catviz.qt_workers import InferenceController
from catviz.render import DIVERGING, colormap_for
from catviz.state import ATTRIBUTION, AppState

from .conftest import write_good_images


@pytest.fixture
def filled(qtbot, checkpoints, tmp_path):
    """A shown view over both models' results for one image; the workers are then shut
    down, so the test alone says what is computing and what is done."""
    pg.setConfigOptions(imageAxisOrder="row-major")
    state = AppState()
    state.update_settings(cam_depth="tokens")  # the CAMs of the forward pass (the default depth: test_qt_cam_depth)
    controller = InferenceController(state, "cpu")
    view = QtCamView(state)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    for role, path in checkpoints.items():
        controller.load_checkpoint(path, role)
    qtbot.waitUntil(lambda: set(state.models) == set(checkpoints), timeout=60000)
    state.add_images(write_good_images(tmp_path / "imgs", 1))
    qtbot.waitUntil(lambda: all(state.result(r) is not None for r in checkpoints), timeout=60000)
    yield state, controller, view
    controller.shutdown()


def test_the_progress_row_names_the_method_being_computed_after_a_switch(qtbot):
    state = AppState()
    view = QtCamView(state)
    qtbot.addWidget(view)
    state.update_settings(cam_method="GradCAM")
    state.set_progress("cat", ATTRIBUTION, 0.0)
    assert view.progress_label.text() == "Computing GradCAM: CAT 0%"
    state.update_settings(cam_method="GradCAMPlusPlus")  # the workers restart at 0%: no progress event
    assert view.progress_label.text() == "Computing GradCAM++: CAT 0%"
    state.update_settings(cam_method="CAM", cam_depth="tokens")  # nothing to compute; the old work is cancelled
    assert not view.progress_label.isVisibleTo(view) and not view.cancel.isVisibleTo(view)


@pytest.mark.parametrize("method", ["GradCAM", "Occlusion"])
def test_computing_looks_the_same_for_every_method_and_the_panels_do_not_move(qtbot, filled, method):
    state, controller, view = filled
    controller.shutdown()
    state.update_settings(cam_method=method)
    for role in view.panels:
        state.set_progress(role, ATTRIBUTION, 0.5)

    def geometry():
        return [(p.title.sceneBoundingRect(), p.view.sceneBoundingRect()) for p in view.panels.values()]

    qtbot.waitUntil(lambda: "computing" in view.panels["cat"].title.text and view.cancel.isVisible())
    qtbot.waitUntil(lambda: all(p.view.sceneBoundingRect().height() > 0 for p in view.panels.values()))
    computing = geometry()
    assert all(p.heat is None and p.muted for p in view.panels.values())  # one "computing" look: the grey image
    for role in view.panels:
        state.set_attribution(state.attribution_key(role), np.random.default_rng(0).random((12, 12)))
        state.set_progress(role, ATTRIBUTION, None)
    qtbot.waitUntil(lambda: all(p.heat is not None for p in view.panels.values()) and not view.cancel.isVisible())
    qtbot.waitUntil(lambda: geometry() == computing, timeout=2000)  # (after any relayout) the panels did not move


def test_deletion_auc_is_shown_as_a_share_of_the_probability_with_the_raw_area_in_the_tooltip(qtbot, filled):
    state, controller, view = filled
    qtbot.mouseClick(view.deletion, pg.QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(state.deletion_aucs) == 2, timeout=60000)
    entry, label = state.current_entry, state.class_names.index(state.shown_label())
    for role, panel in view.panels.items():
        relative = state.deletion_aucs[view.shown[role]]
        assert f"deletion AUC {relative:.3f} of p" in panel.title.text
        loaded = load_model(state.models[role].path, torch.device("cpu"))
        meta = loaded.meta
        tensor = preprocess(entry.image, meta.input_size, meta.mean, meta.std)
        raw = deletion_auc(loaded.model, tensor, label, panel.heat)
        assert f"The raw area under p (catviz-eval --faithfulness's) is {raw:.3f}" in panel.title.toolTip()


def test_a_map_faint_on_the_shared_scale_says_so(qtbot, filled):
    state, controller, view = filled
    controller.shutdown()
    factor = 0.01 * np.abs(view.panels["cat"].heat).max() / np.abs(view.panels["baseline"].heat).max()
    for maps in state.result("baseline").cams.values():  # the baseline's evidence at 1 % of CAT's
        maps *= factor
    view.refresh()
    assert "of the shared scale: Per-panel scale shows its shape" in view.panels["baseline"].title.text
    assert "of the shared scale" not in view.panels["cat"].title.text  # CAT's map set the scale
    state.update_settings(per_panel_scale=True)  # its own scale: nothing to warn about
    assert "of the shared scale" not in view.panels["baseline"].title.text


def test_the_missed_mark_follows_the_threshold_at_once(qtbot, filled):
    state, controller, view = filled
    controller.shutdown()
    label = state.shown_label()
    state.current_entry.ground_truth = {label}
    p = float(state.result("baseline").probabilities[state.class_names.index(label)])
    state.update_settings(threshold=min(p + 0.05, 0.99))
    assert "(missed)" in view.panels["baseline"].title.text
    state.update_settings(threshold=max(p - 0.05, 0.01))  # no new image, result or label: only the threshold
    assert "(missed)" not in view.panels["baseline"].title.text


def test_the_colours_box_shows_the_colour_map_the_maps_are_drawn_with(qtbot):
    state = AppState()
    view = QtCamView(state)
    qtbot.addWidget(view)
    assert view.colormap.currentText() == DIVERGING
    state.update_settings(cam_method="GradCAM")  # unsigned maps: never diverging
    assert view.colormap.currentText() == colormap_for(DIVERGING, False) != DIVERGING
    assert "unsigned" in view.colormap.toolTip()
    diverging = view.colormap.model().item(view.colormap.findData(DIVERGING))
    assert not diverging.isEnabled() and "zero to centre on" in diverging.toolTip()
    assert state.settings.colormap == DIVERGING  # the choice is kept for signed maps
    state.update_settings(cam_method="CAM")
    assert view.colormap.currentText() == DIVERGING and view.colormap.model().item(0).isEnabled()
    state.update_settings(cam_method="GradCAM", colormap="viridis")
    assert view.colormap.currentText() == "viridis"
