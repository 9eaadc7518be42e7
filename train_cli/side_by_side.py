"""Several ``catviz-train`` runs side by side, each its own process on a share of the CPU's cores.

On this project's 2-core CPU machine a small model's convolutions do not keep two threads
busy: two runs on one thread each (in ``channels_last``) trained the demo pair in about half the
time of one run after the other on two threads (README, the seed study). Used by
``python -m train_cli.demo_models`` and ``bench/demo_seeds.py --jobs``. When several run at once
each run's console output (tqdm bars and all) goes to its own log file, and each epoch's
``log.jsonl`` record is echoed here as one line, so the terminal still shows progress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.5


@dataclass
class Job:
    """One ``catviz-train`` run: ``argv`` are its flags, ``out`` its ``--out`` folder."""

    name: str
    argv: list[str]
    out: Path
    log: Path | None = None  # its console output when runs share the terminal; None: this terminal

    def command(self) -> list[str]:
        return [sys.executable, "-m", "train_cli.train", *self.argv]


class _Running:
    """A started job: its process, start time, open log and how many epoch records were echoed."""

    def __init__(self, job: Job, env: dict[str, str]) -> None:
        self.job = job
        self.console = None
        if job.log is not None:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            self.console = open(job.log, "w")  # noqa: SIM115 (closed in finish())
        self.process = subprocess.Popen(job.command(), stdout=self.console,
                                        stderr=subprocess.STDOUT if self.console else None, env=env)
        self.start = time.perf_counter()
        # Echo only epochs this process trains: a resumed run's log holds the earlier ones.
        self.echoed = max(_epochs(job.out / "log.jsonl"), default=0) if "--resume" in job.argv else 0

    def echo_epochs(self) -> None:
        """Print the epoch records the run has written since the last call (when its console is a log file)."""
        if self.console is None:
            return
        for epoch, record in sorted(_epochs(self.job.out / "log.jsonl").items()):
            if epoch > self.echoed:
                print(f"{self.job.name}: epoch {epoch}, train loss {record.get('train_loss', float('nan')):.4f}, "
                      f"val mAP {record.get('mAP', float('nan')):.2f}", flush=True)
                self.echoed = epoch

    def finish(self) -> float:
        self.echo_epochs()
        if self.console is not None:
            self.console.close()
        return time.perf_counter() - self.start


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


def run_jobs(jobs: list[Job], at_once: int, done: Callable[[Job, float], None] | None = None) -> int:
    """Run ``jobs``, ``at_once`` at a time, calling ``done(job, seconds)`` as each ends well.

    Returns the exit status of the first run that failed (after the runs already started have
    ended; no new one starts), 0 if all ended well. On an interrupt every running run gets
    SIGTERM, which catviz-train answers by saving its checkpoint (``--resume`` goes on from it).
    """
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    queue, running, failed = list(jobs), [], 0
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
                    print(f"{started.job.name}: training failed (exit {code})"
                          + (f", see {started.job.log}" if started.job.log else ""), file=sys.stderr)
                    failed = failed or code
                elif done is not None:
                    done(started.job, seconds)
    finally:
        for started in running:  # only on an interrupt or an error in done()
            started.process.terminate()
        for started in running:
            started.process.wait()
            started.finish()
    return failed
