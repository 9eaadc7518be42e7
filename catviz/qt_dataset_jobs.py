"""The Dataset tab's work: open a split, run both models over it, build the report — as
tasks on the app's one job system (:mod:`catviz.qt_tasks`), results into ``state.dataset``.

Its own pool (two threads at a lower priority: the pass, and the table's thumbnails beside
it) keeps the compare view's inference responsive while a pass runs for minutes. The
worker side (:mod:`catviz.dataset_results`, torch) is imported inside the task, so
importing this module loads no torch; the GUI thread never runs a model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from .dataset_state import PassProgress
from .qt_tasks import Task, Workers
from .state import ROLES, AppState, Event
from .study import report_with_intervals

#: Progress reaches the GUI at most this often (the worker may finish batches faster).
PROGRESS_INTERVAL_S = 0.1
PASS_PRIORITY = 1  # opening, the pass and the report; thumbnails below
PASS = ("dataset pass",)


class DatasetController(QObject):
    """Drives ``state.dataset``: ``open``, ``run``, ``cancel``; a pass starts once both models are
    loaded and starts again when one is replaced; a threshold change rebuilds the report."""

    def __init__(self, state: AppState, workers: int = 0, cache_dir: Path | None = None, threads: int = 2):
        super().__init__()
        self.state, self.dataset = state, state.dataset
        self.loader_workers, self.cache_dir = workers, cache_dir
        self.workers = Workers(threads, niceness=10)
        self.batch_size = 32
        self._subscriptions = [
            state.subscribe(Event.MODELS_CHANGED, lambda role: self._on_models_changed()),
            state.subscribe(Event.SETTINGS_CHANGED, self._on_settings_changed),
        ]

    @property
    def busy(self) -> bool:
        """Opening the dataset, running the pass or loading thumbnails (``catviz --screenshot`` waits for it)."""
        return self.workers.pending > 0

    def wait(self, msecs: int = 60000) -> bool:
        return self.workers.wait(msecs)

    def shutdown(self) -> None:
        """Stop the pass (what it computed is kept in the cache) and wait for the workers."""
        for subscription in self._subscriptions:
            subscription.disconnect()
        self.dataset.rerun = False
        self.workers.shutdown(30000)

    # opening ------------------------------------------------------------------------------
    def open(self, dataset: str, data_root: str | Path | None = None, limit: int = 0) -> None:
        """Read the split and its boxes in a worker; the pass follows once both models are loaded."""
        self.dataset.opening(dataset)

        def load(task: Task):
            from .dataset_source import open_dataset

            return open_dataset(dataset, data_root, limit)

        def opened(source) -> None:
            self.dataset.set_source(source)
            self.run()

        self.workers.submit(load, opened, lambda message: self.dataset.open_failed(dataset, message), PASS_PRIORITY)

    # the report files ---------------------------------------------------------------------
    def write_report(self, folder: Path, done: Callable[[str], None]) -> bool:
        """Write the command's report (``catviz-eval --compare --report``: report.json,
        scores.npz, report.html and the two-model files) of the last pass into ``folder``, in
        a worker; ``done(message)`` when written. False (said) when there is no finished pass."""
        d, models = self.dataset, self.dataset.models_run
        if d.data is None or d.results is None or models is None or d.running:
            d.error("Write report: run the pass over the dataset first")
            return False
        results, data, threshold = d.results, d.data, self.state.settings.threshold
        batch, loader_workers = self.batch_size, self.loader_workers

        def work(task: Task):
            from catviz.train_cli.evaluate import row_names

            from .compare import export_report

            loaded = list(models.values())
            titles = dict(zip(models, row_names([m.meta.model for m in loaded], [m.path for m in loaded]), strict=True))
            _, files = export_report(folder, results, data, models, titles, "baseline", batch_size=batch,
                                     workers=loader_workers, threshold=threshold)
            return f"Report written to {folder} ({', '.join(files)})"

        self.workers.submit(work, done, d.error, PASS_PRIORITY)
        return True

    # the pass -----------------------------------------------------------------------------
    def _models(self) -> dict | None:
        models = {role: self.state.models.get(role) for role in ROLES}
        return models if all(models.values()) else None

    def _on_models_changed(self) -> None:
        models, d = self._models(), self.dataset
        if d.source is None or models is None or (
                d.models_run is not None and all(models[r] is d.models_run[r] for r in models)):
            return
        if d.running:  # a model changed under the pass: stop it, start again with the new pair
            d.rerun = True
            self.workers.cancel(lambda task: task.key == PASS)
        else:
            self.run()

    def run(self, batch_size: int | None = None) -> None:
        """Start the pass (cached rows are read, the rest computed) with the loaded models."""
        d, models = self.dataset, self._models()
        if batch_size is not None:
            self.batch_size = batch_size
        if d.source is None:
            return
        if models is None:
            d.waiting_for_models()
            return
        if d.running:
            return
        d.start_run(models)
        source, batch, loader_workers, cache_dir = d.source, self.batch_size, self.loader_workers, self.cache_dir
        threshold = self.state.settings.threshold

        def work(task: Task):
            from .dataset_results import report_input, run_dataset

            last = 0.0

            def report_progress(p) -> None:
                nonlocal last
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL_S or p.done == p.total:
                    last = now
                    task.progress(PassProgress(p.done, p.total, p.cached, p.images_per_second, p.eta_seconds))

            results = run_dataset(source, models, batch, loader_workers, cache_dir, report_progress, task.should_stop)
            data = report_input(results)
            return results, data, report_with_intervals(data, threshold)

        self.workers.submit(work, self._finished, self.dataset.run_failed, PASS_PRIORITY, PASS,
                            self.dataset.set_progress, lambda: self._finished(None))

    def cancel(self) -> None:
        self.dataset.rerun = False
        self.workers.cancel(lambda task: task.key == PASS)
        self.dataset.cancelling()

    def _finished(self, outcome: tuple | None) -> None:
        """The pass returned (``None``: cancelled before it started)."""
        d = self.dataset
        results, data, report = outcome if outcome is not None else (None, None, None)
        d.run_ended(results, data)
        if report is not None:
            d.set_report(report)
        if d.rerun:
            d.rerun = False
            self.run()
        elif d.report is not None and d.report.threshold != self.state.settings.threshold:  # changed while it ran
            self._on_settings_changed({"threshold"})

    # the report ---------------------------------------------------------------------------
    def _on_settings_changed(self, keys: set[str]) -> None:
        d = self.dataset
        if "threshold" in keys and d.data is not None and not d.running:
            data, threshold = d.data, self.state.settings.threshold
            self.workers.submit(lambda task: report_with_intervals(data, threshold), d.set_report, d.error, PASS_PRIORITY)
