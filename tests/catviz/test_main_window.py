"""The app driven as a user would: real drops, waits for workers, assertions on the state
and the widgets the main window owns (views have their own tests in test_views.py)."""

import re
import time

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from catviz import demo, figure, qt_overlay
from catviz import state as state_module
from catviz.inference import run_model
from catviz.qt_main_window import MESSAGES_HEIGHT, NO_MODELS_HINT, QtMainWindow
from catviz.qt_workers import InferenceController
from catviz.render import DIVERGING
from catviz.state import ATTRIBUTION, AppState, DisplaySettings, Event

from .conftest import make_checkpoint, write_bad_files, write_good_images, write_odd_images


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


def wait_messages(qtbot, window, count):
    qtbot.waitUntil(lambda: len(window.state.messages) >= count, timeout=20000)


@pytest.fixture(scope="module")
def other_labels(tmp_path_factory):
    """A baseline and a CAT with two labels of their own."""
    root = tmp_path_factory.mktemp("two")
    return {role: make_checkpoint(root / f"{role}2.safetensors", f"{role}_tiny", classes=["x", "y"])
            for role in ("baseline", "cat")}


def test_dropped_checkpoints_and_images_fill_every_panel(qtbot, window, checkpoints, tmp_path):
    assert window.hint.isVisible() and NO_MODELS_HINT in window.hint.text()  # an empty window says what to do
    load_models(qtbot, window, checkpoints)
    images = write_good_images(tmp_path / "imgs", 3)
    drop(window, [tmp_path / "imgs"])
    wait_results(qtbot, window)
    assert not window.hint.isVisible()
    assert window.image_list.count() == 3
    # the maps at the default depth (input pixels) follow the forward pass, computed in a worker
    qtbot.waitUntil(lambda: all(window.cam_view.panels[r].heat is not None for r in ("cat", "baseline")), timeout=60000)
    assert re.fullmatch(r"forward: baseline \d+ ms, cat \d+ ms", window.timings.text())
    assert window.timings_separator.isVisible()
    window.activateWindow()
    window.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Right)  # arrow keys move through images
    assert window.image_list.currentRow() == 1
    wait_results(qtbot, window)
    assert images[1] == window.state.current_entry.path


def test_arrow_keys_stay_in_a_focused_slider(qtbot, window, tmp_path):
    window.state.add_images(write_good_images(tmp_path / "imgs", 3))
    slider = window.cam_view.opacity
    slider.setFocus()
    qtbot.waitUntil(slider.hasFocus)
    before = slider.value()
    qtbot.keyClick(slider, Qt.Key.Key_Right)
    assert window.state.current == 0 and slider.value() != before
    window.image_list.setFocus()
    qtbot.waitUntil(window.image_list.hasFocus)
    qtbot.keyClick(window.image_list, Qt.Key.Key_Right)
    assert window.state.current == 1


