"""train_cli/side_by_side.py: runs side by side, their epochs echoed, a failure stops the queue, an interrupt stops the runs."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from catviz.train_cli import side_by_side
from catviz.train_cli.errors import Terminated
from catviz.train_cli.side_by_side import Job, describe, exit_status, isa_env, run_jobs

# A stand-in for catviz-train: without --resume removes an old OUT/log.jsonl (as --overwrite does),
# writes OUT/started, waits for WAIT_FOR (another job's OUT/started), appends epoch records to
# OUT/log.jsonl and exits with CODE; on SIGTERM it writes OUT/terminated.
SCRIPT = """
import json, pathlib, signal, sys, time
out, wait_for, epochs, code, first = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
signal.signal(signal.SIGTERM, lambda *_: ((out / "terminated").write_text("yes"), sys.exit(143)))
out.mkdir(parents=True, exist_ok=True)
time.sleep(1)  # as catviz-train imports torch before it replaces an old run's files
if "--resume" not in sys.argv:
    (out / "log.jsonl").unlink(missing_ok=True)
(out / "started").write_text("yes")
deadline = time.time() + 60
while wait_for and not pathlib.Path(wait_for).exists() and time.time() < deadline:
    time.sleep(0.05)
if wait_for and not pathlib.Path(wait_for).exists():
    sys.exit(9)
with open(out / "log.jsonl", "a") as log:
    for epoch in range(first, first + epochs):
        log.write(json.dumps({"epoch": epoch, "train_loss": 0.5, "mAP": 80.0 + epoch}) + "\\n")
