"""The curves of one or more training runs, drawn with pyqtgraph: the Runs tab shows them and
``catviz runs --out`` writes them (:func:`write_image`), so the paper figure is what the app shows.

Four panels: train loss, val mAP (EMA solid and raw dashed when the run averages weights),
each classifier level's mAP (a dash pattern per level) and the learning rate. One colour per
run; the legend names each run by the fewest trailing parts of its folder that tell it apart.

With ``band`` (a :data:`catviz.runs.BAND_KINDS` key) the runs of a seed group
(:func:`catviz.runs.group_runs`) are drawn as one colour: their mean, and a shaded band
(min-max, or ±1 standard deviation) over the epochs all of them have; the legend says which
band and how many seeds (the level panel: the group's name alone, its other curves say it).
Runs that group with no other are drawn as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt

from catviz.train_cli.paths import distinct_tail

from .runs import BAND_KINDS, Run, SeedGroup, group_runs

PANELS = (("train loss", "train loss"), ("val mAP", "val mAP (%)"), ("mAP of each level", "mAP (%)"),
          ("learning rate", "lr"))
_LEVEL_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine)


def run_labels(runs: list[Run]) -> list[str]:
    """Each run's name in legends: the fewest last parts of its real path that tell it apart
    (the path resolved where the run was read: no file system call here)."""
    folders = [r.resolved or r.folder.absolute() for r in runs]
    return [str(distinct_tail(f, folders)) for f in folders]


def _placement(name: str, label: str, levels: list[str]) -> tuple[str, Qt.PenStyle, str] | None:
    """(panel, line style, legend text) of curve ``name`` of a run or group called ``label``."""
    if name == "train loss":
        return "train loss", Qt.PenStyle.SolidLine, label
    if name == "lr":
        return "learning rate", Qt.PenStyle.SolidLine, label
    if name.startswith("val mAP"):
        raw = name.endswith("(raw)")
        text = label + ("" if name == "val mAP" else (" raw" if raw else " EMA"))
        return "val mAP", Qt.PenStyle.DashLine if raw else Qt.PenStyle.SolidLine, text
    if name in levels:
        return "mAP of each level", _LEVEL_STYLES[levels.index(name) % len(_LEVEL_STYLES)], \
            f"{label} {name.removeprefix('mAP ')}"
    return None


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
            plot.addLegend(offset=(-10, 10), labelTextSize="8pt", brush=(255, 255, 255, 190))
            self.plots[title] = plot
        self.plots["learning rate"].setLogMode(y=True)

    def show_runs(self, runs: list[Run], band: str | None = None) -> tuple[list[SeedGroup], list[tuple[Run, str]]]:
        """Draw ``runs``; with ``band``, each seed group as its mean and band. Returns the groups
        and the runs drawn on their own with why (with ``band``; else none and every run)."""
        if band is not None and band not in BAND_KINDS:
            raise ValueError(f"band must be one of {', '.join(BAND_KINDS)}, not {band!r}")
        for plot in self.plots.values():
            plot.clear()
            if plot.legend is not None:
                plot.legend.clear()
        groups, alone = group_runs(runs) if band else ([], [(run, "") for run in runs])
        shown_alone = {id(run) for run, _ in alone}
        labels = dict(zip(map(id, runs), run_labels(runs), strict=True))
        count = len(groups) + len(alone)
        colours = iter(pg.intColor(i, hues=max(count, 1), values=1, maxValue=200) for i in range(count))
        first_of = {id(g.runs[0]): g for g in groups}
        order = [(None, first_of[id(run)]) if id(run) in first_of else (run, None)
                 for run in runs if id(run) in shown_alone or id(run) in first_of]
        for run, group in order:
            colour = next(colours)
            if group is None:
                self._draw_run(run, labels[id(run)], colour)
            else:
                self._draw_group(group, band, colour)
        return groups, alone

    def _draw_run(self, run: Run, label: str, colour) -> None:
        series = run.series()
        levels = [n for n in series if n.startswith("mAP ")]
        for name, (epochs, values) in series.items():
            place = _placement(name, label, levels)
            if not epochs or place is None or (name == "lr" and not any(v > 0 for v in values)):
                continue
            panel, style, text = place
            pen = pg.mkPen(colour, width=2, style=style)
            self.plots[panel].plot(epochs, values, pen=pen, symbol="o", symbolSize=5, symbolBrush=colour,
                                   symbolPen=None, name=text, connect="finite")

    def _draw_group(self, group: SeedGroup, kind: str, colour) -> None:
        """The group's mean (a line) and band (shaded between two invisible edges)."""
        bands = group.bands(kind)
        levels = [n for n in bands if n.startswith("mAP ")]
        label = f"{group.name} ({len(group.runs)} seeds, {BAND_KINDS[kind]})"
        fill = pg.mkColor(colour)
        fill.setAlpha(50)
        for name, band in bands.items():
            place = _placement(name, label if name not in levels else group.name, levels)
            if place is None or (name == "lr" and not any(v > 0 for v in band.mean if v == v)):
                continue
            panel, style, text = place
            plot = self.plots[panel]
            edges = [plot.plot(band.epochs, values, pen=pg.mkPen(None), connect="finite")
                     for values in (band.low, band.high)]
            shade = pg.FillBetweenItem(*edges, brush=fill)
            shade.setZValue(-10)
            plot.addItem(shade)
            plot.plot(band.epochs, band.mean, pen=pg.mkPen(colour, width=2, style=style), symbol="o", symbolSize=4,
                      symbolBrush=colour, symbolPen=None, name=text, connect="finite")


def write_image(runs: list[Run], out: Path, size: tuple[int, int] = (1400, 900), band: str | None = None) -> None:
    """Draw ``runs`` (with ``band``: seed groups as mean and band) and save the picture as
    ``out`` (PNG/JPEG by suffix), atomically; offscreen when no QApplication is running yet
    (no display needed)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(["catviz runs"])
    pg.setConfigOptions(antialias=True)
    widget = QtRunCurves()
    widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    widget.resize(*size)
    widget.show_runs(runs, band)
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
