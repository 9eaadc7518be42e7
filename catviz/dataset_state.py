"""The Dataset tab's state in plain Python (no Qt, no torch), beside the per-image results.

``AppState.dataset`` holds the split being scored (:class:`catviz.dataset_source.DatasetSource`),
the pass over it (running or not, its progress, the models it ran with) and what it gave:
the scores (:class:`catviz.dataset_results.DatasetResults`), the report's input, the
study of every loaded model against the reference (:class:`catviz.study.Study`) and the
two panels' report (:mod:`catviz.dataset_report`). The worker side
(``catviz.qt_dataset_jobs.DatasetController``) fills it on the GUI thread; views observe
it through :class:`DatasetEvent`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .events import Observable, TypedEvent

if TYPE_CHECKING:  # plain-data types; importing dataset_results here would load torch
    from .dataset_report import Report, ReportInput
    from .dataset_results import DatasetResults
    from .dataset_source import DatasetSource
    from .study import Study


@dataclass(frozen=True)
class PassProgress:
    """How far the pass is: ``done`` of ``total`` images computed (cached ones not counted)."""

    done: int
    total: int
    cached: int  # images read from the cache
    images_per_second: float  # of the computed images
    eta_seconds: float | None


class DatasetEvent(TypedEvent):
    """What :class:`DatasetState` announces: (name, the arguments subscribers receive, when)."""

    OPENING = ("opening", (("dataset", str),), "reading a split and its boxes")
    OPENED = ("opened", (("source", object),), "the split is read: state.source (a DatasetSource)")
    OPEN_FAILED = ("open_failed", (("dataset", str), ("message", str)), "the split could not be read")
    WAITING_FOR_MODELS = ("waiting_for_models", (), "a pass was asked for before two models were loaded")
    RUN_STARTED = ("run_started", (), "a pass started: cached rows are read, the rest computed")
    PROGRESS_CHANGED = ("progress_changed", (("progress", PassProgress),), "after a batch (at most 10 a second)")
    CANCELLING = ("cancelling", (), "the user asked the pass to stop")
    RUN_FAILED = ("run_failed", (("message", str),), "the pass stopped with an error")
    RUN_ENDED = ("run_ended", (), "the pass ended, complete or cancelled: state.results and state.data")
    REPORT_READY = ("report_ready", (("report", object),), "a report (a dataset_report.Report) of state.data")
    STUDY_READY = ("study_ready", (("study", object),), "every model against the reference (a study.Study)")
    ERROR = ("error", (("message", str),), "something the tab shows as an error (also in the app's Messages)")


class DatasetState(Observable):
    """The split, the pass and its results. ``report(text)``: the app's Messages."""

    events = DatasetEvent

    def __init__(self, report: Callable[[str], Any] | None = None) -> None:
        super().__init__(report=report)
        self._report = report
        self.source: DatasetSource | None = None
        self.results: DatasetResults | None = None
        self.data: ReportInput | None = None
        self.report: Report | None = None
        self.running = False
        self.rerun = False  # run again once the running pass ends (a model changed under it)
        self.models_run: dict | None = None  # name → the LoadedModel the last pass ran with, in load order
        self.study: Study | None = None
        self.reference: str | None = None  # the name chosen as the reference (None: catviz-eval's default)
        self.progress: PassProgress | None = None

    # opening ------------------------------------------------------------------------------
    def opening(self, dataset: str) -> None:
        self.emit(DatasetEvent.OPENING, dataset)

    def set_source(self, source: DatasetSource) -> None:
        self.source = source
        self.emit(DatasetEvent.OPENED, source)

    def open_failed(self, dataset: str, message: str) -> None:
        self.emit(DatasetEvent.OPEN_FAILED, dataset, message)
        self.error(message)

    # the pass -----------------------------------------------------------------------------
    def start_run(self, models: dict) -> None:
        self.running, self.models_run, self.progress = True, models, None
        self.emit(DatasetEvent.RUN_STARTED)

    def set_progress(self, progress: PassProgress) -> None:
        self.progress = progress
        self.emit(DatasetEvent.PROGRESS_CHANGED, progress)

    def cancelling(self) -> None:
        self.emit(DatasetEvent.CANCELLING)

    def run_failed(self, message: str) -> None:
        self.running, self.models_run = False, None
        self.emit(DatasetEvent.RUN_FAILED, message)
        self.error(message)

    def run_ended(self, results: DatasetResults | None, data: ReportInput | None) -> None:
        """The pass returned (``results`` None: it was cancelled before it started)."""
        self.running = False
        if results is not None:
            self.results, self.data = results, data
            for note in getattr(results, "notes", ()):  # the cache's troubles, in the app's Messages
                if self._report is not None:
                    self._report(note)
        self.emit(DatasetEvent.RUN_ENDED)

    def set_report(self, report: Report) -> None:
        self.report = report
        self.emit(DatasetEvent.REPORT_READY, report)

    def set_study(self, study: Study) -> None:
        self.study = study
        self.emit(DatasetEvent.STUDY_READY, study)

    def waiting_for_models(self) -> None:
        self.emit(DatasetEvent.WAITING_FOR_MODELS)

    # messages -----------------------------------------------------------------------------
    def error(self, message: str) -> None:
        self.emit(DatasetEvent.ERROR, message)
        if self._report is not None:
            self._report(message)
