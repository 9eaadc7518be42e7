"""The Dataset tab, driven as a user would: open a split, wait for the pass, use every view."""

import threading

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from catviz import dataset_results
from catviz.dataset_report import focus_label
from catviz.dataset_state import DatasetEvent
from catviz.inference import load_model
from catviz.qt_dataset_tables import LOSS, NumberItem, finished_text, make_table, signed_text
from catviz.qt_dataset_view import QtDatasetView
from catviz.state import AppState

from .conftest import CLASSES, make_checkpoint
from .dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


@pytest.fixture
def view(qtbot, tmp_path, small_checkpoints):  # noqa: F811
    state = AppState()
    for role, path in small_checkpoints.items():
        state.set_model(role, load_model(path, torch.device("cpu")))
    opened = []
    widget = QtDatasetView(state, on_open=lambda: opened.append(state.current_entry), cache_dir=tmp_path / "cache")
    widget.opened = opened
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    yield widget
    widget.shutdown()


def wait_report(qtbot, view):
    with qtbot.waitSignal(view.report_ready, timeout=60000):
        pass


def test_the_tab_shows_every_view_and_opens_images(qtbot, view, tmp_path, monkeypatch):
    root = write_boxes_dataset(tmp_path / "data", broken=(3,))
    with qtbot.waitSignal(view.report_ready, timeout=60000):
        view.open("coco-format", root)
    report = view.report
    assert "coco-format val (7 images, 5 labels)" in view.title.text()
    assert view.progress.format() == f"done: 6 of 7 images scored ({view.results.seconds:.1f} s)"
    assert view.progress.fontMetrics().horizontalAdvance(view.progress.format()) < view.progress.width()  # one line
    assert view.progress.toolTip().startswith("6 of 7 images scored by both models; 1 could not be decoded and is left out")
    assert view.failed_button.isVisible() and view.failed_button.text().startswith("1 image not decoded")
    assert "6 of 7 images scored by both models; 1 could not be decoded and is left out." in view.summary_note.text()
    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: shown.append(text))
    view.show_failed()
    assert shown[0].startswith("1 image could not be decoded; it is left out of every score.")

    summary = {view.summary.item(r, 0).text(): r for r in range(view.summary.rowCount())}
    assert view.summary.item(summary["mAP"], 1).text() == f"{report.summary['baseline']['mAP']:.1f}"
    assert view.summary.item(summary["mAP"], 2).text() == f"{report.summary['cat']['mAP']:.1f}"
    assert [name.split()[3] for name in summary if "classifier alone" in name] == ["P5", "P4", "P3"]
    assert "The numbers equal what catviz-eval prints" in view.summary_note.text()
    assert view.list_note.text().startswith("The image list shows 0 of the 7 images (catviz --limit)")

    table = view.per_class
    assert table.rowCount() == len(CLASSES)
    first = [table.item(r, 4).value for r in range(table.rowCount())]  # as opened: largest Δ AP first
    assert [d for d in first if np.isfinite(d)] == sorted((d for d in first if np.isfinite(d)), reverse=True)
    table.sortItems(4, Qt.SortOrder.DescendingOrder)  # by Δ AP
    deltas = [table.item(r, 4).value for r in range(table.rowCount())]
    finite = [d for d in deltas if np.isfinite(d)]
    assert finite == sorted(finite, reverse=True)
    cat_row = next(r for r in range(table.rowCount()) if table.item(r, 0).text() == "cat")
    table.selectRow(cat_row)  # selecting a class filters the images
    assert view.label_filter.currentText() == "cat"
    cat_images = {i for i in report.images if view.data.targets[i, 0] == 1}
    assert set(view.images_model.rows.tolist()) == cat_images

    assert view.size_table.rowCount() == len(report.by_size["pixels"])
    assert view.size_table.item(0, 0).text() == "small"
    assert len(view.size_plot.getPlotItem().items) == 4  # AP and recall of both models
    view.size_mode.setCurrentIndex(1)
    assert view.size_table.item(0, 0).text() == "< 1%"

    view.label_filter.setCurrentIndex(0)
    view.bucket_filter.setCurrentIndex(view.bucket_filter.findText("small"))
    small = {int(i) for i in view.images_model.rows}
    assert small == {i for i in report.images if (report.pixel_bucket[i] == 0).any()}
    view.bucket_filter.setCurrentIndex(0)
    assert view.images_model.rowCount() == 6
    gains = [report.f1_gain[i] for i in view.images_model.rows]
    assert gains == sorted(gains, reverse=True)
    view.fixes_filter.setChecked(True)
    assert all(report.fixes[i] for i in view.images_model.rows)
    view.fixes_filter.setChecked(False)
    view.label_filter.setCurrentIndex(1 + CLASSES.index("dog"))
    view.breaks_filter.setChecked(True)  # with a label chosen: a broken hit of that label
    assert all(report.broken[i, CLASSES.index("dog")] for i in view.images_model.rows)
    view.breaks_filter.setChecked(False)
    view.label_filter.setCurrentIndex(0)
    i = int(view.images_model.rows[0])
    report.fixed[i, 0] = report.broken[i, 1] = True  # Report.fixes and .breaks derive from these
    assert view.images_model.data(view.images_model.index(0, 8)).startswith("fixes a miss: cat; breaks a hit: dog")
    view.thumbnails.pixmaps.pop(view.data.paths[-1], None)
    view.thumbnails.get(view.data.paths[-1])  # asked for (as a painted row does): busy until it arrives
    assert view.busy
    qtbot.waitUntil(lambda: view.images_model.data(view.images_model.index(0, 0), Qt.ItemDataRole.DecorationRole)
                    is not None, timeout=10000)  # thumbnails arrive from a worker
    qtbot.waitUntil(lambda: not view.busy, timeout=10000)  # catviz --screenshot waits for them too

    view.open_image(1)  # the second-ranked image, into the compare view with its ground truth
    i = int(view.images_model.rows[1])
    entry = view.state.current_entry
    assert entry.path == view.data.paths[i]
    assert entry.ground_truth == {CLASSES[c] for c in np.flatnonzero(view.data.targets[i] == 1)}
    assert view.opened == [entry]
    assert "shows 1 of the 7 images" in view.list_note.text()
    focus = focus_label(report, view.pair_data, i)  # no label filter: the label the row is about (issue 27)
    assert view.state.settings.label == (CLASSES[focus] if focus is not None else None)

    view.label_filter.setCurrentIndex(1 + CLASSES.index("dog"))
    view.open_image(0)
    assert view.state.current_entry.path == view.data.paths[int(view.images_model.rows[0])]
    assert view.state.shown_label() == "dog" == view.state.settings.label
    view.state.update_settings(label_mode="fixed", label="cat")
    view.open_image(1)  # a fixed label holds for every image, whatever the filter
    assert view.state.shown_label() == "cat" == view.state.settings.label
    view.state.update_settings(label_mode="top", label=None)

    with qtbot.waitSignal(view.report_ready, timeout=60000):
        view.state.update_settings(threshold=0.3)
    note = view.summary_note.text()
    assert "Threshold 0.3." in note and "The numbers equal" not in note
    assert "CP, CR, CF1, OP, OR, OF1 are at threshold 0.3 (catviz-eval uses 0.5)" in note


