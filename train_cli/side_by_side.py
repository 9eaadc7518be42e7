"""Several ``catviz-train`` runs side by side, each its own process (pretraining, too, runs through here).

On this project's 2-core CPU machine a small model's convolutions do not keep two threads
busy: two runs on one thread each (in ``channels_last``) trained the demo pair in about half the
time of one run after the other on two threads (README, the seed study). Used by
``python -m catviz.train_cli.demo_models`` and ``bench/demo_seeds.py --jobs``. When several run at once
each run's console output (tqdm bars and all) goes to its own log file, and each epoch's
``log.jsonl`` record is echoed here as one line, so the terminal still shows progress.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import sigterm_as_interrupt

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.5
GRACE_SECONDS = 15  # for a run to save and stop, after Ctrl-C or SIGTERM, before it is killed


# Each library's own name for an instruction set; only AVX2 is used (DEMO_CPU_ISA) and checked.
ISA_CAPS = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def isa_env(isa: str) -> dict[str, str]:
    """Environment variables that cap torch's CPU kernels (ATen), oneDNN and MKL at the
    instruction set ``isa``, so a run sums its floats in the same order on CPUs with wider
    vectors (checked: AMD EPYC CPUs with AVX2 and with AVX-512 give the same bits; Intel CPUs
    not tested); none on other than x86 CPUs. Each library reads its variable once, when it first
    computes: set them for a child process, or in this one before its first tensor operation."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    return dict(ISA_CAPS[isa])


def recorded_isa(isa: str) -> str:
    """What a run capped with ``isa_env(isa)`` ran on, as results record it: ``isa``, or "native" where nothing is capped."""
    return isa if isa_env(isa) else "native"


@dataclass
class Job:
    """One run of ``python -m module`` (``catviz-train`` unless said): ``argv`` are its flags,
    ``out`` its ``--out`` folder, ``env`` what it adds to the environment."""

    name: str
    argv: list[str]
    out: Path
    log: Path | None = None  # its console output when runs share the terminal; None: this terminal
    resume: bool = False  # argv has --resume: the run's log.jsonl already holds its earlier epochs
    env: dict[str, str] = field(default_factory=dict)
    module: str = "catviz.train_cli.train"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.argv]


def exit_status(code: int) -> int:
    """A process's return code as a shell reports it: killed by signal N is 128 + N."""
    return 128 - code if code < 0 else code


def describe(code: int) -> str:
    if code >= 0:
        return f"exit {code}"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
    return f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")


class _Running:
    """A started job: its process, start time, open console log and the epochs already echoed."""

    def __init__(self, job: Job, env: dict[str, str]) -> None:
        self.job = job
        self.console = None
        if job.log is not None:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            self.console = open(job.log, "a" if job.resume else "w")  # noqa: SIM115 (closed in finish())
        try:
            self.process = subprocess.Popen(job.command(), stdout=self.console,
                                            stderr=subprocess.STDOUT if self.console else None, env=env | job.env)
        except OSError:
            if self.console is not None:
                self.console.close()
            raise
        self.start = time.perf_counter()
        # The log as it was: a resumed run's earlier epochs, or an old run's that --overwrite replaces.
        self.old_log = _identity(job.out / "log.jsonl")
        self.echoed = max(_epochs(job.out / "log.jsonl"), default=0) if self.old_log else 0

    def echo_epochs(self) -> None:
        """Print the epoch records the run has written since the last call (when its console is a log file)."""
        if self.console is None:
            return
        path = self.job.out / "log.jsonl"
        if self.old_log and not self.job.resume and _identity(path) != self.old_log:
            self.old_log, self.echoed = None, 0  # --overwrite replaced the old run's log: echo from epoch 1
        if self.old_log and not self.job.resume:
            return  # still the old run's log
        for epoch, record in sorted(_epochs(path).items()):
            if epoch > self.echoed:
                print(f"{self.job.name}: epoch {epoch}, train loss {record.get('train_loss', float('nan')):.4f}, "
                      f"val mAP {record.get('mAP', float('nan')):.2f}", flush=True)
                self.echoed = epoch

    def finish(self) -> float:
        self.echo_epochs()
        if self.console is not None:
            self.console.close()
        return time.perf_counter() - self.start


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, modification time) of a file, None if there is none: changes when the file is replaced."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _epochs(path: Path) -> dict[int, dict]:
    """A run's ``log.jsonl`` records by epoch (the last record of an epoch counts; a line being written is skipped)."""
    records = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return records
    for line in lines:
        try:
            record = json.loads(line)
            records[int(record["epoch"])] = record
        except (ValueError, KeyError, TypeError):
            continue
    return records


def _stop(running: list[_Running], wait_first: bool) -> None:
    """Stop the runs: SIGTERM, then kill whatever still runs after a grace period. ``wait_first``:
    first give them that long to stop on their own (a terminal's Ctrl-C reached them too)."""
    steps = (lambda p: None,) * wait_first + (subprocess.Popen.terminate, subprocess.Popen.kill)
    for signal_them in steps:
        for started in running:
            if started.process.poll() is None:
                signal_them(started.process)
        deadline = time.monotonic() + GRACE_SECONDS
        for started in running:
            try:
                started.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if all(started.process.poll() is not None for started in running):
            break
    for started in running:
        started.finish()


def run_jobs(jobs: list[Job], at_once: int, done: Callable[[Job, float], None] | None = None,
             stop_on_failure: bool = False) -> int:
    """Run ``jobs``, ``at_once`` at a time, calling ``done(job, seconds)`` as each ends well.

    Returns the exit status of the first run that failed, 0 if all ended well. After a failure
    no new run starts; the runs already going finish, or with ``stop_on_failure`` are stopped.
    On Ctrl-C or SIGTERM the runs still going are stopped (catviz-train's ``--resume`` goes on
    from its last checkpoint) and ``KeyboardInterrupt`` (``Terminated`` for SIGTERM) is raised.
    """
    path = [str(ROOT)] if (ROOT / "pyproject.toml").is_file() else []  # a source checkout: its own train_cli
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [*path, os.environ.get("PYTHONPATH")]))}
    queue, running, failed = list(jobs), [], 0
    with sigterm_as_interrupt():
        try:
            while running or (queue and not failed):
                while queue and len(running) < at_once and not failed:
                    job = queue.pop(0)
                    if job.log is not None:
                        print(f"{job.name}: training, log in {job.log}", flush=True)
                    running.append(_Running(job, env))
                time.sleep(POLL_SECONDS)
                for started in list(running):
                    started.echo_epochs()
                    if started.process.poll() is None:
                        continue
                    running.remove(started)
                    seconds = started.finish()
                    code = started.process.returncode
                    if code:
                        print(f"{started.job.name}: training failed ({describe(code)})"
                              + (f", see {started.job.log}" if started.job.log else ""), file=sys.stderr)
                        failed = failed or exit_status(code)
                        if stop_on_failure and running:
                            print(f"stopping {', '.join(r.job.name for r in running)}", file=sys.stderr)
                            _stop(running, wait_first=False)
                            running.clear()
                            break
                    elif done is not None:
                        done(started.job, seconds)
        except BaseException as err:  # an interrupt, or an error in done()
            _stop(running, wait_first=type(err) is KeyboardInterrupt)
            raise
    return failed
