"""Model work off the GUI thread: QRunnables on one pool, results back as Qt signals.

The controller watches the state: when an image is selected or a model loaded it
queues decoding and inference for the current image only; work for an image the user
has moved away from is dropped when its turn comes (cooperative cancellation); every
result is cached in the state, so going back costs nothing.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from models.checkpoint import CheckpointError
from models.device import resolve_device
from models.preprocess import ImageLoadError, load_image

from . import figure, inference
from .state import AppState, ImageEntry

_logger = logging.getLogger(__name__)
MAX_GRAD_CAMS = 64  # cached gradient maps, each (input size)² floats


class TaskSignals(QObject):
    succeeded = Signal(object)
    failed = Signal(str)
    done = Signal()


class Task(QRunnable):
    """Runs ``fn()`` on the pool unless ``is_stale()`` says nobody wants it any more."""

    def __init__(self, fn: Callable[[], object], is_stale: Callable[[], bool] = lambda: False):
        super().__init__()
        self.fn, self.is_stale = fn, is_stale
        self.signals = TaskSignals()

    def run(self) -> None:
        try:
            if not self.is_stale():
                self.signals.succeeded.emit(self.fn())
        except (ImageLoadError, CheckpointError, ValueError, OSError) as err:
            self.signals.failed.emit(str(err))
        except Exception as err:  # a bug must reach the user, not kill the app silently
            _logger.error("worker failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(f"internal error: {type(err).__name__}: {err}")
        finally:
            self.signals.done.emit()


class InferenceController(QObject):
    busy_changed = Signal(int)  # tasks pending
    timings_changed = Signal(dict)  # role → seconds for the current image

    def __init__(self, state: AppState, device: str = "auto", threads: int = 1):
        super().__init__()
        self.state, self.device = state, resolve_device(device)
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(threads)  # models are not run concurrently
        self.pending = 0
        self._tasks: set[Task] = set()
        self._requested: set[tuple] = set()
        self.grad_cams: dict[tuple, object] = {}
        state.subscribe("selection_changed", lambda entry: self.request_current())
        state.subscribe("images_added", self._on_images_added)
        state.subscribe("models_changed", lambda role: self.request_current())
        state.subscribe("result_ready", lambda path, role: self._request_grad_cam())
        state.subscribe("settings_changed", self._on_settings_changed)

    # plumbing --------------------------------------------------------------------------
    def _submit(self, fn, on_success, on_failure=None, is_stale=lambda: False, priority: int = 0) -> None:
        task = Task(fn, is_stale)
        task.signals.succeeded.connect(on_success)
        task.signals.failed.connect(on_failure or self.state.report)
        task.signals.done.connect(lambda: self._finished(task))
        self._tasks.add(task)
        self.pending += 1
        self.busy_changed.emit(self.pending)
        self.pool.start(task, priority)

    def _finished(self, task: Task) -> None:
        self._tasks.discard(task)
        self.pending -= 1
        self.busy_changed.emit(self.pending)

    def wait(self, msecs: int = 60000) -> bool:
        return self.pool.waitForDone(msecs)

    # models ----------------------------------------------------------------------------
    def load_checkpoint(self, path: str | Path, role: str | None = None) -> None:
        """Load in a worker; a bad file is reported and the previous model stays."""
        def load():
            loaded = inference.load_model(path, self.device)
            target = role or loaded.kind
            other = next((m for r, m in self.state.models.items() if r != target), None)
            inference.check_compatible(loaded, other)
            return target, loaded

        self._submit(load, lambda result: self.state.set_model(*result), priority=2)

    def set_device(self, name: str) -> None:
        """Reload every model on another device (in workers; results are recomputed)."""
        self.device = resolve_device(name)
        for role, loaded in list(self.state.models.items()):
            self.load_checkpoint(loaded.path, role)

    # images ----------------------------------------------------------------------------
    def _on_images_added(self, entries: list[ImageEntry]) -> None:
        for entry in entries:
            self._decode(entry)

    def _decode(self, entry: ImageEntry) -> None:
        path = entry.path
        self._submit(
            lambda: load_image(path),
            lambda image: self._decoded(path, image),
            lambda message: self.state.set_image_data(path, None, message),
            priority=1,
        )

    def _decoded(self, path: Path, image) -> None:
        self.state.set_image_data(path, image, None)
        entry = self.state.current_entry
        if entry is not None and entry.path == path:
            self.request_current()

    def request_current(self) -> None:
        entry = self.state.current_entry
        if entry is None or entry.image is None:
            return
        for role in self.state.missing_results(entry):
            self._submit_inference(entry, role)
        self._report_timings()
        self._request_grad_cam()

    def _submit_inference(self, entry: ImageEntry, role: str) -> None:
        loaded, image, path = self.state.models[role], entry.image, entry.path
        key = (path, role, id(loaded))
        if key in self._requested:
            return
        self._requested.add(key)

        def stale() -> bool:  # the user moved on: drop the work, allow a later request
            current = self.state.current_entry
            if current is None or current.path != path:
                self._requested.discard(key)
                return True
            return False

        self._submit(lambda: inference.run_model(loaded, image),
                     lambda result: self._result(path, role, key, result), is_stale=stale)

    def _result(self, path: Path, role: str, key: tuple, result) -> None:
        self._requested.discard(key)
        if self.state.models.get(role) is not None and id(self.state.models[role]) == key[2]:
            self.state.set_result(path, role, result)
        self._report_timings()

    def _report_timings(self) -> None:
        self.timings_changed.emit(
            {role: r.seconds for role in self.state.models if (r := self.state.result(role)) is not None}
        )

    # figure export -------------------------------------------------------------------------
    def export_figure(self, path: str, entries: list[ImageEntry]) -> None:
        """Render the Fig.-3-style grid of ``entries`` in a worker (missing results computed there)."""
        entries = [e for e in entries if e.image is not None]
        loaded, s = dict(self.state.models), self.state.settings
        if not entries or not loaded:
            self.state.report("nothing to export: load a model and a readable image first")
            return
        class_names = self.state.class_names

        def render() -> str:
            rows = [
                figure.FigureRow(e.path.name, e.image,
                                 {role: self.state.results.get((e.path, role)) or inference.run_model(m, e.image)
                                  for role, m in loaded.items()},
                                 e.ground_truth)
                for e in entries
            ]
            figure.save_png(path, figure.render_figure(rows, class_names, s.threshold, s.opacity))
            return path

        self._submit(render, lambda written: self.state.report(f"figure written to {written}"))

    # grad-cam methods ------------------------------------------------------------------
    def _on_settings_changed(self, keys: set[str]) -> None:
        if keys & {"cam_method", "label", "cam_level"}:
            self._request_grad_cam()

    def grad_cam_key(self, role: str) -> tuple | None:
        s, entry, label = self.state.settings, self.state.current_entry, self.state.shown_label()
        if s.cam_method == "CAM" or entry is None or label is None or role not in self.state.models:
            return None
        level = "S5" if role == "baseline" else (s.cam_level if s.cam_level in ("P5", "P4", "P3") else "P3")
        return (entry.path, role, label, level, s.cam_method, id(self.state.models[role]))

    def _request_grad_cam(self) -> None:
        entry = self.state.current_entry
        if entry is None or entry.image is None:
            return
        for role in list(self.state.models):
            key = self.grad_cam_key(role)
            if key is not None and key not in self.grad_cams and key not in self._requested:
                self._submit_grad_cam(entry, role, key)

    def _submit_grad_cam(self, entry: ImageEntry, role: str, key: tuple) -> None:
        self._requested.add(key)
        loaded, image = self.state.models[role], entry.image
        label = loaded.meta.class_names.index(key[2])
        started = time.perf_counter()

        def done(heat) -> None:
            self._requested.discard(key)
            self.grad_cams[key] = heat
            while len(self.grad_cams) > MAX_GRAD_CAMS:  # oldest first
                del self.grad_cams[next(iter(self.grad_cams))]
            _logger.info("%s for %s in %.2fs", key[4], role, time.perf_counter() - started)
            self.state.emit("grad_cam_ready", key)

        def failed(message: str) -> None:
            self._requested.discard(key)
            self.state.report(message)

        def stale() -> bool:
            if self.grad_cam_key(role) != key:
                self._requested.discard(key)
                return True
            return False

        self._submit(lambda: inference.run_grad_cam(loaded, image, label, key[3], key[4]), done, failed, stale)
