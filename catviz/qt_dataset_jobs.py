"""The Dataset tab's work: open a split, run every loaded model over it, compare them, build
the report — as tasks on the app's one job system (:mod:`catviz.qt_tasks`), results into
``state.dataset``.

Its own pool (two threads at a lower priority: the pass, and the table's thumbnails beside
it) keeps the compare view's inference responsive while a pass runs for minutes. The
worker side (:mod:`catviz.dataset_results`, torch) is imported inside the task, so
importing this module loads no torch; the GUI thread never runs a model. The numbers are
``catviz-eval --compare``'s: :func:`catviz.study.build_study` over every loaded model
against the reference, and the two-model report of the two panels' models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from .dataset_report import Report, ReportInput, rekey
from .dataset_state import PassProgress
from .qt_tasks import Task, Workers
from .roles import ROLES, default_reference, model_names
from .state import AppState, Event
from .study import Study, build_study, report_with_intervals

#: Progress reaches the GUI at most this often (the worker may finish batches faster).
PROGRESS_INTERVAL_S = 0.1
PASS_PRIORITY = 1  # opening, the pass and the report; thumbnails below
PASS = ("dataset pass",)
ANALYSIS = ("dataset analysis",)


def analyse(data: ReportInput, reference: str, pair: tuple[str, str],
            threshold: float) -> tuple[Study | None, Report]:
    """Worker side: every model of ``data`` against ``reference`` (keys are the models' names;
    None when no image was scored, e.g. a pass cancelled at once) and the two-model report of
    ``pair`` (the left and the right panel's models; its intervals are the study's when the
    left one is the reference)."""
    pair_data = rekey(data, dict(zip(ROLES, pair, strict=True)))
    if not data.scored.any():
        return None, report_with_intervals(pair_data, threshold)
    found = build_study(data, {name: name for name in data.probabilities}, reference, threshold=threshold)
    return found, report_with_intervals(pair_data, threshold, found=found if pair[0] == reference else None,
                                        other=pair[1])


class DatasetController(QObject):
    """Drives ``state.dataset``: ``open``, ``run``, ``cancel``; a pass starts once two models are
    loaded and starts again when the loaded models change; a threshold, reference or panel
    change compares again (no pass)."""

    def __init__(self, state: AppState, workers: int = 0, cache_dir: Path | None = None, threads: int = 2):
        super().__init__()
        self.state, self.dataset = state, state.dataset
        self.loader_workers, self.cache_dir = workers, cache_dir
        self.workers = Workers(threads, niceness=10)
        self.batch_size = 32
        self._subscriptions = [
            state.subscribe(Event.LOADED_CHANGED, lambda count: self._on_models_changed()),
            state.subscribe(Event.MODELS_CHANGED, lambda role: self._on_panels_changed()),
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
        """Read the split and its boxes in a worker; the pass follows once two models are loaded."""
        self.dataset.opening(dataset)

        def load(task: Task):
            from .dataset_source import open_dataset

            return open_dataset(dataset, data_root, limit)

        def opened(source) -> None:
            self.dataset.set_source(source)
            self.run()

        self.workers.submit(load, opened, lambda message: self.dataset.open_failed(dataset, message), PASS_PRIORITY)

    # which models, which reference, which pair ---------------------------------------------
    def _models(self) -> dict | None:
        """Every loaded model by its name, in load order; None below two."""
        loaded = self.state.loaded
        return dict(zip(model_names(loaded), loaded, strict=True)) if len(loaded) >= 2 else None

    def reference(self) -> str | None:
        """The chosen reference if the last pass ran it, else catviz-eval's default (the first baseline)."""
        models = self.dataset.models_run
        if not models:
            return None
        if self.dataset.reference in models:
            return self.dataset.reference
        return list(models)[default_reference(list(models.values()))]

    def pair(self) -> tuple[str, str] | None:
        """The names of the left and right panels' models when the last pass ran both (and they
        differ), else the reference and the first other model."""
        models = self.dataset.models_run
        if not models:
            return None
        name = {id(m): n for n, m in models.items()}
        shown = tuple(name.get(id(self.state.models.get(role))) for role in ROLES)
        if None not in shown and shown[0] != shown[1]:
            return shown
        reference = self.reference()
        return reference, next(n for n in models if n != reference)

    def set_reference(self, name: str) -> None:
        """Compare every model with ``name`` (a loaded model's name) from now on."""
        if name != self.dataset.reference:
            self.dataset.reference = name
            self._analyse()

    # the report files ---------------------------------------------------------------------
    def write_report(self, folder: Path, done: Callable[[str], None]) -> bool:
        """Write the command's report (``catviz-eval --compare --report``: report.json,
        scores.npz, report.html; with two models the two-model files too) of the last pass,
        every model against the reference, into ``folder``, in a worker; ``done(message)``
        when written. False (said) when there is no finished pass."""
        d, models, reference = self.dataset, self.dataset.models_run, self.reference()
        if d.data is None or d.results is None or models is None or d.running:
            d.error("Write report: run the pass over the dataset first")
            return False
        results, data, threshold = d.results, d.data, self.state.settings.threshold
        batch, loader_workers = self.batch_size, self.loader_workers

        def work(task: Task):
            from dataclasses import replace

            from .compare import export_report

            names = list(models)
            # two models: the two-model report's columns, "baseline" the reference (as catviz-eval)
            keys = ["baseline" if n == reference else "cat" for n in names] if len(names) == 2 else names
            of = dict(zip(keys, names, strict=True))
            keyed = replace(results, scores={k: results.scores[n] for k, n in of.items()})
            _, files = export_report(folder, keyed, rekey(data, of), {k: models[n] for k, n in of.items()}, of,
                                     keys[names.index(reference)], batch_size=batch, workers=loader_workers,
                                     threshold=threshold)
            return f"Report written to {folder} ({', '.join(files)})"

        self.workers.submit(work, done, d.error, PASS_PRIORITY)
        return True

    # the pass -----------------------------------------------------------------------------
    def _on_models_changed(self) -> None:
        models, d = self._models(), self.dataset
        if d.source is None or models is None or (
                d.models_run is not None and list(models) == list(d.models_run)
                and all(models[n] is d.models_run[n] for n in models)):
            return
        if d.running:  # the models changed under the pass: stop it, start again with the new set
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
        threshold, reference, pair = self.state.settings.threshold, self.reference(), self.pair()

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
            return results, data, *analyse(data, reference, pair, threshold)

        self._asked += 1
        asked = self._asked
        self.workers.submit(work, lambda outcome: self._finished(outcome, pair, asked), self.dataset.run_failed,
                            PASS_PRIORITY, PASS, self.dataset.set_progress, lambda: self._finished(None, pair, asked))

    def cancel(self) -> None:
        self.dataset.rerun = False
        self.workers.cancel(lambda task: task.key == PASS)
        self.dataset.cancelling()

    def _finished(self, outcome: tuple | None, pair: tuple[str, str] | None, asked: int) -> None:
        """The pass returned (``None``: cancelled before it started)."""
        d = self.dataset
        results, data, found, report = outcome if outcome is not None else (None, None, None, None)
        d.run_ended(results, data)
        if report is not None:
            self._show(found, report, pair, asked)
        if d.rerun:
            d.rerun = False
            self.run()
        elif d.report is not None and (d.report.threshold != self.state.settings.threshold
                                       or (d.study is not None and d.study.reference != self.reference())
                                       or self.shown_pair != self.pair()):  # changed while it ran
            self._analyse()

    # comparing ----------------------------------------------------------------------------
    shown_pair: tuple[str, str] | None = None  # the names of the models the two-model report compares
    _asked = 0  # comparisons asked for: only the latest one's outcome is shown

    def _show(self, found: Study | None, report: Report, pair: tuple[str, str] | None, asked: int) -> None:
        if asked == self._asked:
            self.shown_pair = pair
            if found is not None:
                self.dataset.set_study(found)
            self.dataset.set_report(report)

    def _analyse(self) -> None:
        """Compare again (no pass): the threshold, the reference or the panels changed."""
        d = self.dataset
        if d.data is None or d.running or self.reference() is None:
            return
        data, reference, pair, threshold = d.data, self.reference(), self.pair(), self.state.settings.threshold
        self._asked += 1
        asked = self._asked
        self.workers.submit(lambda task: analyse(data, reference, pair, threshold),
                            lambda out: self._show(*out, pair, asked), d.error, PASS_PRIORITY, ANALYSIS)

    def _on_panels_changed(self) -> None:
        if self.dataset.report is not None and self.shown_pair != self.pair():
            self._analyse()

    def _on_settings_changed(self, keys: set[str]) -> None:
        if "threshold" in keys:
            self._analyse()
