"""Issue 27 (the app, third pass): the main window driven with real events."""

import pytest
from PySide6.QtWidgets import QFileDialog

from catviz.state import Event

from . import test_main_window
from .conftest import make_checkpoint, write_good_images
from .test_main_window import drop, load_models, wait_results

window = test_main_window.window  # the same fixture


@pytest.fixture(scope="module")
def three_labels(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    return {role: make_checkpoint(root / f"{role}3.safetensors", f"{role}_tiny", classes=["p", "q", "r"])
            for role in ("baseline", "cat")}


def _watch_label_sets(window):
    """Every label set the views are told about: at each MODELS_CHANGED, the slots' label sets."""
    seen = []
    window.state.subscribe(Event.MODELS_CHANGED, lambda role: seen.append(
        {r: tuple(m.meta.class_names) for r, m in window.state.models.items()}))
    return seen


@pytest.mark.parametrize("route", ["one drop", "one drop, CAT first", "two drops", "two drops, CAT first",
                                   "open models", "command line"])
def test_a_pair_of_another_label_set_replaces_the_pair_and_the_views_never_mix_them(
        qtbot, window, checkpoints, three_labels, tmp_path, route):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 2))
    wait_results(qtbot, window)
    window.controller.resolve_label_conflict = lambda new, other: "clear"
    seen = _watch_label_sets(window)
    pair = [three_labels["baseline"], three_labels["cat"]]
    if "CAT first" in route:
        pair.reverse()
    if route.startswith("one drop"):
        drop(window, pair)
    elif route.startswith("two drops"):
        drop(window, pair[:1])
        qtbot.waitUntil(lambda: any(m.path == pair[0] for m in window.state.models.values()), timeout=20000)
        drop(window, pair[1:])
    elif route == "open models":
        qtbot_patch = pytest.MonkeyPatch()
        qtbot_patch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(p) for p in pair], ""))
        window.open_models()
        qtbot_patch.undo()
    else:  # as catviz main() passes --baseline/--cat and checkpoints named among the paths
        window.controller.load_checkpoints(pair, {three_labels["baseline"]: "baseline"})
    qtbot.waitUntil(lambda: {r: m.path for r, m in window.state.models.items()} == three_labels, timeout=20000)
    wait_results(qtbot, window)
    assert window.state.class_names == ["p", "q", "r"]
    assert all(len(set(slots.values())) <= 1 for slots in seen), seen  # never two label sets at once
    assert window.predictions.isVisible()