def test_a_small_image_after_a_large_one_fills_its_panels(qtbot, window, checkpoints, tmp_path):
    """The view range follows each image: a 64 px image after an 800 px one is not drawn in a corner."""
    load_models(qtbot, window, checkpoints)
    rng = np.random.default_rng(0)
    large, small = tmp_path / "large.png", tmp_path / "small.png"
    cv2.imwrite(str(large), rng.integers(0, 255, (600, 800, 3), dtype=np.uint8))
    cv2.imwrite(str(small), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    window.state.add_images([large, small])
    wait_results(qtbot, window)
    views = {1: window.attention_view, 0: window.cam_view}
    for tab in (1, 0):  # both tabs drawn once with the large image
        window.tabs.setCurrentIndex(tab)
        shown = [panel for panel in views[tab].panels.values() if panel.view.isVisible()]
        assert shown
        # (the display copy of the 800x600 image may be shrunk to 640x480: "large" is > 400 px here)
        qtbot.waitUntil(lambda shown=shown: all(min(np.ptp(r) for r in panel.view.viewRange()) > 400 for panel in shown))
    window.state.select(1)
    wait_results(qtbot, window)
    panels = [*window.cam_view.panels.values(), *window.attention_view.panels.values()]
    for panel in panels:
        (x0, x1), (y0, y1) = panel.view.viewRange()
        assert min(x1 - x0, y1 - y0) < 64 * 1.1, panel.title.text


def test_a_checkpoint_loaded_into_the_wrong_slot_goes_to_its_own(qtbot, window, checkpoints):
    window.controller.load_checkpoint(checkpoints["baseline"], "cat")  # File ▸ Load CAT checkpoint…
    qtbot.waitUntil(lambda: "baseline" in window.state.models, timeout=20000)
    assert "cat" not in window.state.models
    assert "loaded into the baseline slot" in window.state.messages[-1].text
    window.controller.load_checkpoint(checkpoints["cat"], "baseline")
    qtbot.waitUntil(lambda: "cat" in window.state.models, timeout=20000)
    assert window.state.models["baseline"].path == checkpoints["baseline"]
    assert window.state.models["cat"].path == checkpoints["cat"]


def test_open_models_loads_a_pair_at_once(qtbot, window, checkpoints, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        lambda *a, **k: ([str(checkpoints["cat"]), str(checkpoints["baseline"])], ""))
    window.open_models()
    qtbot.waitUntil(lambda: set(window.state.models) == {"baseline", "cat"}, timeout=20000)
    assert window.state.models["cat"].path == checkpoints["cat"]


def test_models_with_other_labels_replace_the_pair_or_clear_the_other_slot(qtbot, window, checkpoints, other_labels):
    load_models(qtbot, window, checkpoints)
    asked = []

    def answer(reply):
        def resolve(new, other):
            asked.append((new.path, other.path))
            return reply
        window.controller.resolve_label_conflict = resolve

    previous = window.state.models["cat"]
    answer("cancel")
    count = len(window.state.messages)
    window.controller.load_checkpoint(other_labels["cat"])
    wait_messages(qtbot, window, count + 1)
    assert window.state.models["cat"] is previous and "labels" in window.state.messages[-1].text
    assert asked == [(other_labels["cat"], checkpoints["baseline"])]

    answer("clear")  # load it, and empty the baseline slot
    window.controller.load_checkpoint(other_labels["cat"])
    qtbot.waitUntil(lambda: window.state.models["cat"].path == other_labels["cat"], timeout=20000)
    assert "baseline" not in window.state.models
    assert window.state.class_names == ["x", "y"]

    asked.clear()
    drop(window, [checkpoints["baseline"], checkpoints["cat"]])  # a matching pair: checked against each other
    qtbot.waitUntil(lambda: window.state.models.get("baseline") is not None
                    and window.state.models["cat"].path == checkpoints["cat"], timeout=20000)
    assert asked == []


def test_the_label_question_offers_to_clear_the_other_slot(qtbot, window, checkpoints, other_labels):
    load_models(qtbot, window, checkpoints)
    seen = []

    def answer():  # the question is modal: answer it from the event loop it runs
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append([b.text() for b in box.buttons()])
            next(b for b in box.buttons() if "clear the baseline slot" in b.text()).click()

    poll = QTimer()
    poll.timeout.connect(answer)
    poll.start(50)
    window.controller.load_checkpoint(other_labels["cat"])
    qtbot.waitUntil(lambda: window.state.models["cat"].path == other_labels["cat"], timeout=20000)
    poll.stop()
    assert "baseline" not in window.state.models
    assert any("choose a matching baseline" in t for t in seen[0]) and len(seen[0]) == 3  # and Cancel


def test_a_dropped_pair_with_different_labels_is_refused(qtbot, window, checkpoints, other_labels):
    drop(window, [checkpoints["baseline"], other_labels["cat"]])
    wait_messages(qtbot, window, 1)
    assert window.state.models == {} and "different labels" in window.state.messages[-1].text


def test_bad_files_are_listed_and_every_error_stays_readable(qtbot, window, checkpoints, tmp_path):
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
    # every error of the drop is kept, in full, in the Messages dock; the status bar counts them
    assert set(window.messages.texts()) >= set(errors.values())
    assert window.message_count.text() == f"⚠ {len(bad)} errors"
    window.message_count.click()
    assert window.messages.isVisible()
    assert window.statusBar().currentMessage() == window.state.messages[-1].text  # no time-out
    shapes = {e.path.name: e.image.shape[:2] for e in entries if e.image is not None}
    for name, shape in odd.items():
        assert shapes[name] == shape
    window.state.select(len(entries) - 1)  # the good image still gets its results
    wait_results(qtbot, window)


def test_an_unreadable_image_shows_its_error_not_the_previous_results(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    good = write_good_images(tmp_path / "good", 1)[0]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    window.state.add_images([good, broken])
    wait_results(qtbot, window)
    qtbot.waitUntil(lambda: window.state.images[1].error is not None, timeout=20000)
    window.state.select(1)
    assert window.timings.text() == "" and not window.timings_separator.isVisible()
    for plot in (window.predictions.bars, window.predictions.share):  # no stale label names on the axes
        assert plot.getPlotItem().getAxis("left")._tickLevels in (None, [[]])
    assert all(panel.heat is None for panel in window.cam_view.panels.values())
    assert "broken.png" in window.cam_view.hint.text()
    for panel in window.cam_view.panels.values():  # not "running the model …" as if it were loading
        assert "cannot be shown" in panel.title.text and "running" not in panel.title.text


def test_about_names_the_models_loaded_now(qtbot, window, checkpoints):
    window.controller.load_checkpoints(list(demo.DEMO_CHECKPOINTS.values()))
    qtbot.waitUntil(lambda: len(window.state.models) == 2, timeout=20000)
    assert window.about_text().count("(bundled demo)") == 2
    load_models(qtbot, window, checkpoints)  # another pair (other labels: no question asked)
    qtbot.waitUntil(lambda: window.state.models["cat"].path == checkpoints["cat"], timeout=20000)
    assert "(bundled demo)" not in window.about_text() and str(checkpoints["cat"]) in window.about_text()


def test_the_image_on_screen_is_decoded_first_and_copies_stay_within_budget(qtbot, window, tmp_path, monkeypatch):
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((200, 300, 3), i * 40, np.uint8))
    monkeypatch.setattr(state_module, "MAX_IMAGE_BYTES", 3 * 200 * 300 * 3)
    order = []
    window.state.subscribe(Event.IMAGE_LOADED, lambda entry: order.append(entry.path))
    window.state.add_images(paths)
    qtbot.waitUntil(lambda: len(order) == 6, timeout=20000)
    assert order[0] == paths[0]  # the one on screen
    assert window.state.decoded_bytes <= 3 * 200 * 300 * 3
    assert sum(e.image is not None for e in window.state.images) == 3
    assert all(window.image_list.item(i).icon().isNull() is False for i in range(6))  # every thumbnail made
    window.state.select(1)  # its copy was dropped: decoded again
    qtbot.waitUntil(lambda: window.state.current_entry.image is not None, timeout=20000)


def test_opacity_changes_start_no_work_and_recolour_nothing(qtbot, window, checkpoints, tmp_path, monkeypatch):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    qtbot.waitUntil(lambda: window.controller.pending == 0, timeout=20000)
    started, coloured = [], []
    window.controller.busy_changed.connect(started.append)
    colorize = qt_overlay.colorize
    monkeypatch.setattr(qt_overlay, "colorize", lambda *a, **k: coloured.append(1) or colorize(*a, **k))
    for value in (10, 30, 70, 90):
        window.cam_view.opacity.setValue(value)
        assert window.cam_view.panels["cat"].heat_item.opacity() == pytest.approx(value / 100)
    assert started == [] and coloured == []  # the maps are coloured once; opacity is the item's
    window.state.update_settings(label_mode="fixed", label=window.state.class_names[-1])
    assert coloured  # another map is coloured again


def test_a_long_attribution_reports_progress_and_stops_on_cancel(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    seen = []
    window.state.subscribe(Event.PROGRESS_CHANGED,
                           lambda role, what: seen.append(window.state.progress.get((role, what))))
    window.state.update_settings(cam_method="ScoreCAM")
    qtbot.waitUntil(lambda: any(f is not None and f > 0 for f in seen), timeout=30000)
    window.state.request_cancel("cat", ATTRIBUTION)
    window.state.request_cancel("baseline", ATTRIBUTION)
    qtbot.waitUntil(lambda: window.controller.pending == 0, timeout=30000)
    assert window.state.progress == {}
    statuses = {role: window.state.attribution_status(role) for role in ("baseline", "cat")}
    assert "ScoreCAM cancelled" in statuses.values()
    for role, status in statuses.items():  # each panel: its map if it finished first, else why not
        assert (status is None) == (window.state.attribution(role) is not None)


def test_an_empty_window_names_the_checkpoint_it_refused(qtbot, window, tmp_path):
    broken = tmp_path / "corrupt.safetensors"
    broken.write_bytes(b"not a checkpoint")
    window.controller.load_checkpoint(broken, "cat")
    wait_messages(qtbot, window, 1)
    assert NO_MODELS_HINT in window.hint.text() and "corrupt.safetensors" in window.hint.text()


def test_a_bad_checkpoint_is_refused_and_the_previous_model_stays(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    previous = window.state.models["cat"]
    pickle_file = tmp_path / "model.pt"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    other = make_checkpoint(tmp_path / "other.safetensors", "cat_tiny", classes=["x", "y"])
    window.controller.resolve_label_conflict = lambda new, old: "cancel"
    for path in (pickle_file, other):
        count = len(window.state.messages)
        window.controller.load_checkpoint(path, "cat")
        wait_messages(qtbot, window, count + 1)
        assert path.name in window.state.messages[-1].text
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
    assert cv2.imread(str(tmp_path / "figure.png")) is not None


def test_export_says_which_images_it_leaves_out_and_why(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    good = write_good_images(tmp_path / "imgs", 2)
    corrupt = tmp_path / "x.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    window.state.add_images([*good, corrupt])
    qtbot.waitUntil(lambda: all(e.image is not None or e.error for e in window.state.images), timeout=20000)
    error = window.state.entry(corrupt).error
    window.image_list.selectAll()
    window.export_figure(str(tmp_path / "figure.png"))
    assert window.state.messages[-1].text == f"figure.png: 1 of 3 images left out, unreadable: {error}"
    assert error.startswith(str(corrupt)) and window.state.messages[-1].error
    qtbot.waitUntil(lambda: (tmp_path / "figure.png").exists(), timeout=20000)


def test_an_image_found_unreadable_only_by_the_export_is_left_out_not_fatal(qtbot, window, checkpoints, tmp_path):
    from catviz.state import ImageEntry

    load_models(qtbot, window, checkpoints)
    good = write_good_images(tmp_path / "imgs", 1)
    window.state.add_images(good)
    wait_results(qtbot, window)
    corrupt = tmp_path / "x.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    undecoded = ImageEntry(corrupt)  # selected before the list decoded it
    window.controller.export_figure(str(tmp_path / "figure.png"), [window.state.entry(good[0]), undecoded])
    qtbot.waitUntil(lambda: any("figure written to" in m.text for m in window.state.messages), timeout=30000)
    message = next(m for m in window.state.messages if "figure written to" in m.text)
    assert "1 left out, unreadable" in message.text and str(corrupt) in message.text and message.error
    assert cv2.imread(str(tmp_path / "figure.png")) is not None


def test_save_view_says_where_it_saved_and_the_dialog_remembers_the_folder(qtbot, window, tmp_path, monkeypatch):
    asked = []
    folder = tmp_path / "figures"
    folder.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: asked.append(args[2]) or (str(folder / "mine"), ""))
    monkeypatch.chdir(tmp_path)
    window.save_view()
    assert asked[0] == str(tmp_path / "catviz-view.png")  # first time: the working folder, as Open's dialogs
    assert (folder / "mine.png").stat().st_size > 0  # the suffix added
    assert window.state.messages[-1].text == f"view saved to {folder / 'mine.png'}"
    assert not window.state.messages[-1].error and window.message_count.text() == "1 message"
    saved = (folder / "mine.png").read_bytes()
    window.save_view()
    assert asked[1] == str(folder / "catviz-view.png")  # the next dialog opens where the last one saved
    # "mine" again: the dialog confirmed nothing about mine.png, so it is kept
    assert "mine.png already exists; not replaced" in window.state.messages[-1].text
    assert (folder / "mine.png").read_bytes() == saved


def test_save_view_into_a_missing_folder_names_the_folder(window, tmp_path):
    missing = tmp_path / "nonexistent_dir"
    window.save_view(str(missing / "v.png"))
    assert window.state.messages[-1].text == f"{missing / 'v.png'}: view not saved, the folder {missing} does not exist"
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    window.save_view(str(blocker / "v.png"))
    assert window.state.messages[-1].text.endswith(f"view not saved, {blocker} is not a folder")
    window.state.models["cat"] = object()  # the check comes before any work
    window.export_figure(str(missing / "f.png"))
    assert window.state.messages[-1].text == f"{missing / 'f.png'}: figure not written, the folder {missing} does not exist"
    del window.state.models["cat"]
    assert not missing.exists()


def test_images_with_the_same_name_show_their_folders(qtbot, window, tmp_path):
    first = write_good_images(tmp_path / "a", 2)
    window.state.add_images(first)
    assert window.image_list.item(0).text() == first[0].name
    second = write_good_images(tmp_path / "b", 1)  # the same file name as a/'s first image
    window.state.add_images(second)
    assert window.image_list.item(0).text() == f"{first[0].name}\na/"
    assert window.image_list.item(2).text() == f"{second[0].name}\nb/"
    assert window.image_list.item(1).text() == first[1].name  # unique names stay as they were
    assert window.image_list.item(2).toolTip() == str(second[0])
    deeper = write_good_images(tmp_path / "x" / "a", 1)  # its parent's name is a/ too: one level more
    window.state.add_images(deeper)
    assert window.image_list.item(0).text() == f"{first[0].name}\n{tmp_path.name}/a/"
    assert window.image_list.item(3).text() == f"{first[0].name}\nx/a/"
    assert window.image_list.item(2).text() == f"{second[0].name}\nb/"


def test_about_names_the_version(window):
    from catviz import __version__

    assert f"catviz {__version__}" in window.about_text()


def test_the_exported_figure_uses_the_views_method(qtbot, window, checkpoints, tmp_path, monkeypatch):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    window.state.update_settings(cam_method="GradCAM", colormap="viridis")
    drawn = []
    render = figure.render_figure
    monkeypatch.setattr(figure, "render_figure", lambda *a, **k: drawn.append((a, k)) or render(*a, **k))
    window.export_figure(str(tmp_path / "figure.png"))
    qtbot.waitUntil(lambda: (tmp_path / "figure.png").exists(), timeout=30000)
    (rows, _, _, _, colormap, method), options = drawn[0]
    assert (method, colormap, options["shared_scale"]) == ("GradCAM", "viridis", True)
    assert all(rows[0].maps[role] for role in ("baseline", "cat"))  # the method's maps, computed for the figure


def test_grad_cam_methods_run_in_a_worker(qtbot, window, checkpoints, tmp_path):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 1))
    wait_results(qtbot, window)
    window.state.update_settings(cam_method="GradCAMPlusPlus")
    qtbot.waitUntil(lambda: window.state.attribution("cat") is not None
                    and window.state.attribution("baseline") is not None, timeout=20000)
    assert window.state.attribution("cat").max() <= 1.0


def test_window_stays_responsive_while_models_run(qtbot, window, tmp_path):
    slow = {role: make_checkpoint(tmp_path / f"{role}.safetensors", f"{role}_tiny", input_size=1024)
            for role in ("baseline", "cat")}  # big inputs: each forward takes a while
    load_models(qtbot, window, slow)
    window.state.add_images(write_good_images(tmp_path / "imgs", 4))
    wait_results(qtbot, window)  # drawn once: first-use costs (imports, caches) are paid
    qtbot.waitUntil(lambda: all(e.image is not None for e in window.state.images), timeout=20000)
    # CPU time of the GUI thread between timer ticks: unlike wall time, it does not grow when
    # other processes load the machine, and a model run on the GUI thread would show in it.
    ticks, last = [], [time.thread_time()]  # (GUI-thread CPU seconds since the previous tick, tasks pending)

    def tick():
        now = time.thread_time()
        ticks.append((now - last[0], window.controller.pending))
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    for i in range(1, 4):  # move on before work finishes: stale work is cancelled
        window.state.select(i)
    qtbot.waitUntil(lambda: window.controller.pending == 0 and window.state.result("cat") is not None, timeout=30000)
    timer.stop()
    busy_ticks = [gap for gap, pending in ticks if pending > 0]
    assert busy_ticks, "the event loop never ran while models were working"
    loaded, image = window.state.models["cat"], window.state.current_entry.image
    start = time.thread_time()
    run_model(loaded, image)  # what one forward costs this thread, for comparison
    forward = time.thread_time() - start
    assert max(gap for gap, _ in ticks) < forward / 2, (max(gap for gap, _ in ticks), forward)
    assert window.state.result("cat", window.state.images[2]) is None  # image 2's work was dropped


def test_settings_persist_across_windows(qtbot, window, checkpoints):
    load_models(qtbot, window, checkpoints)
    window.predictions.slider.setValue(70)
    window.cam_view.positive_only.setChecked(True)
    window.cam_view.per_panel.setChecked(True)
    window.cam_view.opacity.setValue(40)
    window.cam_view.colormap.setCurrentText("viridis")
    QSettings().sync()  # on disk before any quit: a killed app keeps them too
    written = QSettings(QSettings().fileName(), QSettings.Format.IniFormat)
    assert written.value("display/colormap") == "viridis" and written.value("checkpoints/cat") == str(checkpoints["cat"])
    window.close()
    state = AppState()
    again = QtMainWindow(state, InferenceController(state, "cpu"))
    qtbot.addWidget(again)
    s = state.settings
    assert (s.threshold, s.opacity) == (pytest.approx(0.7), pytest.approx(0.4))
    assert (s.positive_only, s.per_panel_scale, s.colormap) == (True, True, "viridis")
    view = again.cam_view
    assert view.positive_only.isChecked() and view.per_panel.isChecked()
    assert (view.opacity.value(), view.colormap.currentText(), again.predictions.slider.value()) == (40, "viridis", 70)
    assert "Threshold 0.70, kept from the last session" in state.messages[-1].text  # it changes marks and F1: said
    again.reopen_last_checkpoints()
    qtbot.waitUntil(lambda: set(state.models) == {"baseline", "cat"}, timeout=20000)
    assert state.models["cat"].path == checkpoints["cat"]
    again.reset_display_settings()
    assert state.settings == DisplaySettings(**{**vars(DisplaySettings()), "label": state.settings.label,
                                                 "query": state.settings.query})
    assert (view.opacity.value(), view.colormap.currentText(), again.predictions.slider.value()) == (75, DIVERGING, 50)
    assert not view.positive_only.isChecked() and not view.per_panel.isChecked()
    again.controller.shutdown()


def test_an_edited_settings_file_with_bad_values_is_ignored_not_applied(qtbot, window, caplog):
    window.close()
    settings = QSettings()
    for key, value in {"threshold": "banana", "colormap": "../../etc/passwd", "opacity": "7",
                       "positive_only": "true"}.items():
        settings.setValue(f"display/{key}", value)
    settings.sync()
    state = AppState()
    again = QtMainWindow(state, InferenceController(state, "cpu"))
    qtbot.addWidget(again)
    s = state.settings
    assert (s.threshold, s.colormap, s.opacity, s.positive_only) == (0.5, state_module.DIVERGING, 0.75, True)
    ignored = {r.args[1] for r in caplog.records if "ignored (invalid)" in r.getMessage()}
    assert ignored == {"threshold", "colormap", "opacity"}
    again.controller.shutdown()


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


def test_the_messages_panel_opens_a_few_lines_tall_not_over_the_plots(qtbot, window):
    for i in range(4):
        window.state.report(f"/tmp/broken{i}.png: not a readable image")
    window.message_count.click()
    qtbot.waitUntil(window.messages.isVisible)
    QApplication.processEvents()
    assert window.messages.height() <= MESSAGES_HEIGHT + 10
    assert window.predictions.height() > 500  # the label table and plots keep their room at 1280x800


def test_a_closed_window_and_its_views_no_longer_hear_the_state(qtbot, window):
    state = window.state
    assert state.subscribers(Event.SELECTION_CHANGED) > 1  # the views and the controller
    window.close()  # the views inside get no close event of their own: the window ends theirs
    assert {event: state.subscribers(event) for event in Event} == dict.fromkeys(Event, 0)
    state.update_settings(threshold=0.3)
    assert window.predictions.slider_label.text() == "0.50"  # not redrawn


def test_a_failing_subscriber_is_reported_in_the_messages_and_the_views_still_update(qtbot, tmp_path,
                                                                                      subscriber_errors):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    state = AppState()

    def broken(keys):
        raise RuntimeError("a view's bug")

    state.subscribe(Event.SETTINGS_CHANGED, broken)  # first: before every view of the window
    window = QtMainWindow(state, InferenceController(state, "cpu"))
    qtbot.addWidget(window)
    window.predictions.slider.setValue(30)
    assert state.settings.threshold == pytest.approx(0.3)
    assert "RuntimeError: a view's bug" in window.messages.texts()[-1]
    assert window.predictions.slider_label.text() == "0.30"  # a later subscriber heard it
    window.close()
    assert len(subscriber_errors) == 1
    subscriber_errors.clear()  # expected
