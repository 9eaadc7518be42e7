"""Issue 27: the image list's highlighted rows are the image shown (real mouse events)."""

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from catviz.qt_image_list import QtImageList
from catviz.state import AppState


@pytest.fixture
def image_list(qtbot):
    widget = QtImageList(AppState())
    qtbot.addWidget(widget)
    widget.resize(170, 400)
    widget.show()
    qtbot.waitExposed(widget)
    widget.state.add_images([Path(f"/pictures/img{i:02}.png") for i in range(20)])
    widget.doItemsLayout()
    row_height = widget.visualItemRect(widget.item(0)).height()
    frame = widget.height() - widget.viewport().height()
    widget.resize(170, frame + 4 * row_height + row_height // 2)  # the fifth row half visible
    qtbot.waitUntil(lambda: widget.viewport().height() == 4 * row_height + row_height // 2)
    return widget


def _partly_visible_bottom_row(image_list) -> int:
    height = image_list.viewport().height()
    for row in range(image_list.count()):
        rect = image_list.visualItemRect(image_list.item(row))
        if rect.top() < height < rect.bottom():
            return row
    pytest.skip("no partly visible row at this size")


@pytest.mark.parametrize("modifier", [Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier])
def test_clicking_the_lower_edge_of_a_partly_visible_row_shows_the_row_it_highlights(qtbot, image_list, modifier):
    row = _partly_visible_bottom_row(image_list)
    top = image_list.visualItemRect(image_list.item(row)).top()
    at = QPoint(40, image_list.viewport().height() - 2)  # the lower edge of the viewport, inside that row
    assert top < at.y()
    qtbot.mouseClick(image_list.viewport(), Qt.MouseButton.LeftButton, modifier, at)
    selected = sorted(i.row() for i in image_list.selectedIndexes())
    shown = image_list.state.current
    assert shown in selected and image_list.currentRow() == shown
    if modifier == Qt.KeyboardModifier.NoModifier:
        assert selected == [shown] == [row], (selected, shown, row)
    rect = image_list.visualItemRect(image_list.item(shown))
    assert 0 <= rect.top() and rect.bottom() <= image_list.viewport().height()  # now wholly in view


def test_keys_still_bring_the_shown_row_into_view(qtbot, image_list):
    image_list.setFocus()
    for _ in range(8):
        qtbot.keyClick(image_list, Qt.Key.Key_Down)
    assert image_list.state.current == 8 == image_list.currentRow()
    rect = image_list.visualItemRect(image_list.item(8))
    assert 0 <= rect.top() and rect.bottom() <= image_list.viewport().height()
