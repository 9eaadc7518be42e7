"""The Runs tab: training runs' curves, followed live, and an epoch slider over their snapshots.

A view only: the run folders are read by the Qt-free :mod:`catviz.runs`; a chosen snapshot is
handed to ``load_checkpoint`` (the main window's model-loading path, in a worker), which puts
it into the slot its metadata names, so the CAM, attention and Dataset views show the model as
it was at that epoch. A run still training is polled every second (a stat of its log, a read
only when it changed): new epochs and snapshots appear, and the status line says when the
trainer finishes or dies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from . import runs
from .qt_runs_plot import QtRunCurves, run_labels

POLL_MS = 1000


class QtRunsView(QWidget):
    runs_changed = Signal()  # after a run was opened or a followed one changed
    snapshot_requested = Signal(object)  # the Path handed to load_checkpoint

    def __init__(self, load_checkpoint: Callable[[Path], None], parent=None):
        super().__init__(parent)
        self.load_checkpoint = load_checkpoint
        self.runs: list[runs.Run] = []
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        self.status = QLabel("Open a run folder (File ▸ Open run…, drop it here, or catviz RUN_DIR) to see its curves.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        self.curves = QtRunCurves()
        layout.addWidget(self.curves, 1)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Snapshot of"))
        self.run_choice = QComboBox()
        self.run_choice.currentIndexChanged.connect(self._update_slider)
        bar.addWidget(self.run_choice)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.slider.sliderReleased.connect(self._load_chosen)
        bar.addWidget(self.slider, 1)
        self.epoch_label = QLabel("no snapshots")
        bar.addWidget(self.epoch_label)
        self.load_button = QPushButton("Load this epoch")
        self.load_button.setEnabled(False)
        self.load_button.clicked.connect(self._load_chosen)
        bar.addWidget(self.load_button)
        layout.addLayout(bar)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    # opening --------------------------------------------------------------------------------
    def open_runs(self, folders: list[Path]) -> list[str]:
        """Open run folders (one already open is re-read); the errors, also shown in the tab."""
        errors = []
        for folder in folders:
            folder = Path(folder)
            if any(r.folder.resolve() == folder.resolve() for r in self.runs):
                continue
            try:
                self.runs.append(runs.open_run(folder))
            except (runs.NotARun, OSError) as err:
                errors.append(str(err))
        self._redraw(errors)
        self.timer.start()
        return errors

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.open_runs([Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()])
        event.acceptProposedAction()

    # following ------------------------------------------------------------------------------
    def poll(self) -> None:
        changed = False
        for run in self.runs:
            if run.live or not run.status.startswith("finished"):
                changed |= runs.refresh(run)
        if changed:
            self._redraw()

    def _redraw(self, errors: list[str] = ()) -> None:
        self.curves.show_runs(self.runs)
        labels = run_labels(self.runs)
        lines = [f"<b>{label}</b>: {len(run.records)} epoch(s), {run.status}; {len(run.snapshots)} snapshot(s)"
                 for label, run in zip(labels, self.runs, strict=True)]
        notes = [*errors, *(p for run in self.runs for p in run.problems)]
        lines += [f"<span style='color:#b71c1c'>{_escape(note)}</span>" for note in notes]
        self.status.setText("<br>".join(lines) or self.status.text())
        current = self.run_choice.currentIndex()
        self.run_choice.blockSignals(True)
        self.run_choice.clear()
        self.run_choice.addItems(labels)
        self.run_choice.setCurrentIndex(max(current, 0) if self.runs else -1)
        self.run_choice.blockSignals(False)
        self._update_slider()
        self.runs_changed.emit()

    # the epoch slider --------------------------------------------------------------------------
    def chosen_run(self) -> runs.Run | None:
        index = self.run_choice.currentIndex()
        return self.runs[index] if 0 <= index < len(self.runs) else None

    def slider_epochs(self) -> list[int]:
        run = self.chosen_run()
        return list(run.snapshots) if run else []

    def _update_slider(self) -> None:
        epochs = self.slider_epochs()
        at_end = not self.slider.isEnabled() or self.slider.value() >= self.slider.maximum()  # follow the latest
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(len(epochs) - 1, 0))
        if at_end:
            self.slider.setValue(self.slider.maximum())
        self.slider.blockSignals(False)
        self.slider.setEnabled(bool(epochs))
        self.load_button.setEnabled(bool(epochs))
        self._on_slider_moved(self.slider.value())

    def _on_slider_moved(self, index: int) -> None:
        epochs = self.slider_epochs()
        if not epochs:
            self.epoch_label.setText("no snapshots")
            return
        epoch = epochs[min(index, len(epochs) - 1)]
        record = self.chosen_run().records.get(epoch, {})
        score = f", val mAP {record['mAP']:.1f}" if isinstance(record.get("mAP"), int | float) else ""
        self.epoch_label.setText(f"epoch {epoch} of {epochs[-1]}{score}")
        if not self.slider.isSliderDown() and self.sender() is self.slider:
            self._load_chosen()  # keys and clicks load at once; a drag loads when released

    def _load_chosen(self) -> None:
        epochs = self.slider_epochs()
        if epochs:
            path = self.chosen_run().snapshots[epochs[min(self.slider.value(), len(epochs) - 1)]]
            self.snapshot_requested.emit(path)
            self.load_checkpoint(path)

    def closeEvent(self, event) -> None:
        self.timer.stop()
        super().closeEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
