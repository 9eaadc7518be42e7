"""catviz.qt_gc: the cycle collector on the GUI thread, and the model side frozen out of it."""

import gc

from catviz import qt_gc


def test_the_model_side_is_frozen_out_of_the_collector_once_per_process(monkeypatch):
    """catviz.qt_gc.freeze_long_lived: gc.freeze once (later calls would freeze the garbage of
    whatever ran since, e.g. a test suite's windows)."""
    calls = []
    monkeypatch.setattr(qt_gc, "_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(1))
    qt_gc.freeze_long_lived()
    qt_gc.freeze_long_lived()
    assert calls == [1]
