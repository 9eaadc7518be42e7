"""``catviz`` as a command: flags checked before any work, what it opens, --screenshot."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from catviz import app, demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flags, message", [
    (["--size", "big"], "--size must be WIDTHxHEIGHT"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--device", "tpu9"], "--device tpu9"),
    (["--dataset", "imagenet"], "invalid choice"),
    (["--dataset", "coco"], "--dataset coco needs --data-root"),
    (["--data-root", "somewhere"], "--data-root is read only with --dataset"),
])
def test_bad_flags_are_usage_errors_before_any_work(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 2 and "catviz --help" in err  # the error and where the options are, no synopsis


def test_screenshot_is_checked_before_any_work_and_never_replaces_a_file(tmp_path, capsys):
    mine = tmp_path / "shot.png"
    mine.write_bytes(b"mine")
    for path, message in ((mine, "the file exists"), (tmp_path / "s.gif", "write a .png"),
                          (tmp_path / "no" / "s.png", "cannot write into")):
        with pytest.raises(SystemExit) as exit_info:
            app.main(["--screenshot", str(path)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert mine.read_bytes() == b"mine"


def test_the_demo_dataset_comes_with_the_demo_models(monkeypatch, tmp_path):
    image = tmp_path / "0.png"
    monkeypatch.setattr(app, "dataset_images", lambda *a: ([image], {image: {"3"}}))
    checkpoints, paths, truth = app.app_sources(app.build_parser().parse_args(["--dataset", "demo"]))
    assert checkpoints == demo.DEMO_CHECKPOINTS and paths == [] and truth == {}  # its split: listed once read (issue 27)
    checkpoints, paths, _ = app.app_sources(app.build_parser().parse_args([str(tmp_path)]))
    assert checkpoints == {} and paths == [tmp_path]  # a folder alone: no models (the window says how to add them)


def test_a_missing_dataset_is_a_message_not_a_traceback(tmp_path, capsys):
    assert app.main(["--dataset", "voc", "--data-root", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err


def test_missing_qt_system_libraries_stop_before_qt_starts(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(app.system_libs, "main", lambda: 1)  # it printed the apt-get line
    monkeypatch.setattr(app, "_screenshot_when_ready", lambda *a: started.append(a))
    assert app.main([str(tmp_path)]) == 1 and started == []


def test_screenshot_exits_even_with_no_models(tmp_path):
    image = tmp_path / "imgs" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((40, 60, 3), np.uint8))
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-m", "catviz.app", str(image.parent), "--screenshot", str(shot),
                           "--device", "cpu"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.stat().st_size > 0


@pytest.mark.parametrize("flag", [["--cat"], []], ids=["--cat", "positional, as if dropped"])
def test_a_checkpoint_refused_at_start_up_is_one_line_on_stderr(tmp_path, flag):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((40, 60, 3), np.uint8))
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a checkpoint")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run([sys.executable, "-m", "catviz.app", *flag, str(bad), str(image), "--screenshot",
                           str(tmp_path / "shot.png"), "--device", "cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    refused = [line for line in done.stderr.splitlines() if "bad.safetensors" in line]
    assert len(refused) == 1 and refused[0].startswith(f"ERROR catviz.qt_workers: {bad}: not a catviz checkpoint")
    assert "Traceback" not in done.stderr


def test_sigterm_closes_the_app_like_quit_and_keeps_its_settings(tmp_path):
    """A logout or `kill` is not a crash: the window closes, its geometry is saved, exit 0."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    process = subprocess.Popen([sys.executable, "-m", "catviz.app", "--device", "cpu"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    settings = tmp_path / "config" / "catviz" / "catviz.conf"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:  # written once the demo models are loaded
        if settings.exists() and "checkpoints" in settings.read_text():
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert "window\\geometry" in settings.read_text() or "geometry=" in settings.read_text()
    assert "Traceback" not in stderr


def test_a_dataset_with_only_its_val_split_opens(tmp_path):
    """Someone who downloaded only COCO's val2014 can still use the Dataset tab."""
    import shutil

    from tests.fixtures import write_coco_format

    root = write_coco_format(tmp_path / "data")
    shutil.rmtree(root / "images" / "train")
    (root / "annotations" / "train.json").unlink()
    paths, truth = app.dataset_images("coco-format", str(root), 4)
    assert [p.name for p in paths] == ["1.png", "2.png", "3.png", "4.png"] and "car" in truth[paths[0]]
