"""Layer colours: one per name, the same in later sessions."""

import json

import pytest
from PySide6.QtCore import QSettings

from catviz import qt_predictions
from catviz.qt_predictions import LAYER_COLORS_KEY, OFFSET, OFFSET_COLOR, PALETTE, layer_color


@pytest.fixture
def fresh_session(tmp_path, monkeypatch):
    """A new session: an empty registry, settings in a temporary folder."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setattr(qt_predictions, "_LAYER_COLORS", {})
    return lambda: monkeypatch.setattr(qt_predictions, "_LAYER_COLORS", {})


def test_each_name_keeps_its_colour_in_a_later_session_whatever_is_drawn_first(qapp, fresh_session):
    first = {name: layer_color(name) for name in ("P5", "P4", "P3", "S5")}
    assert len(set(first.values())) == 4 and layer_color(OFFSET) == OFFSET_COLOR
    fresh_session()  # the next session draws the baseline's chart first
    assert {name: layer_color(name) for name in ("S5", "P3", "P5", "P4")} == first
    assert layer_color("R5") not in first.values()  # a new name gets a free colour


def test_damaged_saved_colours_are_ignored(qapp, fresh_session):
    QSettings().setValue(LAYER_COLORS_KEY, json.dumps({"P5": "javascript:alert(1)", "P4": PALETTE[3], "7": 5}))
    fresh_session()
    assert layer_color("P4") == PALETTE[3] and layer_color("P5") == PALETTE[0]
    QSettings().setValue(LAYER_COLORS_KEY, "not json")
    fresh_session()
    assert layer_color("P5") == PALETTE[0]
