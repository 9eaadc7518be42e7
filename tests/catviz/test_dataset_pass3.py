"""Issue 27 (items 13, 14): a Per image row says which labels CAT changes, and opens on the one it is about."""

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from catviz.dataset_report import ReportInput, build_report
from catviz.inference import load_model
from catviz.qt_dataset_view import QtDatasetView
from catviz.qt_predictions import QtPredictions
from catviz.state import AppState

from .conftest import CLASSES, write_good_images

# CLASSES = cat, dog, car, bus, tree. Image 0: CAT fixes "dog" (a miss) and drops a false positive "bus";
# image 1: only F1 gains from a removed false positive "car"; image 2: nothing crosses the threshold.
TARGETS = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], np.int8)
BASELINE = np.array([[0.9, 0.2, 0.1, 0.7, 0.1], [0.8, 0.1, 0.6, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.3]], np.float32)
CAT = np.array([[0.9, 0.8, 0.1, 0.2, 0.1], [0.8, 0.1, 0.3, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.45]], np.float32)


@pytest.fixture
def view(qtbot, tmp_path, checkpoints):
    state = AppState()
    for role, path in checkpoints.items():
        state.set_model(role, load_model(path, torch.device("cpu")))
    widget = QtDatasetView(state, cache_dir=tmp_path / "cache")
    predictions = QtPredictions(state)
    qtbot.addWidget(widget)
    qtbot.addWidget(predictions)
    widget.predictions = predictions
    paths = write_good_images(tmp_path / "val", 3)
    data = ReportInput(CLASSES, paths, TARGETS, {"baseline": BASELINE, "cat": CAT}, {}, [np.zeros((0, 4))] * 3,
                       np.full((3, 2), 64), 96, {}, np.ones(3, bool))
    state.dataset.data, state.dataset.report = data, build_report(data, 0.5)
    widget.label_filter.addItems(["all labels", *CLASSES])  # as _on_opened fills it
    widget._apply_filters()
    yield widget
    widget.shutdown()


def _row_of(view, image: int) -> int:
    return list(view.images_model.rows).index(image)


def test_the_change_column_names_the_labels_and_false_positive_gains(view):
    model = view.images_model
    text = {i: model.data(model.index(_row_of(view, i), 8)) for i in range(3)}
    assert text[0] == "fixes a miss: dog; drops a false positive: bus"
    assert text[1] == "drops a false positive: car"  # an F1 gain with no miss fixed: said why
    assert text[2] == ""


@pytest.mark.parametrize("label_filter", [None, "cat"])
def test_opening_a_row_shows_the_label_it_is_about_and_the_label_box_says_so(qtbot, view, label_filter):
    if label_filter is not None:
        view.label_filter.setCurrentIndex(CLASSES.index(label_filter) + 1)
    view.open_image(_row_of(view, 0))
    expected = label_filter or "dog"  # no filter: the label CAT fixes, not the top prediction
    assert view.state.shown_label() == expected
    box = view.predictions.mode
    assert expected in box.currentText() and box.currentText() != "Top prediction"
    shown = view.predictions.table.selectedItems()
    assert shown and shown[0].data(0, Qt.ItemDataRole.UserRole) == expected or view.state.result("cat") is None
