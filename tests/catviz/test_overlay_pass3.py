"""Issue 27: panel titles stay within their panel (wrapped), whatever their length."""

import pyqtgraph as pg
import pytest

from catviz.qt_overlay import OverlayPanel

LONG = ("<b>Baseline</b> · a_rather_long_label_name_of_twenty p=0.49<br>CAM (complete) · combined (S5)<br>"
        "logit contribution<br>its largest value reaches 1% of the shared scale: Per-panel scale shows its shape")


@pytest.mark.parametrize("width", [1024 - 170 - 350, 760])  # the centre at the minimum and at 1280x800
def test_a_long_title_wraps_within_its_panel(qtbot, width):
    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    widget.resize(width, 500)
    layout = widget.ci
    panels = [OverlayPanel(layout, 0, col, "") for col in range(2)]
    panels[0].set_title(LONG)
    panels[1].set_title("<b>CAT</b> · short")
    widget.show()
    qtbot.waitExposed(widget)
    for panel in panels:
        title = panel.title
        qtbot.waitUntil(lambda t=title: t.width() > 0)
        inside = title.mapRectToScene(title.itemRect())
        own = title.mapRectToScene(title.rect())
        assert own.left() - 1 <= inside.left() and inside.right() <= own.right() + 1, (inside, own)
        assert 0 <= inside.left() and inside.right() <= width
        qtbot.waitUntil(lambda t=title: t.height() + 1 >= t.itemRect().height(), timeout=2000)  # every line shown
