"""Run folders: one run per folder, never silently replaced, guarded by a lock.

- A folder that holds another run's files (:data:`RUN_FILES`) is refused unless that run
  is continued (``--resume``) or explicitly replaced (``--overwrite``, which deletes
  those files, its ``config.yaml`` and TensorBoard event files first).
- ``<run>/.lock`` holds the running process's pid under a POSIX record lock
  (``fcntl.lockf``). The kernel releases the lock when its holder dies, however it dies,
  so a lock left behind by a killed run is taken over, with a message naming its pid;
  a lock held by a live process refuses the second run, naming that pid. (Record locks
  belong to the process: DataLoader workers forked from it do not keep them alive. The
  flip side: closing *any* descriptor of the lock file drops the lock, so the holder never
  opens it a second time.)
  The lock file is opened without following links and must be a regular file: a link
  planted as ``.lock`` is refused, naming it, and its target is never written.
- Temporary files of interrupted atomic writes are removed once the lock is held (nobody
  else can be writing them then): only the project's own names
  (:data:`catviz.models.checkpoint.TEMP_SUFFIX`), never a user's ``.*.tmp``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time
from pathlib import Path

from catviz.models.checkpoint import TEMP_SUFFIX

from . import snapshots
from .errors import UsageError

_logger = logging.getLogger("catviz.train")

#: The files that make a folder "hold a run": a re-run must not mix with or replace them.
RUN_FILES = ("last.safetensors", "best.safetensors", "log.jsonl")
#: Written by every run; replaced by ``--overwrite`` and rewritten by ``--resume``.
OTHER_RUN_FILES = ("config.yaml",)
LOCK_NAME = ".lock"


class RunLock:
    """An acquired run-folder lock; :meth:`release` (or leaving the ``with`` block) frees it."""

    def __init__(self, folder: Path, fd: int):
        self.folder, self.path, self._fd = folder, folder / LOCK_NAME, fd

    def release(self) -> None:
        if self._fd < 0:
            return
        # Unlink while still holding the lock: a process that opened the old file before
        # this sees a different inode after its own lockf and retries (see _acquire).
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing releases the record lock
        self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode("ascii", "replace").strip()


def _open_lock_file(path: Path) -> int:
    """The lock file's descriptor, never through a link, and only for a regular file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UsageError(f"lock file {path} is a symbolic link, not catviz's lock; remove it "
                             "(its target is left untouched) or choose another --out") from None
        if err.errno in (errno.EISDIR, errno.ENXIO):
            raise UsageError(f"lock file {path} is not a regular file; remove it or choose another --out") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"lock file {path} is not a regular file; remove it or choose another --out")
    return fd


def _acquire(folder: Path) -> RunLock:
    path = folder / LOCK_NAME
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                os.close(fd)
                raise
            holder = _holder(fd)
            for _ in range(20):  # the holder writes its pid just after locking
                if holder:
                    break
                time.sleep(0.05)
                holder = _holder(fd)
            os.close(fd)
            raise UsageError(
                f"run folder {folder} is in use by another catviz-train process (pid {holder or '?'}, "
                f"lock file {path}); wait for it to finish or choose another --out"
            ) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the holder released and unlinked it between our open and lockf: retry
    stale = _holder(fd)
    if stale and stale != str(os.getpid()):
        _logger.warning("run folder %s: taking over the lock left by process %s, which is no longer running",
                        folder, stale)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RunLock(folder, fd)


def _remove_stale_temp_files(folder: Path) -> None:
    for tmp in folder.glob(f".*{TEMP_SUFFIX}"):
        if tmp.is_symlink() or not tmp.is_file():
            continue
        try:
            tmp.unlink()
            _logger.info("removed %s, left by an interrupted checkpoint write", tmp)
        except OSError as err:
            _logger.warning("could not remove stale temporary file %s: %s", tmp, err)


def open_run_dir(folder: Path, resume: bool, overwrite: bool) -> RunLock:
    """Create/lock ``folder`` for a new run, a resumed one or a replacing one; else :class:`UsageError`.

    Also the check that the folder is writable, before any data or model is loaded.
    """
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = _acquire(folder)
    except OSError as err:
        raise UsageError(f"cannot write to run folder {folder} ({err.strerror or err}); choose another --out") from err
    try:
        _remove_stale_temp_files(folder)
        existing = [name for name in RUN_FILES if (folder / name).exists()]
        if resume:
            if not (folder / "last.safetensors").is_file():
                raise UsageError(f"--resume given but {folder / 'last.safetensors'} does not exist; "
                                 "start a new run without --resume")
        elif existing and not overwrite:
            raise UsageError(
                f"run folder {folder} already holds a run ({', '.join(existing)}); pass --resume to continue it, "
                "--overwrite to replace it, or --out NEW_FOLDER for a new run"
            )
        elif existing:
            for name in (*existing, *OTHER_RUN_FILES):
                (folder / name).unlink(missing_ok=True)
            for events in (folder / "tensorboard").glob("events.out.tfevents.*"):  # --tensorboard's curves
                events.unlink()
            for snapshot in snapshots.find(folder).values():  # --snapshot-every's models
                snapshot.unlink()
            _logger.warning("--overwrite: removed the previous run's %s from %s", ", ".join(existing), folder)
    except BaseException:
        lock.release()
        raise
    return lock
