"""The Dataset tab's tables: number cells that sort with NaN last, the per-image table
model, the thumbnails it shows (read by the shared workers, :mod:`catviz.qt_tasks`), and
the texts the tab shows for a finished pass."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QImageReader, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from .dataset_report import EVAL_THRESHOLD, SUMMARY_KEYS, Report, ReportInput, change_notes
from .qt_tasks import Workers

THUMB = 48
MAX_THUMBS = 2000
THUMBNAIL_PRIORITY = 0  # below opening, the pass and the report
GAIN, LOSS = QColor(30, 130, 60), QColor(200, 50, 40)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def number_text(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def signed_text(value: float, digits: int = 1) -> tuple[str, QColor | None]:
    """A difference as shown, and its colour: ``+1.2`` green, ``-0.3`` red, and ``0.0`` with
    no sign and no colour when it rounds to zero (never a red ``-0.0``)."""
    if not np.isfinite(value):
        return "–", None
    text = f"{value:+.{digits}f}"
    if float(text) == 0:
        return f"{0:.{digits}f}", None
    return text, GAIN if value > 0 else LOSS


def is_are(count: int) -> str:
    return "is" if count == 1 else "are"


def could_not_be_decoded(count: int, noun: str = "") -> str:
    """ "1 could not be decoded", "2 images could not be decoded" (``noun``: "image")."""
    noun = f" {noun}{'s' * (count != 1)}" if noun else ""
    return f"{count}{noun} could not be decoded"


def finished_text(complete: bool, scored: int, total: int, computed: int, seconds: float) -> str:
    """The progress bar's text once a pass ends: short enough for the bar at 1280 px (the
    images that could not be decoded are on the button beside it, the details in its tooltip)."""
    if computed == 0:
        how = "from the cache"
    elif computed >= total or not complete:
        how = f"{seconds:.1f} s"
    else:
        how = f"{total - computed} cached, {seconds:.1f} s"
    return f"{'done' if complete else 'cancelled'}: {scored} of {total} images scored ({how})"


def finished_tooltip(complete: bool, scored: int, total: int, failed: int, computed: int, seconds: float) -> str:
    text = f"{scored} of {total} images scored by both models"
    if failed:
        text += f"; {could_not_be_decoded(failed)} and {is_are(failed)} left out"
    if computed:
        text += f". This pass read and ran {computed} image{'s' * (computed != 1)} in {seconds:.1f} s"
    cached = total - computed
    if complete and cached > 0:
        text += f"; {cached} came from the result cache"
    return text + "."


def eval_note(threshold: float) -> str:
    """What equals catviz-eval's output: it scores CP ... OF1 at its own threshold only."""
    if np.isclose(threshold, EVAL_THRESHOLD):
        return "The numbers equal what catviz-eval prints for these checkpoints and images."
    return (f"mAP and the AP of each level equal what catviz-eval prints for these checkpoints and images; "
            f"{', '.join(SUMMARY_KEYS[1:])} are at threshold {threshold:g} (catviz-eval uses {EVAL_THRESHOLD:g}).")


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number (NaN last, in either order) and shows it rounded."""

    def __init__(self, value: float | int | None, digits: int = 1, signed: bool = False):
        value = float("nan") if value is None else float(value)
        text, color = signed_text(value, digits) if signed else (number_text(value, digits), None)
        super().__init__(text)
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if color is not None:
            self.setForeground(color)

    def __lt__(self, other) -> bool:
        if isinstance(other, NumberItem):
            mine, theirs = np.isfinite(self.value), np.isfinite(other.value)
            if mine != theirs:  # Qt sorts descending by asking the other way round: NaN must flip too
                return bool(mine) != self._descending()
            return bool(self.value < other.value)
        return super().__lt__(other)

    def _descending(self) -> bool:
        table = self.tableWidget()
        return table is not None and table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder


def interval_text(ci) -> str:
    """``[lo, hi]`` with signs, "–" when undefined."""
    if ci is None or ci[0] is None or not np.isfinite(ci[0]):
        return "–"
    return f"[{signed_text(ci[0])[0]}, {signed_text(ci[1])[0]}]"


def interval_item(ci, spans_zero: bool | None, bootstrap: str = "") -> QTableWidgetItem:
    """``[lo, hi]`` of a difference, sorted by its low end; grey and marked ≈0 when it
    contains 0 (the difference is not told apart from none). ``bootstrap``: its resamples and seed."""
    finite = ci is not None and ci[0] is not None and np.isfinite(ci[0])
    item = NumberItem(ci[0] if finite else None, signed=True)
    item.setText(interval_text(ci) + (" ≈0" if spans_zero and finite else ""))
    item.setToolTip("95% paired bootstrap interval over the images" + (f" ({bootstrap})" if bootstrap else "")
                    + ("; it contains 0" if spans_zero else ""))
    if finite:
        item.setForeground(QColor("#888") if spans_zero else (signed_text(ci[0] if ci[0] > 0 else ci[1])[1]
                                                              or QColor("#222")))
    return item


def difference_item(value: float | None, delta: float | None, ci, bootstrap: str = "") -> QTableWidgetItem:
    """A model's number over its difference from the reference and the interval,
    ``93.9`` / ``+7.8 [+6.7, +8.9]``, sorted by the number; the reference's row (``delta``
    None) has the number alone. Grey and marked ≈0 when the interval contains 0."""
    item = NumberItem(value)
    if delta is None:
        return item
    spans = ci is None or ci[0] is None or not (ci[0] > 0 or ci[1] < 0)
    interval = interval_item(ci, spans, bootstrap)
    item.setText(f"{item.text()}\n{signed_text(delta)[0]} {interval.text()}")
    item.setToolTip(interval.toolTip())
    item.setForeground(QColor("#888") if spans else interval.foreground().color())
    return item


def make_table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 8)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


class ImagesModel(QAbstractTableModel):
    """The ranked images after the filters, one row each; thumbnails arrive from a worker."""

    HEADERS = ["", "rank", "image", "F1 baseline", "F1 CAT", "F1 gain", "p gain", "ground truth", "CAT vs baseline"]

    def __init__(self, request_thumbnail: Callable[[Path], QPixmap | None]):
        super().__init__()
        self.request_thumbnail = request_thumbnail
        self.report: Report | None = None
        self.data_: ReportInput | None = None
        self.rows = np.zeros(0, np.int64)
        self.rank = np.zeros(0, np.int64)  # image index -> its place in the ranking

    def set_rows(self, report: Report | None, data: ReportInput | None, rows: np.ndarray) -> None:
        self.beginResetModel()
        self.report, self.data_, self.rows = report, data, rows
        if report is not None:  # one array op, also at 40k rows (a dict took a fifth of a filter's time)
            self.rank = np.zeros(int(report.ranking.max()) + 1 if len(report.ranking) else 0, np.int64)
            self.rank[report.ranking] = np.arange(len(report.ranking))
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008
        return len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def image_index(self, row: int) -> int:
        return int(self.rows[row])

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.report is None:
            return None
        i, column, r, d = int(self.rows[index.row()]), index.column(), self.report, self.data_
        if role == Qt.ItemDataRole.DecorationRole and column == 0:
            return self.request_thumbnail(d.paths[i])
        if role == Qt.ItemDataRole.SizeHintRole and column == 0:
            return QSize(THUMB + 4, THUMB + 4)
        if role == Qt.ItemDataRole.ForegroundRole and column in (5, 6):
            return signed_text(r.f1_gain[i] if column == 5 else r.probability_gain[i], 2)[1]
        if role == Qt.ItemDataRole.ToolTipRole and column == 2:
            return str(d.paths[i])
        if role == Qt.ItemDataRole.ToolTipRole and column == 8:  # in full where the column cuts it
            return change_notes(r, d, i).replace("; ", "\n")
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 3, 4, 5, 6):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column == 1:
            return str(self.rank[i] + 1)
        if column == 2:
            return d.paths[i].name
        if column in (3, 4):
            return number_text(r.f1["baseline" if column == 3 else "cat"][i], 2)
        if column in (5, 6):
            return signed_text(r.f1_gain[i] if column == 5 else r.probability_gain[i], 2)[0]
        if column == 7:
            return ", ".join(d.class_names[c] for c in np.flatnonzero(d.targets[i] == 1))
        if column == 8:
            return change_notes(r, d, i)  # which labels CAT fixes or breaks, and false positives it drops or adds
        return None


def read_thumbnail(path: Path) -> QImage | None:
    """A small copy (at most 2·THUMB × THUMB), decoded reduced; None when unreadable. Worker side."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and size.height() > 0:
        reader.setScaledSize(size.scaled(THUMB * 2, THUMB, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


class Thumbnails(QObject):
    """The per-image table's thumbnails: kept (at most MAX_THUMBS, oldest dropped first), or
    asked of the workers when first wanted (only the rows painted ask)."""

    loaded = Signal()

    def __init__(self, workers: Workers):
        super().__init__()
        self.workers = workers
        self.pixmaps: OrderedDict[Path, QPixmap] = OrderedDict()

    def get(self, path: Path) -> QPixmap | None:
        pixmap = self.pixmaps.get(path)
        key = ("thumbnail", path)
        if pixmap is None and self.workers.running(key) is None:
            self.workers.submit(lambda task: read_thumbnail(path), lambda image: self._loaded(path, image),
                                lambda message: None, THUMBNAIL_PRIORITY, key)
        return pixmap

    def _loaded(self, path: Path, image: QImage | None) -> None:
        if image is None:
            return
        self.pixmaps[path] = QPixmap.fromImage(image)
        while len(self.pixmaps) > MAX_THUMBS:
            self.pixmaps.popitem(last=False)
        self.loaded.emit()
