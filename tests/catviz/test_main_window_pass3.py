"""Issue 27 (the app, third pass): the main window driven with real events."""

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from catviz.state import Event

from .conftest import make_checkpoint, write_good_images
from .test_main_window import drop, load_models, wait_results


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


def _with_probabilities(window, role, values):
    """The current image's result for ``role`` with these probabilities (the rest as computed)."""
    import dataclasses

    import numpy as np

    entry = window.state.current_entry
    result = dataclasses.replace(window.state.result(role), probabilities=np.asarray(values, dtype=np.float32))
    window.state.set_result(entry.path, role, result)


def test_a_probability_is_marked_as_its_shown_value_compares_with_the_threshold(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    names = window.state.class_names
    window.state.current_entry.ground_truth = set(names)  # every label is in the ground truth
    # 0.2096 rounds to "0.21"; float32(0.21) is 0.2099999934 in float64; 0.2149 also rounds to "0.21"
    _with_probabilities(window, "baseline", [0.2096, 0.21, 0.2149, 0.5, 0.1])
    _with_probabilities(window, "cat", [0.21, 0.2096, 0.9, 0.2, 0.21])
    window.predictions.slider.setValue(21)  # the user's threshold: 0.21
    assert window.predictions.slider_label.text() == "0.21"
    for role in ("baseline", "cat"):
        for label, shown, mark in window.predictions.table.rows(role):
            # what the user reads must agree with the mark: shown >= threshold is a hit, else a miss
            assert mark == ("hit" if float(shown) >= 0.21 else "miss"), (role, label, shown, mark)
    import re

    for role in ("baseline", "cat"):  # the CAM panel's title: "label p=… (missed)"
        title = window.cam_view.panels[role].title.text
        shown = float(re.search(r"p=([0-9.]+)", title).group(1))
        assert ("(missed)" in title) == (shown < 0.21), title


@pytest.mark.parametrize("route", ["drop", "open folder", "open images"])
def test_opened_or_dropped_images_are_shown_from_the_first_new_readable_one(qtbot, window, tmp_path, route,
                                                                           monkeypatch):
    first = write_good_images(tmp_path / "first", 3)
    drop(window, first)
    qtbot.waitUntil(lambda: window.state.current_entry is not None and window.state.current_entry.image is not None,
                    timeout=20000)
    window.image_list.setCurrentRow(1)  # the user looks at the second one
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "a_broken.png").write_bytes(b"not a png")  # sorted first, unreadable
    new = write_good_images(folder, 2)
    if route == "drop":
        drop(window, [folder])
    elif route == "open folder":
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
        window.open_folder()
    else:
        monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                            lambda *a, **k: ([str(folder / "a_broken.png"), *map(str, new)], ""))
        window.open_images()
    qtbot.waitUntil(lambda: window.state.current_entry.path == new[0], timeout=20000)
    assert window.image_list.currentRow() == window.state.current
    assert [i.row() for i in window.image_list.selectedIndexes()] == [window.state.current]


def test_a_saved_geometry_is_kept_within_the_available_screen(qtbot, window):
    from PySide6.QtCore import QRect, QSettings

    from catviz.qt_main_window import QtMainWindow
    from catviz.qt_workers import InferenceController
    from catviz.state import AppState

    window.setGeometry(300, 200, 1280, 800)  # left on a larger screen, or moved down
    window.close()  # saves the geometry, as on quit
    assert QSettings().contains("window/geometry")
    state = AppState()
    controller = InferenceController(state, "cpu")
    again = QtMainWindow(state, controller)
    qtbot.addWidget(again)
    screen = QRect(0, 0, 1280, 770)  # a 1280x800 screen less a 30-px panel
    again.show_on_screen(available=screen)
    assert screen.contains(again.frameGeometry()), again.frameGeometry()
    assert again.statusBar().isVisible()
    assert again.width() >= 1024 and again.height() >= 640  # never below the minimum
    assert again.frameGeometry().size() == screen.size()  # as large as fits, not shrunk to the minimum
    controller.shutdown()


def test_near_uniform_attention_is_drawn_pale_on_a_scale_relative_to_uniform(qtbot, window, checkpoints, tmp_path):
    import dataclasses

    import numpy as np

    from catviz.render import colorize

    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    result = window.state.result("cat")
    rng = np.random.default_rng(0)
    attention = {}
    for key, weights in result.attention.items():  # every map within 0.83x..1.2x of uniform
        noisy = np.exp(rng.uniform(np.log(0.83), np.log(1.2), weights.shape)).astype(np.float32)
        attention[key] = noisy / noisy.sum(-1, keepdims=True) if key.startswith("lrd.") else \
            noisy / noisy.reshape(*noisy.shape[:-2], -1).sum(-1)[..., None, None]
    lrd = [attention[k] for k in sorted(k for k in attention if k.startswith("lrd."))]
    from catviz.results import attention_rollout
    nearly = dataclasses.replace(result, attention=attention, rollout=attention_rollout(lrd) if lrd else None)
    window.state.set_result(window.state.current_entry.path, "cat", nearly)
    window.tabs.setCurrentWidget(window.attention_view)
    view = window.attention_view
    assert view.panels
    for key, panel in view.panels.items():
        assert panel.heat is not None, key
        rgba = colorize(panel.heat, panel.scale, window.state.settings.colormap, 1.0)
        assert rgba[..., 3].max() < 0.6 * 255, (key, rgba[..., 3].max())  # pale: never near the scale's end
    assert "uniform" in view.bar.getAxis("left").labelText


