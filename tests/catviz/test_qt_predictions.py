"""Layer colours: one per name, defined once (catviz.colors), the same whatever is drawn first."""

from catviz import colors
from catviz.qt_predictions import OFFSET, OFFSET_COLOR, layer_color


def test_each_name_keeps_its_colour_whatever_is_drawn_first():
    first = {name: layer_color(name) for name in ("P5", "P4", "P3")} | {"S5": layer_color("S5", colors.OF_BASELINE)}
    assert len(set(first.values())) == 4 and layer_color(OFFSET) == OFFSET_COLOR
    assert {name: layer_color(name) for name in ("P3", "P5", "P4")} | {"S5": layer_color("S5", colors.OF_BASELINE)} \
        == first
    assert layer_color("R5", colors.SOURCE) not in first.values()  # P5 after LRD: P5's hue, lighter
    assert layer_color("Q7") == layer_color("Q7") in colors.SPARE  # a name no model here has: a fixed spare colour
