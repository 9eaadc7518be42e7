"""One error channel for the CLIs: typed exceptions, caught in each ``main``, become exit codes.

- :class:`UsageError` (exit 2): a flag, config value, run folder or device that the
  command refuses before loading any data or model.
- :class:`RunError` and the other typed errors (``DatasetError``, ``CheckpointError``)
  (exit 1): the work started and failed; the message names the file and the problem.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def int_range(low: int, high: int):
    """An argparse ``type``: an integer in [low, high], else a usage error (exit 2) naming the
    range. State the range in the flag's help (:func:`range_text`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer in {range_text(low, high)}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {range_text(low, high)}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(low: float, high: float, low_open: bool = False, high_open: bool = False):
    """An argparse ``type``: a finite number between ``low`` and ``high`` (open ends as given)."""
    text_range = range_text(low, high, low_open, high_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number in {text_range}") from None
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"{value} is outside {text_range}")
        return value

    parse.__name__ = "number"
    return parse


def range_text(low, high, low_open: bool = False, high_open: bool = False) -> str:
    def text(v) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    return f"{'(' if low_open else '['}{text(low)}, {text(high)}{')' if high_open else ']'}"


#: The longest name of one file or folder on Linux/macOS file systems (NAME_MAX), in bytes.
NAME_MAX = 255


def output_path_problem(path: Path, folder: bool = False) -> str | None:
    """Why ``path`` cannot be written (each name at most :data:`NAME_MAX` bytes, the folder it
    goes into exists, is a folder and takes a new file: a real probe, since ``access()`` says
    yes to root on read-only mounts), or ``None``. ``folder``: ``path`` is a folder the
    command writes into (creating it if need be): it, or its nearest existing parent, is probed."""
    long = [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX]
    if long:
        return f"the name {long[0][:40]}... is {len(os.fsencode(long[0]))} bytes long; at most {NAME_MAX} are allowed"
    parent = path.absolute() if folder else path.absolute().parent
    if folder:  # the folder itself when it exists, else the nearest existing one above (created later)
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        return f"cannot write into {parent} (no such folder)"
    if not parent.is_dir():
        return f"cannot write into {parent} (not a folder)"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        return f"cannot write into {parent} ({err.strerror or err})"
    return None


def check_output_path(path: str | Path, flag: str, folder: bool = False) -> None:
    """:class:`UsageError` (exit 2) naming ``flag`` when :func:`output_path_problem` finds one."""
    problem = output_path_problem(Path(path), folder)
    if problem:
        raise UsageError(f"{flag} {str(path)[:80]}{'...' if len(str(path)) > 80 else ''}: {problem}")
