"""Python's cycle collector on the GUI thread only (no torch here: views import this)."""

from __future__ import annotations

import gc

from pyqtgraph.util.garbage_collector import GarbageCollector

_gui_thread_gc: GarbageCollector | None = None
_frozen = False


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


def freeze_long_lived() -> None:
    """Move every object alive now to the collector's permanent generation, once per process.

    For what lives as long as the process, made in one go: the model side's import (torch,
    timm: ~1,500 modules with their functions and classes) made each later full collection
    on the GUI thread take ~0.1 s on this 2-core CPU, several of them during start-up; frozen,
    they take ~30 ms. Nothing is collected or finalised here, so any thread may call it; the
    few cycles that are garbage at that moment stay (once: later calls do nothing)."""
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True
