"""Python's cycle collector on the GUI thread only (no torch here: views import this)."""

from __future__ import annotations

from pyqtgraph.util.garbage_collector import GarbageCollector

_gui_thread_gc: GarbageCollector | None = None


def collect_garbage_on_gui_thread() -> None:
    """Turn Python's automatic cycle collection off; collect on a GUI-thread timer instead.

    The automatic collector runs in whichever thread happens to allocate. When a worker
    thread collects a cycle that holds a Qt object, ``~QObject`` runs there and can
    deadlock against the GUI thread (seen in the test suite: a worker's collection held a
    QObject mutex and waited for the GIL, which the GUI thread held while deleting a QMenu
    and waiting for that mutex). pyqtgraph's ``GarbageCollector`` does the collecting on a
    timer. Call on the GUI thread before starting worker threads; later calls do nothing.
    """
    global _gui_thread_gc
    if _gui_thread_gc is None:
        _gui_thread_gc = GarbageCollector(interval=1.0)