def test_the_finished_pass_says_how_its_rows_were_got_in_a_few_words():
    assert finished_text(True, 20, 20, 0, 0.0) == "done: 20 of 20 images scored (from the cache)"
    assert finished_text(True, 19, 20, 12, 0.5) == "done: 19 of 20 images scored (8 cached, 0.5 s)"
    assert finished_text(False, 12, 20, 12, 0.3) == "cancelled: 12 of 20 images scored (0.3 s)"


def test_differences_that_round_to_zero_show_as_zero_without_colour():
    assert signed_text(-0.04) == ("0.0", None) and signed_text(0.004, 2) == ("0.00", None)
    assert signed_text(-0.06) == ("-0.1", LOSS) and signed_text(float("nan")) == ("–", None)
    item = NumberItem(-0.01, signed=True)
    assert item.text() == "0.0" and item.foreground().color() != LOSS


@pytest.mark.parametrize("order", [Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder])
def test_numbers_without_a_value_sort_last_in_either_order(qtbot, order):
    table = make_table(["AP"])
    qtbot.addWidget(table)
    table.setRowCount(3)
    for r, value in enumerate([1.0, None, 3.0]):
        table.setItem(r, 0, NumberItem(value))
    table.horizontalHeader().setSortIndicator(0, order)
    table.setSortingEnabled(True)
    texts = [table.item(r, 0).text() for r in range(3)]
    assert texts == (["1.0", "3.0", "–"] if order == Qt.SortOrder.AscendingOrder else ["3.0", "1.0", "–"])


