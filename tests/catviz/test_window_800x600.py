"""Issue 27, item 10: the window fits an 800x600 screen, every tab and the side panel whole."""

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QWidget,
)

from catviz.qt_layouts import QtFittingLabel
from catviz.qt_main_window import MINIMUM_SIZE
from catviz.qt_overlay import LEAST_MAP_PX

from .conftest import write_good_images
from .test_main_window import load_models, wait_results


def text_of(widget: QWidget) -> str:
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QAbstractSpinBox):
        return widget.text()
    if isinstance(widget, QLineEdit):
        return widget.text() or widget.placeholderText()
    return widget.text()


def needed_width(widget: QWidget) -> int:
    """The least width at which ``widget`` shows its text whole (its own size hints, which
    Qt's layouts honour unless the window is smaller than the layout's minimum)."""
    if isinstance(widget, QtFittingLabel):  # shows the longest of its texts that fits
        return widget._size(widget.text()).width()
    if isinstance(widget, QLineEdit):
        margins = widget.textMargins().left() + widget.textMargins().right()
        return widget.fontMetrics().horizontalAdvance(text_of(widget)) + margins + 8  # frame and Qt's own margins
    if isinstance(widget, QAbstractButton) or (isinstance(widget, QLabel) and not widget.wordWrap()):
        return widget.sizeHint().width()
    return widget.minimumSizeHint().width()


def cut_texts(window) -> list[str]:
    """Every visible text widget narrower than its text needs, or a wrapped label shorter than
    its lines; every header or number column of the label table narrower than its text."""
    cut = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisible() or not isinstance(widget, (QLabel, QAbstractButton, QComboBox, QLineEdit,
                                                             QAbstractSpinBox)):
            continue
        if isinstance(widget.parent(), (QComboBox, QAbstractSpinBox)):  # a part of one: the whole is checked
            continue
        if not text_of(widget):
            continue
        if widget.width() < needed_width(widget):
            cut.append(f"{type(widget).__name__} {text_of(widget)!r}: {widget.width()} < {needed_width(widget)} px")
        if isinstance(widget, QLabel) and widget.wordWrap() and widget.height() < widget.heightForWidth(widget.width()):
            cut.append(f"wrapped {text_of(widget)!r}: {widget.height()} < {widget.heightForWidth(widget.width())} px tall")
    table = window.predictions.table
    header = table.header()
    for column in range(table.columnCount()):
        need = header.sectionSizeHint(column)
        if column:  # the label names elide (each has its tooltip); the numbers and marks never
            need = max(need, table.sizeHintForColumn(column))
        if header.sectionSize(column) < need:
            cut.append(f"table column {table.headerItem().text(column)!r}: {header.sectionSize(column)} < {need} px")
    if header.length() > table.viewport().width():
        cut.append(f"table columns {header.length()} px in a {table.viewport().width()} px view")
    return cut


def test_the_least_window_size_is_800x600():
    assert MINIMUM_SIZE[0] <= 800 and MINIMUM_SIZE[1] <= 600


@pytest.mark.parametrize("tab", ["cam_view", "attention_view", "runs_view"])
def test_every_tab_and_the_side_panel_fit_800x600_without_cutting_a_text(qtbot, window, checkpoints, tmp_path, tab):
    load_models(qtbot, window, checkpoints)
    window.state.add_images(write_good_images(tmp_path / "imgs", 2))
    wait_results(qtbot, window)
    window.resize(800, 600)
    window.tabs.setCurrentWidget(getattr(window, tab))
    qtbot.waitUntil(lambda: window.size().toTuple() == (800, 600))
    QApplication.processEvents()
    minimum = window.minimumSizeHint()  # what the layouts need: below it Qt squeezes widgets past their text
    assert minimum.width() <= 800 and minimum.height() <= 600, minimum
    assert cut_texts(window) == []
    if tab == "cam_view":  # the maps keep a visible size; the canvas scrolls instead
        views = [p.view for p in [*window.cam_view.panels.values(), *window.cam_view.level_panels.values()]]
        assert min(view.size().height() for view in views) >= LEAST_MAP_PX - 1


def test_the_dataset_tab_leaves_the_image_list_readable_at_800x600(qtbot, window):
    """The Dataset tab's button row, its five tabs and its filters once set the middle column's
    least width at 546 px, which left the image list 55-70 px wide at 800x600."""
    from catviz.qt_dataset_view import QtDatasetView

    view = QtDatasetView(window.state, on_open=lambda: None)
    view.pair_note.setText("Models and Per class: every loaded model against the reference. Summary, By size, "
                           "Per image: the panels' models, left baseline_tiny (demo_baseline) and right cat_tiny "
                           "(demo_cat) (Models ▸ Left/Right panel).")
    window.tabs.addTab(view, "Dataset")
    window.resize(800, 600)
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: window.size().toTuple() == (800, 600))
    for page in range(view.views.count()):
        view.views.setCurrentIndex(page)
        QApplication.processEvents()
        assert window.image_list.width() >= 140, (view.views.tabText(page), window.splitter.sizes())
    assert window.minimumSizeHint().width() <= 800
    note = view.pair_note  # beside or below the Reference box, as tall as its lines there: nothing cut
    assert note.height() >= note.heightForWidth(note.width()), (note.size(),)
