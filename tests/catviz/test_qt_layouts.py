"""catviz.qt_layouts.QtFlowLayout: a filling item takes the rest of its line, wherever it lands."""

from PySide6.QtWidgets import QProgressBar, QPushButton, QWidget

from catviz.qt_layouts import QtFlowLayout


def test_a_filling_item_takes_the_rest_of_its_line_beside_or_below_the_others(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    flow = QtFlowLayout(host)
    buttons = [QPushButton(f"button {k}") for k in range(3)]
    for button in buttons:
        flow.addWidget(button)
    bar = QProgressBar()
    flow.add_filling(bar)
    host.show()
    for width in (900, buttons[0].sizeHint().width() * 3 + 40):
        host.resize(width, flow.heightForWidth(width))
        qtbot.waitUntil(lambda w=width: host.width() == w)
        flow.setGeometry(host.rect())
        assert bar.geometry().right() == host.rect().right()  # to the edge
        beside = bar.geometry().top() == buttons[0].geometry().top()
        assert beside == (width == 900), (width, bar.geometry(), buttons[-1].geometry())
        if not beside:  # a line of its own: all of it
            assert bar.geometry().left() == host.rect().left()
