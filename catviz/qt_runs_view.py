"""The Runs tab: training runs' curves, followed live, and an epoch slider over their snapshots.

A view only: the run folders are read by the Qt-free :mod:`catviz.runs`, on a worker of its
own (:mod:`catviz.qt_tasks`), never on the GUI thread: opening a run, and the poll each
second of the runs still training (a stat of the log, a read only when it changed), happen
there, and the GUI thread swaps in the re-read run when it arrives; while one read is under
way (a slow disk) the next poll is skipped, not queued. A chosen snapshot is handed to
``load_checkpoint`` (the main window's model-loading path, in a worker), which puts it into
the slot its metadata names, so the CAM, attention and Dataset views show the model as it
was at that epoch.

*Mean ± band across seeds* draws runs of one model and recipe that differ in their seed as
their mean and a band (min-max or ±1 std) over the epochs all of them have; the tooltip and
the status lines say how the runs were grouped and why a run was not.

*Export maps across epochs…* writes the chosen images' maps (the app's method, depth and
level, each image's label as the app shows it) for every snapshot of the chosen run as one
figure, a row per epoch (:mod:`catviz.epoch_maps`, imported in the worker: this view loads no
torch), with progress and Cancel; an existing file is replaced only when the save dialog asked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from . import runs
from .qt_runs_plot import QtRunCurves, run_labels
from .qt_tasks import Task, Workers

POLL_MS = 1000
#: On close, how long a read under way or an export being cancelled may take before the view goes.
CLOSE_WAIT_MS = 300
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ExportCancelled(Exception):
    """The maps export stopped on request (the worker's torch-side Cancelled, renamed here)."""


class QtRunsView(QWidget):
    runs_changed = Signal()  # after a run was opened or a followed one changed
    snapshot_requested = Signal(object)  # the Path handed to load_checkpoint
    maps_exported = Signal(str)  # the figure written by Export maps across epochs

    def __init__(self, load_checkpoint: Callable[[Path], None], state=None,
                 selected_rows: Callable[[], list[int]] | None = None, device: Callable[[], object] = lambda: "cpu",
                 ask_path: Callable[[str, str], str] | None = None, parent=None):
        """``state``: the app's (images, display settings, messages), for the maps export;
        ``selected_rows``: the image list's selected rows; ``device``: where models run;
        ``ask_path(title, name)``: a save dialog (which asks before replacing a file)."""
        super().__init__(parent)
        self.load_checkpoint, self.state = load_checkpoint, state
        self.selected_rows, self.device, self.ask_path = selected_rows or (lambda: []), device, ask_path
        self.runs: list[runs.Run] = []
        self.errors: list[str] = []  # folders that could not be opened (the last opening's)
        self.groups: list[runs.SeedGroup] = []
        self.ungrouped: list[tuple[runs.Run, str]] = []
        self.reader = Workers(1)  # run folders are read here: a slow disk never blocks the GUI
        self.exporter = Workers(1, niceness=10, cancel_errors=(ExportCancelled,))
        self._export: Task | None = None
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        self.status = QLabel("Open a run folder (File ▸ Open run…, drop it here, or catviz RUN_DIR) to see its curves.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        options = QHBoxLayout()
        self.band_box = QCheckBox("Mean ± band across seeds")
        self.band_box.setToolTip("Runs of one model and recipe (and the same other settings) that differ only in "
                                 "their seed are drawn as their mean and a band, over the epochs all of them have")
        self.band_box.toggled.connect(lambda _: self._redraw())
        self.band_kind = QComboBox()
        for key, text in runs.BAND_KINDS.items():
            self.band_kind.addItem(f"band: {text}", key)
        self.band_kind.setToolTip("min-max: the band spans the lowest to the highest run at each epoch; ±1 std: "
                                  "the mean ± the runs' standard deviation (n - 1)")
        self.band_kind.setEnabled(False)
        self.band_box.toggled.connect(self.band_kind.setEnabled)
        self.band_kind.currentIndexChanged.connect(lambda _: self._redraw())
        options.addWidget(self.band_box)
        options.addWidget(self.band_kind)
        options.addStretch(1)
        layout.addLayout(options)
        self.curves = QtRunCurves()
        layout.addWidget(self.curves, 1)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Snapshot of"))
        self.run_choice = QComboBox()
        self.run_choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.run_choice.setMaximumWidth(240)  # a long name is elided; the bar still fits a narrow window
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
        self.export_button = QPushButton("Export maps across epochs…")
        self.export_button.setToolTip("The selected images' maps (the CAM tab's method, depth and level; each image's "
                                      "label as the app shows it) at every snapshot of this run, as one figure with "
                                      "a row per epoch")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(lambda: self.export_maps_across_epochs())
        layout.addLayout(bar)
        progress = QHBoxLayout()
        progress.addWidget(self.export_button)  # a row of its own: the bar above fits an 800 px window
        self.export_progress = QProgressBar()
        self.export_progress.setMaximumWidth(220)
        self.export_label = QLabel()
        self.export_cancel = QPushButton("Cancel")
        self.export_cancel.clicked.connect(self.cancel_export)
        for widget in (self.export_label, self.export_progress, self.export_cancel):
            progress.addWidget(widget)
            widget.hide()
        progress.addStretch(1)
        layout.addLayout(progress)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)

    # opening --------------------------------------------------------------------------------
    def open_runs(self, folders: list[Path]) -> None:
        """Open run folders, read on the reader worker (one already open is not opened twice);
        a folder that holds no run is named in the tab."""
        folders = [Path(folder) for folder in folders]

        def read(task: Task) -> tuple[list[runs.Run], list[str]]:
            opened, errors = [], []
            for folder in folders:
                try:
                    opened.append(runs.open_run(folder))
                except (runs.NotARun, OSError) as err:
                    errors.append(str(err))
            return opened, errors

        self.reader.submit(read, self._opened, self._read_failed, priority=1)
        self.timer.start()

    def _opened(self, outcome: tuple[list[runs.Run], list[str]]) -> None:
        opened, self.errors = outcome
        known = {run.resolved for run in self.runs}
        for run in opened:
            if run.resolved not in known:
                self.runs.append(run)
                known.add(run.resolved)
        self._redraw()

    def _read_failed(self, message: str) -> None:
        self.errors = [message]
        self._redraw()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.open_runs([Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()])
        event.acceptProposedAction()

    # following ------------------------------------------------------------------------------
    @property
    def reading(self) -> bool:
        """A run folder is being read (opened or polled) on the reader worker."""
        return self.reader.pending > 0

    def poll(self) -> None:
        """Re-read the runs still training (or not known to have finished) on the reader worker;
        skipped while the last read is under way."""
        if self.reading or self.reader.closed:
            return
        followed = [run for run in self.runs if run.live or not run.status.startswith("finished")]
        if followed:
            self.reader.submit(lambda task: [(run, *runs.refreshed(run)) for run in followed],
                               self._refreshed, self._read_failed)

    def _refreshed(self, outcome: list[tuple[runs.Run, runs.Run, bool]]) -> None:
        """On the GUI thread: the re-read runs replace those they were read from."""
        changed = False
        for old, new, did in outcome:
            index = next((i for i, run in enumerate(self.runs) if run is old), None)
            if index is not None:
                self.runs[index] = new
                changed |= did
        if changed:
            self._redraw()

    def band(self) -> str | None:
        """The band drawn around seed groups' means (a runs.BAND_KINDS key), None when off."""
        return self.band_kind.currentData() if self.band_box.isChecked() else None

    def _redraw(self) -> None:
        band = self.band()
        self.groups, self.ungrouped = self.curves.show_runs(self.runs, band)
        labels = run_labels(self.runs)
        label_of = {id(run): label for run, label in zip(self.runs, labels, strict=True)}
        lines = [f"<b>{_escape(label)}</b>: {len(run.records)} epoch(s), {_escape(run.status)}; "
                 f"{len(run.snapshots)} snapshot(s)" for label, run in zip(labels, self.runs, strict=True)]
        grouping = self._grouping_text(band, label_of)
        if band:
            lines += [_escape(line) for line in grouping]
        notes = [*self.errors, *(p for run in self.runs for p in run.problems)]
        lines += [f"<span style='color:#b71c1c'>{_escape(note)}</span>" for note in notes]
        self.status.setText("<br>".join(lines) or self.status.text())
        tip = "\n".join(grouping) if band else ("Tick 'Mean ± band across seeds' to draw runs of one model and "
                                                 "recipe with different seeds as a mean and a band")
        self.curves.setToolTip(tip)
        self.band_box.setToolTip(self.band_box.toolTip().split("\n\n")[0] + ("\n\n" + tip if band else ""))
        current = self.run_choice.currentIndex()
        self.run_choice.blockSignals(True)
        self.run_choice.clear()
        self.run_choice.addItems(labels)
        self.run_choice.setCurrentIndex(max(current, 0) if self.runs else -1)
        self.run_choice.blockSignals(False)
        self._update_slider()
        self.runs_changed.emit()

    def _grouping_text(self, band: str | None, label_of: dict[int, str]) -> list[str]:
        """One line per seed group (its seeds, band and the epochs it covers), one per run drawn on its own."""
        if not band:
            return []
        lines = [f"{g.name}: mean and {runs.BAND_KINDS[band]} band of {len(g.runs)} seeds "
                 f"({', '.join(f'{label_of[id(r)]} seed {r.seed}' for r in g.runs)}), over {g.coverage()}"
                 for g in self.groups]
        lines += [f"{label_of[id(run)]}: drawn on its own, {why}" for run, why in self.ungrouped]
        return lines or ["No runs"]

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
        self.export_button.setEnabled(bool(epochs) and self.state is not None and self._export is None)
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

    # maps across epochs --------------------------------------------------------------------------
    def chosen_entries(self) -> list:
        """The images the export draws: those selected in the list, else the one shown; readable ones."""
        state = self.state
        rows = sorted(set(self.selected_rows()))
        entries = [state.images[i] for i in rows if 0 <= i < len(state.images)]
        if not entries and state.current_entry is not None:
            entries = [state.current_entry]
        return [e for e in entries if not e.error]

    def _label_of(self, entry) -> tuple[str | None, str]:
        """The label the app shows for ``entry`` and how it was chosen; (None, "") when the app
        has no answer yet (the export then takes the last epoch's top label)."""
        state, s = self.state, self.state.settings
        if s.label_mode == "fixed" and s.label in state.class_names:
            return s.label, "the app's fixed label"
        if entry is state.current_entry and state.shown_label() is not None:
            return state.shown_label(), "shown in the app"
        result = state.results.get((entry.path, "cat")) or state.results.get((entry.path, "baseline"))
        if result is not None and state.class_names:
            return state.class_names[int(result.probabilities.argmax())], "the app's top label"
        return None, ""

    def export_maps_across_epochs(self, path: str | None = None, overwrite: bool = False) -> bool:
        """Write the chosen images' maps at each snapshot of the chosen run as one figure, in a
        worker; whether the export started. Without ``path`` the save dialog asks (and asks
        before replacing a file); a ``path`` that exists is replaced only with ``overwrite``."""
        run, state = self.chosen_run(), self.state
        if state is None:
            return False
        if run is None or not run.snapshots:
            state.report("Export maps across epochs: the chosen run has no snapshots "
                         "(catviz-train --snapshot-every K keeps them)")
            return False
        if self._export is not None:
            state.report("Export maps across epochs: an export is under way (Cancel it first)")
            return False
        entries = self.chosen_entries()
        if not entries:
            state.report("Export maps across epochs: no readable image; select images in the list first")
            return False
        if path is None:
            if self.ask_path is None:
                return False
            path = self.ask_path("Export maps across epochs", f"{run.name}-maps-across-epochs.png")
            if not path:
                return False
            overwrite = Path(path).exists()  # the save dialog asked before replacing it
        elif Path(path).exists() and not overwrite:
            state.report(f"{path} exists; not replaced (choose it in the save dialog to replace it)")
            return False
        if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
            state.report(f"{path}: write a .png or .jpg file")
            return False
        notes = []
        if len(entries) > runs.MAX_MAP_IMAGES:
            notes.append(f"the first {runs.MAX_MAP_IMAGES} of the {len(entries)} selected images")
            entries = entries[:runs.MAX_MAP_IMAGES]
        columns = []
        for entry in entries:
            label, note = self._label_of(entry)
            if label is not None and run.class_names is not None and label not in run.class_names:
                first = next(iter(run.snapshots.values()))
                state.report(f"{first}: its labels ({runs.describe_labels(run.class_names)}) have no {label!r}, the "
                             f"label the app shows for {entry.path.name}; maps across epochs not exported")
                return False
            columns.append((entry.path, entry.image, label, note))
        epochs = runs.thin(run.snapshots)
        if len(epochs) < len(run.snapshots):
            notes.append(f"{len(epochs)} of the {len(run.snapshots)} snapshots, evenly spaced")
        snapshots = {epoch: run.snapshots[epoch] for epoch in epochs}
        s, device, name = replace(state.settings), self.device(), next(  # the settings as they are now
            label for r, label in zip(self.runs, run_labels(self.runs), strict=True) if r is run)
        model, class_names = run.model, run.class_names

        def work(task: Task) -> tuple[str, int, int]:
            from catviz.models.attribution import Cancelled
            from catviz.models.preprocess import load_image

            from . import epoch_maps, figure

            images = [epoch_maps.EpochImage(p.name, image if image is not None else load_image(p), label, note)
                      for p, image, label, note in columns]
            try:
                maps = epoch_maps.compute(snapshots, images, s.cam_method, s.cam_depth, s.cam_level, device, model,
                                          class_names, name, task.progress, task.should_stop, s.threshold)
            except Cancelled as stop:
                raise ExportCancelled(str(stop)) from None
            drawn = epoch_maps.render(maps, s.opacity, s.colormap, shared_scale=not s.per_panel_scale,
                                      positive_only=s.positive_only)
            if Path(path).exists() and not overwrite:  # appeared while we worked: still never replaced
                raise OSError(f"{path} appeared meanwhile; not replaced")
            figure.save_figure(path, drawn.image)
            return path, len(maps.rows), len(images)

        def written(outcome: tuple[str, int, int]) -> None:
            self._end_export()
            written_path, rows, images = outcome
            said = f" ({'; '.join(notes)})" if notes else ""
            state.report(f"maps across epochs written to {written_path}: {rows} epochs × {images} images{said}",
                         error=False)
            self.maps_exported.emit(written_path)

        def failed(message: str) -> None:
            self._end_export()
            state.report(f"maps across epochs not written: {message}")

        def cancelled() -> None:
            self._end_export()
            state.report("maps across epochs cancelled; nothing written", error=False)

        total = len(snapshots) * len(columns)
        self.export_progress.setRange(0, total)
        self.export_progress.setValue(0)
        self.export_label.setText(f"Maps across epochs: 0 of {total}")
        for widget in (self.export_label, self.export_progress, self.export_cancel):
            widget.show()
        self._export = self.exporter.submit(work, written, failed, on_progress=self._export_progressed,
                                            on_cancel=cancelled)
        self.export_button.setEnabled(False)
        return True

    def _export_progressed(self, value: tuple[int, int, str]) -> None:
        done, total, what = value
        self.export_progress.setValue(done)
        self.export_label.setText(f"Maps across epochs: {done} of {total} ({what})")

    def cancel_export(self) -> None:
        if self._export is not None:
            self._export.cancel()

    def _end_export(self) -> None:
        self._export = None
        for widget in (self.export_label, self.export_progress, self.export_cancel):
            widget.hide()
        self._update_slider()

    # closing --------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop following, cancel an export, and give the workers a moment to end (the main window
        calls it as it closes: a view in it gets no close event of its own)."""
        self.timer.stop()
        self.reader.shutdown(CLOSE_WAIT_MS)
        self.exporter.shutdown(CLOSE_WAIT_MS)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
