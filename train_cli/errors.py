"""One error channel for the CLIs: typed exceptions, caught in each ``main``, become exit codes.

- :class:`UsageError` (exit 2): a flag, config value, run folder or device that the
  command refuses before loading any data or model.
- :class:`RunError` and the other typed errors (``DatasetError``, ``CheckpointError``)
  (exit 1): the work started and failed; the message names the file and the problem.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

#: catviz-train's; catviz-eval has its own (``train_cli/evaluate.py``).
EXIT_CODES_HELP = (
    "exit codes: 0 success; 1 failure (unreadable dataset or checkpoint, diverged training, "
    "disk full ...), the message names the file; 2 usage error (invalid flag or config value, "
    "run folder in use or holding another run), found before any data or model is loaded; "
    "130 interrupted (Ctrl-C), 143 terminated (SIGTERM); both leave the last checkpoint for --resume"
)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, ``docker stop``, ``kill``), handled as Ctrl-C is."""


def _raise_terminated(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises :class:`Terminated`, so the work stops the way Ctrl-C stops it,
    through ``KeyboardInterrupt``'s cleanup; the caller's handler is back afterwards. Only the
    main thread may set signal handlers: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class UsageError(ValueError):
    """Refused before any work starts (exit 2); the message says what to change."""


class RunError(RuntimeError):
    """The work started and could not finish (exit 1); the message names what failed."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are two lines: the error, and where the options are.
    argparse's default prints the whole synopsis first, some 25 lines for catviz-train,
    which buries the one line that matters."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(all options: {self.prog} --help)\n")