print("console output of", out.name)
sys.exit(code)
"""


@dataclass
class FakeJob(Job):
    wait_for: str = ""
    epochs: int = 2
    code: int = 0
    first_epoch: int = 1

    def command(self) -> list[str]:
        return [sys.executable, "-c", SCRIPT, str(self.out), self.wait_for, str(self.epochs), str(self.code),
                str(self.first_epoch), *(["--resume"] if self.resume else [])]


def fake(tmp_path: Path, name: str, logged: bool = True, **kwargs) -> FakeJob:
    return FakeJob(name, ["--out", str(tmp_path / name)], tmp_path / name, tmp_path / f"{name}.log" if logged else None,
                   **kwargs)


def test_two_jobs_run_at_once_with_their_output_in_logs_and_epochs_echoed(tmp_path, capsys):
    # Each waits for the other to start: only runs side by side can both finish.
    a = fake(tmp_path, "a", wait_for=str(tmp_path / "b" / "started"))
    b = fake(tmp_path, "b", wait_for=str(tmp_path / "a" / "started"))
    done = []
    assert run_jobs([a, b], 2, lambda job, seconds: done.append((job.name, seconds))) == 0
    assert sorted(name for name, _ in done) == ["a", "b"] and all(seconds > 0 for _, seconds in done)
    out = capsys.readouterr().out
    for name in "ab":
        assert f"{name}: training, log in {tmp_path / f'{name}.log'}" in out
        assert f"{name}: epoch 1, train loss 0.5000, val mAP 81.00" in out
        assert f"{name}: epoch 2, train loss 0.5000, val mAP 82.00" in out
        assert (tmp_path / f"{name}.log").read_text() == f"console output of {name}\n"


def test_a_failed_run_returns_its_status_and_no_new_run_starts(tmp_path, capsys):
    done = []
    jobs = [fake(tmp_path, "broken", code=3), fake(tmp_path, "next")]
    assert run_jobs(jobs, 1, lambda job, seconds: done.append(job.name)) == 3
    assert done == [] and not (tmp_path / "next").exists()
    assert f"broken: training failed (exit 3), see {tmp_path / 'broken.log'}" in capsys.readouterr().err


def old_log(job: Job, epochs) -> None:
    job.out.mkdir()
    (job.out / "log.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": 0.6, "mAP": 70.0}) + "\n"
                                               for e in epochs))


def test_a_resumed_run_echoes_only_the_epochs_it_trains(tmp_path, capsys):
    job = fake(tmp_path, "resumed", first_epoch=3, epochs=1, resume=True)
    old_log(job, (1, 2))
    assert run_jobs([job], 1) == 0
    out = capsys.readouterr().out
    assert "resumed: epoch 3, train loss 0.5000, val mAP 83.00" in out and "epoch 2" not in out


def test_a_rerun_over_an_old_run_echoes_its_own_epochs_not_the_old_ones(tmp_path, capsys):
    job = fake(tmp_path, "again", epochs=2)
    old_log(job, (1, 2, 3))
    assert run_jobs([job], 1) == 0
    out = capsys.readouterr().out
    assert out.count("again: epoch") == 2 and "val mAP 70.00" not in out and "again: epoch 2, train loss 0.5000" in out


def test_with_stop_on_failure_a_failed_run_stops_the_others(tmp_path, capsys):
    done = []
    broken = fake(tmp_path, "broken", code=1, wait_for=str(tmp_path / "slow" / "started"))
    slow = fake(tmp_path, "slow", wait_for=str(tmp_path / "never"))
    assert run_jobs([broken, slow], 2, lambda job, seconds: done.append(job.name), stop_on_failure=True) == 1
    assert done == [] and (slow.out / "terminated").read_text() == "yes"
    assert "stopping slow" in capsys.readouterr().err


def test_a_run_killed_by_a_signal_is_reported_by_name_with_the_shells_status():
    assert (exit_status(-9), describe(-9)) == (137, "killed by SIGKILL (out of memory?)")
    assert (exit_status(3), describe(3)) == (3, "exit 3")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM handlers do not run on Windows")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupt_stops_the_runs_still_going(tmp_path, monkeypatch, how):
    monkeypatch.setattr(side_by_side, "GRACE_SECONDS", 0.5)  # after Ctrl-C, how long a run may take to stop itself
    quick = fake(tmp_path, "quick")
    slow = fake(tmp_path, "slow", wait_for=str(tmp_path / "never"))

    def interrupted(job: Job, seconds: float) -> None:
        deadline = time.monotonic() + 60  # until slow has its SIGTERM handler (it writes "started" after)
        while not (slow.out / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # the caller asked to stop: raises Terminated here
        time.sleep(5)

    callers_handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated if how == "sigterm" else KeyboardInterrupt):
        run_jobs([quick, slow], 2, interrupted)
    assert (slow.out / "terminated").read_text() == "yes"
    assert signal.getsignal(signal.SIGTERM) is callers_handler  # the caller's handler is back


def test_a_job_runs_its_module_with_its_own_environment_on_top_of_the_callers(tmp_path, monkeypatch):
    monkeypatch.setenv("CATVIZ_TEST_CALLER", "kept")
    job = Job("probe", [], tmp_path / "probe", tmp_path / "probe.log", env={"CATVIZ_TEST_JOB": "added"})
    job.command = lambda: [sys.executable, "-c", "import os; print(os.environ['CATVIZ_TEST_CALLER'], "
                           "os.environ['CATVIZ_TEST_JOB'])"]
    assert Job("t", ["--x"], tmp_path).command()[1:] == ["-m", "catviz.train_cli.train", "--x"]
    assert Job("p", ["--x"], tmp_path, module="catviz.train_cli.pretrain").command()[1:] == ["-m", "catviz.train_cli.pretrain", "--x"]
    assert run_jobs([job], 1) == 0
    assert (tmp_path / "probe.log").read_text() == "kept added\n"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


@pytest.mark.skipif("avx2" not in _cpu_flags(), reason="needs an x86 CPU with AVX2 (reads /proc/cpuinfo)")
def test_isa_env_caps_torchs_kernels_and_onednn_at_avx2_in_a_child_process():
    probe = ("import torch\n"
             "x = torch.randn(2, 16, 16, 16).to(memory_format=torch.channels_last)\n"
             "with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):\n"
             "    torch.nn.functional.conv2d(x, torch.randn(8, 16, 3, 3).to(memory_format=torch.channels_last))\n"
             "print('aten', torch.backends.cpu.get_cpu_capability())\n")
    done = subprocess.run([sys.executable, "-c", probe], env=os.environ | isa_env("avx2"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "aten AVX2" in done.stdout  # AVX512 on this project's newer CPUs without the cap
    isa = [line for line in done.stdout.splitlines() if "info,cpu,isa:" in line]
    assert isa and isa[0].endswith("isa:Intel AVX2"), isa  # oneDNN's own report of what it runs