def test_cancel_keeps_what_was_computed_and_run_continues(qtbot, view, tmp_path, monkeypatch):
    real = dataset_results.run_dataset
    cancel_clicked, threads = threading.Event(), []

    def held_after_the_first_batch(source, models, batch, workers, cache_dir, progress, cancelled):
        threads.append(threading.current_thread())

        def hold(p):
            progress(p)
            cancel_clicked.wait(30)

        return real(source, models, batch, workers, cache_dir, hold, cancelled)

    monkeypatch.setattr(dataset_results, "run_dataset", held_after_the_first_batch)
    view.batch.setValue(2)
    view.open("coco-format", write_boxes_dataset(tmp_path / "data"))
    qtbot.waitUntil(lambda: view.progress.maximum() == len(VAL), timeout=60000)  # the first batch is reported
    with qtbot.waitSignal(view.report_ready, timeout=60000):
        qtbot.mouseClick(view.cancel_button, Qt.MouseButton.LeftButton)
        cancel_clicked.set()
    assert threads and threads[0] is not threading.main_thread()  # the GUI thread never runs a model
    assert not view.results.complete and view.progress.format().startswith("cancelled: 2 of 7")
    assert "press Run to continue" in view.summary_note.text()
    monkeypatch.setattr(dataset_results, "run_dataset", real)
    shown = []  # the bar's text after each progress, as drawn (the view heard it first)
    view.state.dataset.subscribe(DatasetEvent.PROGRESS_CHANGED, lambda p: shown.append(view.progress.format()))
    with qtbot.waitSignal(view.report_ready, timeout=60000):
        qtbot.mouseClick(view.run_button, Qt.MouseButton.LeftButton)
    assert view.results.complete and view.results.computed == len(VAL) - 2
    assert shown[-1].startswith(f"{len(VAL)} / {len(VAL)} images (2 from the cache)")  # the whole pass


def test_bad_dataset_and_mismatched_labels_are_messages(qtbot, view, tmp_path):
    view.open("coco-format", tmp_path / "missing")
    qtbot.waitUntil(lambda: "not found" in view.message.text(), timeout=20000)
    assert str(tmp_path / "missing") in view.message.text()
    assert "Could not open" in view.title.text()

    other = make_checkpoint(tmp_path / "other.safetensors", "cat_tiny", classes=["cat", "dog", "car", "bus", "lamp"],
                            input_size=32)
    view.state.set_model("cat", load_model(other, torch.device("cpu")))
    view.open("coco-format", write_boxes_dataset(tmp_path / "data"))
    qtbot.waitUntil(lambda: "lamp" in view.message.text(), timeout=60000)
    assert "tree" in view.message.text() and view.progress.format() == "failed"


def test_catviz_dataset_opens_the_tab_and_fills_it(qtbot, tmp_path, monkeypatch, small_checkpoints):  # noqa: F811
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from catviz import app
    from catviz.qt_main_window import QtMainWindow

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("CATVIZ_CACHE_DIR", str(tmp_path / "cache"))
    windows = []
    monkeypatch.setattr(QtMainWindow, "show", lambda self: windows.append(self))
    monkeypatch.setattr(QApplication, "exec", lambda self: 0)  # return at once; the test drives the loop
    from catviz.qt_workers import InferenceController

    real_shutdown = InferenceController.shutdown  # main shuts the workers down after exec: not yet here
    monkeypatch.setattr(InferenceController, "shutdown", lambda self, *args: None)
    screenshots = []  # --screenshot waits for the dataset pass too: it is handed the view
    monkeypatch.setattr(app, "_screenshot_when_ready", lambda *args: screenshots.append(args))
    root = write_boxes_dataset(tmp_path / "data")
    assert app.main(["--dataset", "coco-format", "--data-root", str(root), "--device", "cpu", "--limit", "3",
                     "--baseline", str(small_checkpoints["baseline"]), "--cat", str(small_checkpoints["cat"]),
                     "--screenshot", str(tmp_path / "shot.png")]) == 0
    monkeypatch.setattr(InferenceController, "shutdown", real_shutdown)  # the window's close shuts them down
    window = windows[0]
    qtbot.addWidget(window)
    view = window.tabs.currentWidget()
    assert isinstance(view, QtDatasetView) and window.tabs.tabText(window.tabs.currentIndex()) == "Dataset"
    assert screenshots[0][3] is view and view.busy  # opening the split
    qtbot.waitUntil(lambda: view.report is not None, timeout=60000)
    qtbot.waitUntil(lambda: not view.busy, timeout=10000)  # thumbnails of the shown rows may still load
    assert len(view.report.images) == len(VAL)
    assert not view.list_note.isHidden() and "shows 3 of the 7 images" in view.list_note.text()
    window.image_list.item(0).setSelected(True)
    row = next(r for r in range(len(VAL)) if view.images_model.image_index(r) >= 3)  # not in the list
    view.open_image(row)
    assert window.tabs.currentWidget() is window.cam_view
    assert window.image_list.count() == 4 and window.image_list.currentRow() == 3  # appended, and current
    assert [index.row() for index in window.image_list.selectedIndexes()] == [3]  # selected alone
    assert "shows 4 of the 7 images" in view.list_note.text()
    view.shutdown()
    window.controller.wait()


def test_a_closed_tab_no_longer_hears_the_state(qtbot, view):
    d = view.state.dataset
    assert d.subscribers(DatasetEvent.REPORT_READY) == 1
    view.close()
    assert all(d.subscribers(event) == 0 for event in DatasetEvent)
    d.opening("voc")
    assert "Opening" not in view.title.text()
