"""The curves of one or more training runs, drawn with pyqtgraph: the Runs tab shows them and
``catviz runs --out`` writes them (:func:`write_image`), so the paper figure is what the app shows.

Four panels: train loss, val mAP (EMA solid and raw dashed when the run averages weights),
each classifier level's mAP (a dash pattern per level) and the learning rate. One colour per
run; the legend names each run by the fewest trailing parts of its folder that tell it apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt

from catviz.train_cli.paths import distinct_tail

from .runs import Run

PANELS = (("train loss", "train loss"), ("val mAP", "val mAP (%)"), ("mAP of each level", "mAP (%)"),
          ("learning rate", "lr"))
_LEVEL_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)


def run_labels(runs: list[Run]) -> list[str]:
    folders = [r.folder.resolve() for r in runs]
    return [str(distinct_tail(f, folders)) for f in folders]


class QtRunCurves(pg.GraphicsLayoutWidget):
    """Four plots; :meth:`show_runs` redraws them for a list of runs."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        for i, (title, unit) in enumerate(PANELS):
            plot = self.addPlot(row=i // 2, col=i % 2, title=title)
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", unit)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.addLegend(offset=(-10, 10) if title != "train loss" else (-10, 10), labelTextSize="8pt")
            self.plots[title] = plot
        self.plots["learning rate"].setLogMode(y=True)

    def show_runs(self, runs: list[Run]) -> None:
        for plot in self.plots.values():
            plot.clear()
            if plot.legend is not None:
                plot.legend.clear()
        for index, (run, label) in enumerate(zip(runs, run_labels(runs), strict=True)):
            colour = pg.intColor(index, hues=max(len(runs), 1), values=1, maxValue=200)
            for name, (epochs, values) in run.series().items():
                if not epochs:
                    continue
                if name == "train loss":
                    panel, style, text = "train loss", Qt.PenStyle.SolidLine, label
                elif name == "lr":
                    if not any(v > 0 for v in values):
                        continue
                    panel, style, text = "learning rate", Qt.PenStyle.SolidLine, label
                elif name.startswith("val mAP"):
                    raw = name.endswith("(raw)")
                    panel, style = "val mAP", Qt.PenStyle.DashLine if raw else Qt.PenStyle.SolidLine
                    text = label + ("" if name == "val mAP" else (" raw" if raw else " EMA"))
                else:
                    level = name.removeprefix("mAP ")
                    levels = [n for n in run.series() if n.startswith("mAP ")]
                    panel, text = "mAP of each level", f"{label} {level}"
                    style = _LEVEL_STYLES[levels.index(name) % len(_LEVEL_STYLES)]
                pen = pg.mkPen(colour, width=2, style=style)
                self.plots[panel].plot(epochs, values, pen=pen, symbol="o", symbolSize=5, symbolBrush=colour,
                                       symbolPen=None, name=text, connect="finite")


def write_image(runs: list[Run], out: Path, size: tuple[int, int] = (1400, 900)) -> None:
    """Draw ``runs`` and save the picture as ``out`` (PNG/JPEG by suffix), atomically; offscreen
    when no QApplication is running yet (no display needed)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(["catviz runs"])
    pg.setConfigOptions(antialias=True)
    widget = QtRunCurves()
    widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    widget.resize(*size)
    widget.show_runs(runs)
    widget.show()
    app.processEvents()
    picture = widget.grab()
    widget.close()
    widget.deleteLater()
    fmt = "JPG" if out.suffix.lower() in (".jpg", ".jpeg") else "PNG"

    def save(tmp: str) -> None:
        if not picture.save(tmp, fmt):
            raise OSError(f"could not encode {out.name} as {fmt}")

    _atomic_save(out, save)


def _atomic_save(path: Path, write) -> None:
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".catviz-tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