def test_grid_maps_are_drawn_as_blocks_one_cell_one_colour():
    import numpy as np

    from catviz.render import upsample

    grid = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    assert np.array_equal(upsample(grid, 4, 4), np.kron(grid, np.ones((2, 2), np.float32)))


def test_one_colour_per_level_and_model_in_every_chart_whatever_is_drawn_first(qtbot, window, checkpoints, tmp_path,
                                                                             monkeypatch):
    from PySide6.QtCore import QSettings

    from catviz import colors, qt_dataset_view, qt_predictions

    # a fresh session that draws the baseline's S5 first gets the same colours as one that draws P5 first
    QSettings().clear()
    first = {name: qt_predictions.layer_color(name) for name in ("S5", "R5", "P3", "P4", "P5")}
    QSettings().clear()
    monkeypatch.setattr(qt_predictions, "_LAYER_COLORS", {}, raising=False)
    assert {name: qt_predictions.layer_color(name) for name in ("P5", "P4", "P3", "R5", "S5")} == first
    window.state.update_settings(cam_depth="tokens")  # the layer share (below the tokens the chart is a path share)
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    bars, share = window.predictions.bars.colors, window.predictions.share.colors
    expected = {"P5": "#7e57c2", "P4": "#26a69a", "P3": "#ffa726"}  # the README's screenshots: purple, teal, orange
    for level in window.state.spec("cat").levels:
        assert bars[f"CAT {level.name}"] == expected[level.name] == share.get(level.name, expected[level.name])
    assert share["R5"] == "#b39ddb"  # P5 after LRD: P5's hue, lighter
    assert share["S5"] == bars["baseline"] == colors.BASELINE  # the baseline grey everywhere
    assert bars["CAT sum"] == colors.CAT and share["offset"] == colors.OFFSET
    assert len({*bars.values(), *share.values()}) == 7  # P5, R5, P4, P3, baseline (S5), CAT sum, offset
    assert qt_dataset_view.BASELINE_COLOR == colors.rgb(colors.BASELINE)
    assert qt_dataset_view.CAT_COLOR == colors.rgb(colors.CAT)


def test_saved_views_and_exported_figures_say_what_they_show(qtbot, window, checkpoints, tmp_path, monkeypatch):
    import cv2

    from catviz import figure

    load_models(qtbot, window, checkpoints)
    images = write_good_images(tmp_path / "imgs", 1)
    window.state.add_images(images)
    wait_results(qtbot, window)
    window.state.update_settings(label="dog")
    window.predictions.slider.setValue(35)
    caption = window.view_caption()
    for part in (images[0].name, "baseline_tiny", "baseline.safetensors", "cat_tiny", "cat.safetensors", "dog",
                 "threshold 0.35", "CAM", "level combined"):
        assert part in caption, (part, caption)
    path = tmp_path / "view.png"
    window.save_view(str(path))
    saved = cv2.imread(str(path))
    grabbed = window.tabs.currentWidget().grab()
    assert saved.shape[1] == grabbed.width() and saved.shape[0] > grabbed.height() + 10  # a caption strip on top
    strip = saved[: saved.shape[0] - grabbed.height()]
    assert (strip < 100).any()  # with dark text in it

    captured = {}
    real = figure.render_figure
    monkeypatch.setattr(figure, "render_figure", lambda *a, **k: captured.update(k) or real(*a, **k))
    done = tmp_path / "figure.png"
    window.export_figure(str(done))
    qtbot.waitUntil(done.exists, timeout=30000)
    assert "baseline_tiny" in captured["caption"] and "threshold 0.35" in captured["caption"]
    assert cv2.imread(str(done)) is not None


def test_ctrl_q_quits_right_after_a_file_dialog(qtbot, window, monkeypatch):
    from PySide6.QtWidgets import QApplication, QDialog

    def dialog(*args, **kwargs):  # a real modal dialog, answered and closed: focus left it
        box = QDialog()
        box.setModal(True)
        box.show()
        qtbot.waitExposed(box)
        box.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is box)
        box.accept()
        box.deleteLater()
        return [], ""

    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", dialog)
    window.open_images()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=2000)  # the window has the keys again
    target = QApplication.focusWidget() or window
    qtbot.keyClick(target, "q", modifier=__import__("PySide6.QtCore").QtCore.Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2000)


