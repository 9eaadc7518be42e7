"""The app's one job system: :class:`Task` (a QRunnable with a signals QObject) on a
:class:`Workers` pool. No torch here, so views may import it.

Every background job of the app runs through it — the compare view's decoding, inference
and attributions (``catviz.qt_workers.InferenceController``), the Dataset tab's opening,
pass, report and thumbnails (``catviz.qt_dataset_jobs.DatasetController``) — with one
notion of

* priority: a higher one starts first when the pool has a free thread;
* cancel: cooperative, ``task.cancel()`` sets a flag that ``fn`` polls through
  ``task.should_stop``; a task cancelled before it starts never runs (``cancelled``);
* progress: ``task.progress(value)`` from the worker arrives as ``progressed(value)`` on
  the GUI thread (a fraction, or any object a job describes its progress with);
* errors: a ValueError or OSError (bad files, bad checkpoints, missing datasets: what users
  cause) arrives as ``failed(message)``; anything else is logged with its traceback and
  arrives as ``failed("internal error: ...")``, never killing the app silently.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from .qt_gc import collect_garbage_on_gui_thread

_logger = logging.getLogger(__name__)


class TaskSignals(QObject):
    succeeded = Signal(object)
    failed = Signal(str)
    progressed = Signal(object)
    cancelled = Signal()
    done = Signal()


class Task(QRunnable):
    """Runs ``fn(task)`` on the pool unless cancelled first; ``fn`` may poll ``task.should_stop``
    and report ``task.progress(value)``. ``key`` names what it computes (to find or cancel it);
    ``cancel_errors``: exceptions that mean "stopped on request" (``cancelled``, not ``failed``)."""

    def __init__(self, fn: Callable[[Task], object], key: tuple | None = None,
                 cancel_errors: tuple[type[BaseException], ...] = (), niceness: int = 0):
        super().__init__()
        self.setAutoDelete(False)  # the pool's owner drops its reference when done
        self.fn, self.key = fn, key
        self.cancel_errors, self.niceness = cancel_errors, niceness
        self.signals = TaskSignals()
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def progress(self, value) -> None:
        self.signals.progressed.emit(value)

    def run(self) -> None:
        if self.niceness:
            lower_thread_priority(self.niceness)
        try:
            if self.should_stop():
                self.signals.cancelled.emit()
            else:
                self.signals.succeeded.emit(self.fn(self))
        except self.cancel_errors:
            self.signals.cancelled.emit()
        except (ValueError, OSError) as err:  # ImageLoadError, CheckpointError, DatasetError, disk errors
            self.signals.failed.emit(str(err))
        except Exception as err:  # a bug must reach the user, not kill the app silently
            _logger.error("worker failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(f"internal error: {type(err).__name__}: {err}")
        finally:
            self.signals.done.emit()


def lower_thread_priority(niceness: int = 10) -> None:
    """Make this pool thread (and the torch threads it starts, which inherit it) yield to the
    GUI thread and to interactive work when the CPU is busy. Linux only."""
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except (AttributeError, OSError):
        pass


class Workers(QObject):
    """A pool of ``threads`` and the tasks queued or running on it, from the GUI thread.

    ``niceness``: background pools (the dataset pass) run their threads at a lower priority.
    ``busy_changed(pending)`` after every submit and every end; ``task_finished(task)`` after
    each task's own handlers ran. After :meth:`shutdown` nothing new starts."""

    busy_changed = Signal(int)
    task_finished = Signal(object)

    def __init__(self, threads: int = 1, niceness: int = 0, cancel_errors: tuple[type[BaseException], ...] = ()):
        super().__init__()
        collect_garbage_on_gui_thread()
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(threads)
        self.niceness, self.cancel_errors = niceness, cancel_errors
        self.tasks: dict[int, Task] = {}  # id → task, while queued or running
        self.closed = False
        self._held: list[tuple[Task, int]] | None = None  # submitted while held: started on release()

    def hold(self) -> None:
        """Keep tasks submitted from now on queued (pending, findable, cancellable) without
        starting them, until :meth:`release`: the app's window paints before a worker's import
        of torch takes the interpreter for seconds."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Start what was held, highest priority first; later tasks start at once. Idempotent."""
        held, self._held = self._held or [], None
        for task, priority in sorted(held, key=lambda item: -item[1]):
            if not self.closed:
                self.pool.start(task, priority)

    @property
    def pending(self) -> int:
        return len(self.tasks)

    def submit(self, fn: Callable[[Task], object], on_success: Callable, on_failure: Callable[[str], object],
               priority: int = 0, key: tuple | None = None, on_progress: Callable | None = None,
               on_cancel: Callable[[], object] | None = None) -> Task:
        """Queue ``fn(task)``; its handlers are called on the GUI thread."""
        task = Task(fn, key, self.cancel_errors, self.niceness)
        if self.closed:
            return task
        task.signals.succeeded.connect(on_success)
        task.signals.failed.connect(on_failure)
        if on_progress is not None:
            task.signals.progressed.connect(on_progress)
        if on_cancel is not None:
            task.signals.cancelled.connect(on_cancel)
        task.signals.done.connect(lambda: self._finished(task))
        self.tasks[id(task)] = task
        self.busy_changed.emit(self.pending)
        if self._held is not None:
            self._held.append((task, priority))
        else:
            self.pool.start(task, priority)
        return task

    def _finished(self, task: Task) -> None:
        self.tasks.pop(id(task), None)
        self.busy_changed.emit(self.pending)
        self.task_finished.emit(task)

    def running(self, key: tuple) -> Task | None:
        """The task computing ``key``, queued or running and not cancelled."""
        return next((t for t in self.tasks.values() if t.key == key and not t.should_stop()), None)

    def cancel(self, wanted: Callable[[Task], bool] = lambda task: True) -> None:
        """Ask the tasks ``wanted`` picks to stop (all by default)."""
        for task in list(self.tasks.values()):
            if wanted(task):
                task.cancel()

    def wait(self, msecs: int = 60000) -> bool:
        return self.pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 10000) -> None:
        """Drop queued work, ask running work to stop, wait for it; start nothing after."""
        self.closed = True
        held = {id(task) for task, _ in self._held or []}
        for task in list(self.tasks.values()):
            if id(task) in held or self.pool.tryTake(task):  # queued, never to run: not pending any more
                self.tasks.pop(id(task), None)
        self._held = None
        self.busy_changed.emit(self.pending)
        self.cancel()
        if self.wait(msecs):  # every task has ended; their "done" may not have reached this thread yet
            self.tasks.clear()
            self.busy_changed.emit(0)
