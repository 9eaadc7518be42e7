"""The Qt binding itself: PySide6 6.12.0 leaks a reference to ``None`` on every void method
call, so a catviz session died with "Fatal Python error: deallocating None" after some
10^5 widget updates (the test suite died at exit). pyproject.toml keeps PySide6 below it;
this fails if an installed binding has the leak."""

import sys

from PySide6.QtWidgets import QLabel


def test_void_qt_calls_keep_none_alive(qapp):
    label = QLabel()
    label.setText("warm-up")
    before = sys.getrefcount(None)
    for _ in range(10_000):
        label.setText("x")
        label.setVisible(False)
    assert sys.getrefcount(None) - before > -1_000  # the leak: -20,000