def test_the_demo_dataset_window_opens_at_once_and_lists_the_split_when_read(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from catviz import app
    from catviz.qt_main_window import QtMainWindow

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))

    def too_early(*args):
        raise AssertionError("the split was read (the demo set generated) before the window opened")

    monkeypatch.setattr(app, "dataset_images", too_early)
    seen = []
    monkeypatch.setattr(QApplication, "exec", lambda self: seen.append(
        [w for w in QApplication.topLevelWidgets() if isinstance(w, QtMainWindow) and w.isVisible()]) or 0)
    assert app.main(["--dataset", "demo", "--limit", "5", "--device", "cpu"]) == 0
    window = seen[0][-1]
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: len(window.state.images) == 5, timeout=120000)  # listed once the tab has read it
        assert all(entry.ground_truth is not None for entry in window.state.images)
    finally:
        window.controller.shutdown()
        for i in range(window.tabs.count()):
            if hasattr(window.tabs.widget(i), "shutdown"):
                window.tabs.widget(i).shutdown()


def test_a_cancelled_map_is_run_again_from_its_panel(qtbot, window, checkpoints, tmp_path):
    from catviz.state import ATTRIBUTION

    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    view = window.cam_view
    window.state.update_settings(cam_method="ScoreCAM")
    qtbot.waitUntil(lambda: view.cancel.isVisible(), timeout=30000)
    qtbot.mouseClick(view.cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.pending == 0, timeout=30000)
    stopped = [r for r in ("baseline", "cat") if window.state.attribution_status(r)]
    assert stopped and "cancelled" in window.state.attribution_status(stopped[0])
    assert view.run_again.isVisible() and not view.cancel.isVisible()
    qtbot.mouseClick(view.run_again, Qt.MouseButton.LeftButton)
    assert window.state.settings.cam_method == "ScoreCAM"  # the same map, not another method
    qtbot.waitUntil(lambda: all(window.state.attribution(r) is not None for r in stopped)
                    or any((r, ATTRIBUTION) in window.state.progress for r in stopped), timeout=30000)
    assert not any(window.state.attribution_status(r) for r in stopped)
    assert not view.run_again.isVisible()


def test_labels_from_a_csv_or_coco_json_and_a_folders_own_file(qtbot, window, tmp_path, monkeypatch):
    import json

    from catviz import demo

    window.add_paths([demo.SAMPLES])  # a folder with its ground_truth.json beside the images
    qtbot.waitUntil(lambda: len(window.state.images) >= 8, timeout=20000)
    assert window.state.entry(demo.SAMPLES / "demo_00.png").ground_truth == {"0", "4", "7"}

    own = write_good_images(tmp_path / "mine", 3)
    window.add_paths([tmp_path / "mine"])
    assert all(window.state.entry(p).ground_truth is None for p in own)
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text(f"path,labels\n{own[0]},cat;dog\n{own[1].name},car\nnot_listed.png,bus\n")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(csv_file), ""))
    window.open_labels()
    assert window.state.entry(own[0]).ground_truth == {"cat", "dog"}
    assert window.state.entry(own[1]).ground_truth == {"car"}
    assert window.state.entry(own[2]).ground_truth is None
    assert "not_listed.png" in window.state.messages[-1].text  # unmatched names reported

    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": f"x/{own[2].name}"}],
                                "annotations": [{"image_id": 1, "category_id": 7}],
                                "categories": [{"id": 7, "name": "tree"}]}))
    window.apply_labels(coco)
    assert window.state.entry(own[2]).ground_truth == {"tree"}
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    window.apply_labels(bad)
    assert window.state.messages[-1].error and "bad.json" in window.state.messages[-1].text


def test_catviz_labels_flag(tmp_path, monkeypatch, capsys):
    from catviz import app

    monkeypatch.setattr(app.system_libs, "main", lambda: 1)  # stop before Qt
    bad = tmp_path / "labels.csv"
    bad.write_text("a.png,x,y\n")
    with pytest.raises(SystemExit) as stop:
        app.main(["--labels", str(bad), str(tmp_path)])
    assert stop.value.code == 2 and "labels.csv, line 1" in capsys.readouterr().err


def test_a_folder_named_on_the_command_line_brings_its_own_ground_truth(qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from catviz import app, demo
    from catviz.qt_main_window import QtMainWindow

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    seen = []
    monkeypatch.setattr(QApplication, "exec", lambda self: seen.append(
        [w for w in QApplication.topLevelWidgets() if isinstance(w, QtMainWindow) and w.isVisible()]) or 0)
    assert app.main([str(demo.SAMPLES), "--device", "cpu"]) == 0
    window = seen[0][-1]
    qtbot.addWidget(window)
    try:
        assert window.state.entry(demo.SAMPLES / "demo_00.png").ground_truth == {"0", "4", "7"}
    finally:
        window.controller.shutdown()
