"""Training runs as the app and ``catviz runs`` read them: a run folder's ``log.jsonl``,
``config.yaml``, snapshots and whether its trainer is still at work. Qt-free and torch-free.

A run folder is one ``catviz-train --out`` wrote: it holds ``log.jsonl``, ``last.safetensors``,
``best.safetensors`` or ``snapshots/epoch-NNN.safetensors``. Damage never hides the rest of a
run: a line of ``log.jsonl`` that is not JSON, not an epoch record or has a value of the wrong
type is skipped (the value dropped) with a message naming the file and line; a snapshot of
another model or with unreadable metadata is left off the slider with a message naming it.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from catviz.train_cli import snapshots as snapshot_files

LOG = "log.jsonl"
LOCK = ".lock"
MARKERS = ("log.jsonl", "last.safetensors", "best.safetensors", "config.yaml")  # config.yaml: written first
#: The numbers of a log record that are drawn; ``level_mAP`` is a mapping of them.
NUMBERS = ("train_loss", "lr", "mAP", "mAP_raw")


class NotARun(ValueError):
    """A folder that holds no training run; the message names it."""


def is_run(folder: Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and (any((folder / name).is_file() for name in MARKERS) or bool(snapshot_files.find(folder)))


@dataclass
class Run:
    folder: Path
    records: dict[int, dict] = field(default_factory=dict)  # epoch -> its (last) record
    problems: list[str] = field(default_factory=list)
    snapshots: dict[int, Path] = field(default_factory=dict)
    model: str | None = None  # from config.yaml
    planned_epochs: int | None = None
    status: str = ""  # "training (pid N)", "finished", "stopped after epoch k of N", "died ..."
    live: bool = False  # the trainer is still running
    _log_stamp: tuple = ()
    _log_problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.folder.name or str(self.folder)

    @property
    def epochs(self) -> list[int]:
        return sorted(self.records)

    @property
    def has_ema(self) -> bool:
        return any("mAP_raw" in r or r.get("weights") == "ema" for r in self.records.values())

    def series(self) -> dict[str, tuple[list[int], list[float]]]:
        """Curve name → (epochs, values), NaN where an epoch lacks the value. Names: ``train loss``,
        ``lr``, ``val mAP`` (or ``val mAP (EMA)`` and ``val mAP (raw)`` with EMA) and ``mAP <level>``."""
        epochs = self.epochs

        def column(get) -> list[float]:
            values = []
            for epoch in epochs:
                value = get(self.records[epoch])
                values.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan)
            return values

        out = {"train loss": (epochs, column(lambda r: r.get("train_loss"))), "lr": (epochs, column(lambda r: r.get("lr")))}
        if self.has_ema:
            out["val mAP (EMA)"] = (epochs, column(lambda r: r.get("mAP")))
            out["val mAP (raw)"] = (epochs, column(lambda r: r.get("mAP_raw")))
        else:
            out["val mAP"] = (epochs, column(lambda r: r.get("mAP")))
        levels = []
        for record in self.records.values():
            levels += [name for name in record.get("level_mAP", {}) if name not in levels]
        for level in levels:
            out[f"mAP {level}"] = (epochs, column(lambda r, level=level: r.get("level_mAP", {}).get(level)))
        return out


def open_run(folder: Path) -> Run:
    """Read a run folder; :class:`NotARun` if it holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotARun(f"{folder}: no such folder")
    if not is_run(folder):
        raise NotARun(f"{folder}: holds no training run (no {', '.join(MARKERS)} or snapshots/)")
    run = Run(folder)
    refresh(run)
    return run


