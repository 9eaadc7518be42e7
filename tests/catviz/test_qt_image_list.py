"""The image list on its own: row heights before the thumbnails arrive, elided names,
thumbnails of any aspect ratio, and the selection made elsewhere brought into view."""

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSize

from catviz.qt_image_list import THUMB, QtImageList
from catviz.state import AppState, Event

NAMES = ["demo_00.png", "a_very_long_file_name_of_a_photo_taken_in_2024.jpg", "truncated.jpg", "dot.png", "wide.png"]


@pytest.fixture
def image_list(qtbot):
    state = AppState()
    widget = QtImageList(state)
    qtbot.addWidget(widget)
    widget.resize(170, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def add(image_list, names) -> list[Path]:
    paths = [Path("/pictures") / name for name in names]
    image_list.state.add_images(paths)
    image_list.doItemsLayout()
    return paths


def test_rows_have_their_height_before_the_thumbnails_and_names_are_elided(image_list):
    paths = add(image_list, NAMES)
    rects = [image_list.visualItemRect(image_list.item(row)) for row in range(len(paths))]
    assert all(rect.height() >= image_list.iconSize().height() for rect in rects)  # no thumbnail yet: no 14-px rows
    assert all(a.bottom() < b.top() for a, b in zip(rects, rects[1:], strict=False))
    image_list.state.set_image_data(paths[2], None, "truncated.jpg: cannot decode")
    assert image_list.item(2).text() == "truncated.jpg\n(unreadable)"
    width = image_list.viewport().width()
    assert all(rect.right() < width for rect in rects)  # a long name is elided, not cut at the edge
    assert image_list.horizontalScrollBar().maximum() == 0
    image_list.resize(300, 600)  # beside its name, an icon leaves the name two thirds of the width
    assert not image_list.narrow and image_list.iconSize().width() <= image_list.viewport().width() // 3
    image_list.resize(90, 600)  # narrow (an 800-px window): each icon above its name, which gets the whole width
    rect = image_list.visualItemRect(image_list.item(0))
    assert image_list.narrow and image_list.iconSize().width() <= image_list.viewport().width() - 16
    assert rect.height() >= image_list.iconSize().height() + 3 * image_list.fontMetrics().lineSpacing()


@pytest.mark.parametrize("shape", [(1, 1), (1, 144), (144, 1), (100, 144)])
def test_thumbnails_of_any_aspect_fill_a_square(image_list, qtlog, shape):
    (path,) = add(image_list, ["image.png"])
    image_list.state.set_image_data(path, None, None, np.full((*shape, 3), 200, np.uint8))
    image_list.grab()  # painted without "QPainter::begin: Paint device returned engine == 0"
    assert not [record.message for record in qtlog.records if "QPainter" in record.message]
    pixmap = image_list.item(0).icon().pixmap(QSize(THUMB, THUMB))
    assert pixmap.width() == pixmap.height() == THUMB  # never an empty (0-px) pixmap, a 1x1 not a dot
    image = pixmap.toImage()
    middle = [image.pixelColor(THUMB // 2, y).alpha() for y in range(THUMB // 2 - 2, THUMB // 2 + 2)]
    assert max(middle) > 0  # drawn in the middle, letterboxed, at least a pixel each way


def test_an_image_selected_elsewhere_is_selected_alone_and_scrolled_into_view(qtbot, image_list):
    add(image_list, [f"demo_{i:03d}.png" for i in range(200)])
    image_list.setCurrentRow(3)
    image_list.item(5).setSelected(True)  # an extended selection for a figure
    (path,) = add(image_list, ["opened_from_the_dataset_tab.png"])  # appended at the end
    image_list.state.select(200)
    qtbot.waitUntil(lambda: image_list.viewport().rect().contains(image_list.visualItemRect(image_list.item(200))))
    assert [index.row() for index in image_list.selectedIndexes()] == [200]


def test_a_closed_or_destroyed_view_no_longer_hears_the_state(qtbot):
    state = AppState()
    closed, destroyed = QtImageList(state), QtImageList(state)
    qtbot.addWidget(closed)
    assert state.subscribers(Event.IMAGES_ADDED) == 2
    closed.close()
    destroyed.deleteLater()
    qtbot.waitUntil(lambda: state.subscribers(Event.IMAGES_ADDED) == 0)
    state.add_images([Path("/pictures/a.png")])  # would add a row to a listening list
    assert closed.count() == 0
    assert all(state.subscribers(event) == 0 for event in Event)
