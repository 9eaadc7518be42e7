"""The plain-Python state: no Qt needed to drive it."""

from pathlib import Path

import numpy as np

from catviz import state as state_module
from catviz.state import AppState


def test_images_selection_and_events(tmp_path):
    state = AppState()
    events = []
    for name in ("images_added", "selection_changed", "settings_changed", "message"):
        state.subscribe(name, lambda *args, name=name: events.append(name))
    (tmp_path / "d").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"x")
    added = state.add_images([tmp_path / "d", tmp_path / "d" / "a.jpg", tmp_path / "x.txt"])
    assert [e.path.name for e in added] == ["a.jpg", "b.png", "x.txt"]  # folder: images only, no duplicates
    assert state.current == 0 and events[:2] == ["images_added", "selection_changed"]
    state.step(5)
    assert state.current == 2
    state.step(-9)
    assert state.current == 0
    state.set_image_data(added[2].path, None, "x.txt: not a readable image")
    assert state.messages == ["x.txt: not a readable image"] and "message" in events
    state.update_settings(threshold=0.3)
    assert state.settings.threshold == 0.3


def test_result_cache_is_bounded_and_keeps_the_newest(monkeypatch):
    monkeypatch.setattr(state_module, "MAX_CACHED_RESULTS", 3)
    state = AppState()
    for i in range(5):
        state.set_result(Path(f"{i}.png"), "cat", object())
    assert [p.name for p, _ in state.results] == ["2.png", "3.png", "4.png"]
    state.set_result(Path("2.png"), "cat", np.zeros(1))  # refreshed: now the newest
    state.set_result(Path("5.png"), "cat", object())
    assert [p.name for p, _ in state.results] == ["4.png", "2.png", "5.png"]