def refresh(run: Run) -> bool:
    """Re-read what may have changed; whether anything did (cheap when nothing did: a stat)."""
    before = (run.epochs, list(run.snapshots), run.status, len(run.problems))
    _read_config(run)
    log = run.folder / LOG
    try:
        stat = log.stat()
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    except OSError:
        stamp = ()
    live_before = run.live
    run.status, run.live = _status(run)
    if stamp != run._log_stamp or live_before != run.live:
        run._log_stamp = stamp
        run.records, run._log_problems = (_read_log(log, run.live) if stamp else
                                          ({}, [f"{log}: no such file (no epoch logged yet)"]))
    run.snapshots, bad = _read_snapshots(run)
    run.problems = run._log_problems + bad
    run.status, run.live = _status(run)
    return before != (run.epochs, list(run.snapshots), run.status, len(run.problems))


def _read_config(run: Run) -> None:
    if run.model is not None:
        return
    try:
        config = yaml.safe_load((run.folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return
    if isinstance(config, dict):
        run.model = config.get("model") if isinstance(config.get("model"), str) else None
        epochs = config.get("epochs")
        run.planned_epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _read_log(path: Path, live: bool) -> tuple[dict[int, dict], list[str]]:
    records, problems = {}, []
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        return {}, [f"{path}: cannot be read ({err.strerror or err})"]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif live and lines:  # the trainer is writing this line now
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            problems.append(f"{path}, line {number}: not a JSON record ({err}); skipped")
            continue
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            problems.append(f"{path}, line {number}: no epoch number (an integer >= 1); skipped")
            continue
        for key in NUMBERS:
            value = record.get(key)
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
                problems.append(f"{path}, line {number}: {key} is {value!r}, not a number; left out")
                record.pop(key)
        levels = record.get("level_mAP", {})
        if not isinstance(levels, dict):
            problems.append(f"{path}, line {number}: level_mAP is not a mapping; left out")
            levels = {}
        record["level_mAP"] = {str(k): v for k, v in levels.items()
                               if isinstance(v, int | float) and not isinstance(v, bool)}
        records[epoch] = record  # a redone epoch (after --resume): its last record counts
    return dict(sorted(records.items())), problems


def snapshot_header(path: Path) -> dict:
    """The catviz metadata of a safetensors file, read from its header alone (no torch)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        if size > 100_000_000:
            raise ValueError("header too large")
        header = json.loads(f.read(size))
    return json.loads(header.get("__metadata__", {}).get("catviz", "null")) or {}


def _read_snapshots(run: Run) -> tuple[dict[int, Path], list[str]]:
    found, problems = {}, []
    for epoch, path in snapshot_files.find(run.folder).items():
        try:
            meta = snapshot_header(path)
        except (OSError, ValueError, struct.error, AttributeError) as err:
            problems.append(f"{path}: not a readable catviz checkpoint ({err}); left off the slider")
            continue
        if not isinstance(meta, dict) or not meta.get("model"):
            problems.append(f"{path}: not a catviz checkpoint (no catviz metadata); left off the slider")
            continue
        if run.model and meta["model"] != run.model:
            problems.append(f"{path}: a snapshot of {meta['model']!r}, not of this run's {run.model!r}; "
                            "left off the slider")
            continue
        found[epoch] = path
    return found, problems


def _status(run: Run) -> tuple[str, bool]:
    """(what the run is doing, whether its trainer is alive), from its lock file and files."""
    lock = run.folder / LOCK
    done = max(run.records, default=0)
    planned = run.planned_epochs
    if lock.is_file() and not lock.is_symlink():
        try:
            pid = int(lock.read_text()[:20].strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid and _alive(pid):
            return f"training (pid {pid}), epoch {done}" + (f" of {planned}" if planned else ""), True
        if pid:
            return f"died: its trainer (pid {pid}) is gone, after epoch {done}", False
    crash = run.folder / "crash.log"
    log = run.folder / LOG
    if crash.is_file() and (not log.is_file() or crash.stat().st_mtime >= log.stat().st_mtime):
        return f"died after epoch {done} (see {crash})", False
    if planned and done < planned:
        return f"stopped after epoch {done} of {planned}", False
    return f"finished ({done} epochs)", False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
