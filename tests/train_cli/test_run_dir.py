"""Run folders: never two runs in one folder, never a finished run replaced without --overwrite."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from catviz.train_cli import train
from catviz.train_cli.errors import UsageError
from catviz.train_cli.run_dir import LOCK_NAME, open_run_dir
from tests.fixtures import write_coco_format

# Tiny and short: 4 train images, 2 per batch, 64 px.
ARGS = ["--dataset", "coco-format", "--model", "cat_tiny", "--no-pretrained", "--img-size", "64",
        "--batch-size", "2", "--workers", "0", "--optimizer", "adamw", "--lr", "0.001", "--limit-images", "4"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_coco_format(tmp_path_factory.mktemp("data"), images_per_split=6)


def _start(args):
    return subprocess.Popen([sys.executable, "-m", "catviz.train_cli.train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc, what, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _lock_pid(folder):
    try:
        return (folder / LOCK_NAME).read_text().strip()
    except FileNotFoundError:
        return ""


@pytest.mark.slow
def test_concurrent_runs_into_one_folder_and_a_rerun_of_a_finished_run_are_refused(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    common = [*ARGS, "--data-root", str(data_root), "--out", str(out)]
    # Started together: one takes the folder, the other is refused naming the winner's pid. The
    # runs are long, so the winner still holds the folder however late the loser gets there (with
    # 2 epochs, a slow start-up on a busy machine could arrive after the winner had finished).
    runs = [_start([*common, "--epochs", "1000"]) for _ in range(2)]
    _wait_for(lambda: any(run.poll() is not None for run in runs), runs[0], "one run to be refused", timeout=300)
    loser = next(k for k, run in enumerate(runs) if run.poll() is not None)
    winner = runs[1 - loser]
    message = runs[loser].stderr.read()
    assert runs[loser].returncode == 2, message
    assert f"run folder {out} is in use" in message and f"pid {winner.pid}" in message
    assert "Traceback" not in message
    assert winner.poll() is None  # the refusal did not disturb the run that holds the folder
    _wait_for(lambda: (out / "log.jsonl").exists(), winner, "an epoch")
    winner.send_signal(signal.SIGINT)
    assert winner.wait(timeout=120) == 130 and "interrupted" in winner.stderr.read()
    assert not (out / LOCK_NAME).exists()
    epochs = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, len(epochs) + 1))  # one run's epochs, nothing interleaved

    finished = tmp_path / "finished"
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(finished), "--epochs", "1"]) == 0
    best, log = (finished / "best.safetensors").read_bytes(), (finished / "log.jsonl").read_text()
    capsys.readouterr()
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(finished), "--epochs", "1"]) == 2
    message = capsys.readouterr().err
    assert f"run folder {finished} already holds a run" in message and "--resume" in message and "--overwrite" in message
    assert (finished / "best.safetensors").read_bytes() == best and (finished / "log.jsonl").read_text() == log


@pytest.mark.slow
def test_a_killed_run_leaves_a_stale_lock_that_resume_takes_over_and_changed_flags_are_refused(tmp_path, data_root):
    out = tmp_path / "run"
    common = [*ARGS, "--data-root", str(data_root), "--out", str(out), "--epochs", "2", "--save-every", "1"]
    run = _start(common)
    _wait_for(lambda: (out / "last.safetensors").exists(), run, "a checkpoint was written")
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert _lock_pid(out) == str(run.pid)  # left behind by the killed process
    (out / ".last.safetensors.x1y2.catviz-tmp").write_bytes(b"")  # as left by a write cut short
    (out / ".notes.tmp").write_text("the user's own")  # not ours: never cleaned up

    changed = _start([*common, "--resume", "--batch-size", "4", "--seed", "3"])
    assert changed.wait(timeout=120) == 2
    message = changed.stderr.read()
    assert "batch_size: 2 in the run, 4 now" in message and "seed: 0 in the run, 3 now" in message
    assert "--allow-changed-config" in message
    assert f"taking over the lock left by process {run.pid}" in message

    resumed = _start([*common, "--resume"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    assert not list(out.glob(".*.catviz-tmp")) and not (out / LOCK_NAME).exists()
    assert (out / ".notes.tmp").read_text() == "the user's own"


def test_overwrite_replaces_the_previous_run_and_resume_needs_a_checkpoint(tmp_path, data_root):
    out = tmp_path / "run"
    common = [*ARGS, "--data-root", str(data_root), "--out", str(out), "--epochs", "1"]
    assert train.main(common) == 0
    (out / "log.jsonl").write_text('{"epoch": 7}\n')  # marks the old run
    (out / "tensorboard").mkdir()
    (out / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"old curves")
    (out / "notes.txt").write_text("the user's own file")
    assert train.main([*common, "--overwrite"]) == 0
    assert '"epoch": 7' not in (out / "log.jsonl").read_text()
    assert not list((out / "tensorboard").iterdir()) and (out / "notes.txt").exists()
    assert len((out / "log.jsonl").read_text().splitlines()) == 1

    assert train.main([*common, "--overwrite", "--resume"]) == 2
    assert train.main([*ARGS, "--data-root", str(data_root), "--out", str(tmp_path / "new"), "--resume"]) == 2


def test_open_run_dir_refuses_an_unwritable_folder_and_locks_against_other_processes(tmp_path):
    folder = tmp_path / "run"
    with open_run_dir(folder, resume=False, overwrite=False):
        # (not read here: closing any descriptor of the file would drop this process's record lock)
        other = subprocess.run(
            [sys.executable, "-c", "import sys; from pathlib import Path; from catviz.train_cli.run_dir import open_run_dir\n"
             "try:\n    open_run_dir(Path(sys.argv[1]), False, False)\nexcept Exception as e:\n    print(e)",
             str(folder)], capture_output=True, text=True, timeout=120)
        assert f"in use by another catviz-train process (pid {os.getpid()}" in other.stdout
    assert not (folder / LOCK_NAME).exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="cannot write to run folder"):
        open_run_dir(tmp_path / "file" / "run", resume=False, overwrite=False)


def test_a_lock_that_is_a_link_is_refused_and_its_target_never_written(tmp_path, data_root):
    """A real process, as a user runs it: ``ln -s victim R/.lock`` must not empty ``victim``."""
    out, victim = tmp_path / "run", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious")
    (out / LOCK_NAME).symlink_to(victim)
    done = subprocess.run([sys.executable, "-m", "catviz.train_cli.train", *ARGS, "--data-root", str(data_root),
                           "--out", str(out), "--epochs", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert f"lock file {out / LOCK_NAME} is a symbolic link" in done.stderr and "Traceback" not in done.stderr
    assert victim.read_text() == "precious" and (out / LOCK_NAME).is_symlink()
    assert not (out / "log.jsonl").exists()


@pytest.mark.parametrize("kind", ["dangling link", "folder", "fifo"])
def test_a_lock_that_is_not_a_regular_file_is_refused_naming_it(tmp_path, kind):
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / LOCK_NAME
    if kind == "dangling link":
        lock.symlink_to(tmp_path / "would-be-created")
    elif kind == "folder":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    with pytest.raises(UsageError, match=f"lock file {lock} is"):
        open_run_dir(folder, resume=False, overwrite=False)
    assert not (tmp_path / "would-be-created").exists()


def test_only_catviz_temporary_files_are_cleaned_up(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    ours = folder / ".last.safetensors.abc123.catviz-tmp"
    ours.write_bytes(b"half a checkpoint")
    users = [folder / ".draft.tmp", folder / ".last.safetensors.abc123.tmp", folder / "x.catviz-tmp"]
    for path in users:
        path.write_text("mine")
    with open_run_dir(folder, resume=False, overwrite=False):
        pass
    assert not ours.exists() and all(path.read_text() == "mine" for path in users)
