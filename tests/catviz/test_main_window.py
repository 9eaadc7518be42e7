"""The app driven as a user would: real drops, waits for workers, assertions on widgets."""

import time

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent

from catviz.qt_main_window import QtMainWindow
from catviz.qt_workers import InferenceController
from catviz.state import AppState

from .conftest import CLASSES, make_checkpoint, write_bad_files, write_good_images, write_odd_images


@pytest.fixture
def window(qtbot, tmp_path):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    pg.setConfigOptions(imageAxisOrder="row-major")
    state = AppState()
    controller = InferenceController(state, "cpu")
    win = QtMainWindow(state, controller)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    yield win
    controller.pool.clear()
    controller.wait()


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def load_models(qtbot, window, checkpoints):
    drop(window, [checkpoints["baseline"], checkpoints["cat"]])
    qtbot.waitUntil(lambda: set(window.state.models) == {"baseline", "cat"}, timeout=20000)


def wait_results(qtbot, window):
    qtbot.waitUntil(lambda: window.state.result("cat") is not None and window.state.result("baseline") is not None,
                    timeout=20000)


def test_dropped_checkpoints_and_images_fill_every_panel(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    images = write_good_images(tmp_path / "imgs", 3)
    drop(window, [tmp_path / "imgs"])
    wait_results(qtbot, window)
    assert window.image_list.count() == 3

    rows = window.predictions.lists["cat"].rows()
    assert sorted(r[0] for r in rows) == sorted(CLASSES)
    probabilities = [float(r[1]) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert set(window.predictions.bars.series) == {"P5", "P4", "P3", "sum", "baseline"}
    np.testing.assert_allclose(
        window.predictions.bars.series["sum"],
        sum(window.predictions.bars.series[k] for k in ("P5", "P4", "P3")), rtol=1e-5, atol=1e-5)

    cam_panels = window.cam_view.panels
    assert cam_panels["cat"].heat is not None and cam_panels["baseline"].heat is not None
    assert all(p.heat is not None for p in window.cam_view.level_panels.values())
    before = cam_panels["cat"].heat.copy()
    window.state.update_settings(label=rows[-1][0])  # least likely label
    assert not np.array_equal(before, cam_panels["cat"].heat)

    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)  # arrow keys move through images
    assert window.image_list.currentRow() == 1
    wait_results(qtbot, window)
    assert images[1] == window.state.current_entry.path


def test_threshold_and_ground_truth_mark_missed_and_false_positive_labels(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    image = write_good_images(tmp_path / "imgs", 1)[0]
    window.state.add_images([image], {image: {"cat", "dog"}})
    wait_results(qtbot, window)
    labels = window.predictions.lists["cat"]
    window.predictions.slider.setValue(99)  # nothing predicted: every true label missed
    assert {r[0] for r in labels.rows() if r[2] == "miss"} == {"cat", "dog"}
    window.predictions.slider.setValue(1)  # everything predicted: the others are false positives
    assert {r[0] for r in labels.rows() if r[2] == "FP"} == set(CLASSES) - {"cat", "dog"}
    assert window.state.settings.threshold == pytest.approx(0.01)


def test_attention_views_follow_head_layer_and_clicked_position(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    view = window.attention_view
    maps = view.current_maps()
    assert all(m is not None for m in maps.values())
    view.head.setCurrentText("3")
    after_head = view.current_maps()
    assert not np.array_equal(maps["P4"], after_head["P4"])
    view.layer.setCurrentText("1")
    view.click_cell(0, 0)
    first = view.current_maps()["lrd"].copy()
    view.click_cell(2, 2)
    assert not np.array_equal(first, view.current_maps()["lrd"])


def test_bad_files_are_listed_with_a_message_and_good_ones_keep_working(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    bad = write_bad_files(tmp_path / "bad")
    odd = write_odd_images(tmp_path / "odd")
    good = write_good_images(tmp_path / "good", 1)
    drop(window, [*bad, tmp_path / "odd", *good])
    entries = window.state.images
    qtbot.waitUntil(lambda: all(e.image is not None or e.error for e in entries), timeout=20000)
    errors = {e.path.name: e.error for e in entries if e.error}
    assert set(errors) == {p.name for p in bad}
    for name, message in errors.items():
        assert name in message
        assert any(name in m for m in window.state.messages)
    shapes = {e.path.name: e.image.shape[:2] for e in entries if e.image is not None}
    for name, shape in odd.items():
        assert shapes[name] == shape
    window.state.select(len(entries) - 1)  # the good image still gets its results
    wait_results(qtbot, window)
    window.state.select(0)  # selecting a broken file shows its message, no crash
    assert window.cam_view.hint.text() == entries[0].error


def test_a_bad_checkpoint_is_refused_and_the_previous_model_stays(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    previous = window.state.models["cat"]
    pickle_file = tmp_path / "model.pt"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    other = make_checkpoint(tmp_path / "other.safetensors", "cat_tiny", classes=["x", "y"])
    for path in (pickle_file, other):
        count = len(window.state.messages)
        window.controller.load_checkpoint(path, "cat")
        qtbot.waitUntil(lambda count=count: len(window.state.messages) > count, timeout=20000)
        assert path.name in window.state.messages[-1]
        assert window.state.models["cat"] is previous


def test_export_and_save_view_write_pngs(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 2))
    wait_results(qtbot, window)
    window.save_view(str(tmp_path / "view.png"))
    assert (tmp_path / "view.png").stat().st_size > 0
    window.image_list.selectAll()
    window.export_figure(str(tmp_path / "figure.png"))
    qtbot.waitUntil(lambda: (tmp_path / "figure.png").exists(), timeout=20000)
    import cv2

    assert cv2.imread(str(tmp_path / "figure.png")).shape[0] == 4 * (192 + 22)


def test_grad_cam_methods_run_in_a_worker(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    window.cam_view.method.setCurrentText("GradCAMPlusPlus")
    qtbot.waitUntil(lambda: window.cam_view.panels["cat"].heat is not None
                    and window.controller.grad_cam_key("cat") in window.controller.grad_cams, timeout=20000)
    assert window.cam_view.panels["cat"].heat.max() <= 1.0


def test_window_stays_responsive_while_models_run(qtbot, window, tmp_path):
    slow = {role: make_checkpoint(tmp_path / f"{role}.safetensors", f"{role}_tiny", input_size=640)
            for role in ("baseline", "cat")}  # big inputs: each forward takes a while
    load_models(qtbot, window, slow)
    window.state.add_images(write_good_images(tmp_path / "imgs", 3))
    qtbot.waitUntil(lambda: all(e.image is not None for e in window.state.images), timeout=20000)
    ticks, last = [], [time.perf_counter()]  # (gap since the previous tick, tasks pending)

    def tick():
        now = time.perf_counter()
        ticks.append((now - last[0], window.controller.pending))
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    for i in range(3):  # move on before work finishes: stale work is dropped
        window.state.select(i)
    qtbot.waitUntil(lambda: window.controller.pending == 0 and window.state.result("cat") is not None, timeout=30000)
    timer.stop()
    busy_ticks = [gap for gap, pending in ticks if pending > 0]
    assert busy_ticks, "the event loop never ran while models were working"
    assert max(gap for gap, _ in ticks) < 0.5  # the GUI thread never blocked on a model


def test_settings_persist_across_windows(qtbot, window, checkpoints):
    load_models(qtbot, window, checkpoints)
    window.predictions.slider.setValue(70)
    window.cam_view.colormap.setCurrentText("viridis")
    window.close()
    state = AppState()
    again = QtMainWindow(state, InferenceController(state, "cpu"))
    qtbot.addWidget(again)
    assert state.settings.threshold == pytest.approx(0.7)
    assert state.settings.colormap == "viridis"
    again.reopen_last_checkpoints()
    qtbot.waitUntil(lambda: set(state.models) == {"baseline", "cat"}, timeout=20000)
    assert state.models["cat"].path == checkpoints["cat"]


def test_a_dataset_split_is_listed_with_its_ground_truth(qtbot, window, tmp_path):
    from catviz.app import dataset_images
    from tests.fixtures import write_coco_format

    paths, truth = dataset_images("coco-format", str(write_coco_format(tmp_path / "data")), limit=3)
    window.state.add_images(paths, truth)
    assert window.image_list.count() == 3
    assert window.state.images[0].ground_truth == {"car", "zebra"}


def test_switching_device_reloads_both_models(qtbot, window, checkpoints):
    load_models(qtbot, window, checkpoints)
    before = dict(window.state.models)
    assert window.device_box.currentText() == "cpu"
    window.controller.set_device("cpu")
    qtbot.waitUntil(lambda: all(window.state.models[r] is not before[r] for r in before), timeout=20000)
    assert {str(m.device) for m in window.state.models.values()} == {"cpu"}
