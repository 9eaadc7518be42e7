"""The CAM view's depth selector (issue 24): input pixels by default, titles say the depth."""

from catviz.methods import DEPTH_TITLES
from catviz.state import AppState

from .test_qt_cam_view import filled  # noqa: F401  (the fixture: both models' results for one image)


def test_both_models_are_shown_at_input_depth_by_default_and_titles_say_the_depth(qtbot, filled):  # noqa: F811
    state, controller, view = filled  # made at the token depth
    assert AppState().settings.cam_depth == "input"  # the default
    state.update_settings(cam_depth="input")
    assert view.depth.currentData() == "input"
    qtbot.waitUntil(lambda: all(p.heat is not None for p in view.panels.values()), timeout=120000)
    for role, panel in view.panels.items():
        assert "input pixels" in panel.title.text
        image = state.current_entry.image
        assert panel.heat.shape[0] > 0 and state.attribution(role) is not None and image is not None
    fpn = view.depth.model().item(view.depth.findData("fpn"))
    assert not fpn.isEnabled() and "Baseline" in fpn.toolTip()  # the baseline has no FPN
    view.depth.setCurrentIndex(view.depth.findData("tokens"))
    assert state.settings.cam_depth == "tokens"
    qtbot.waitUntil(lambda: "classifier tokens" in view.panels["cat"].title.text, timeout=10000)
    state.update_settings(cam_method="GradCAM")
    assert not view.depth.isEnabled()
    assert set(DEPTH_TITLES) == {view.depth.itemData(i) for i in range(view.depth.count())}
