"""Issue 27, item 17: the window shows before torch loads; torch and timm load in a worker."""

import json
import os
import subprocess
import sys

from .conftest import write_good_images

#: Modules of the model side: none may load with the window's modules.
MODEL_SIDE = ("torch", "timm", "torchvision", "catviz.models", "catviz.inference")


def test_the_window_modules_import_without_torch():
    code = ("import sys; import catviz.app, catviz.qt_main_window, catviz.qt_workers; "
            f"print([m for m in {MODEL_SIDE!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


#: Records which thread imports torch first, then runs the app.
WATCHED_APP = r"""
import json, os, sys, threading

class Watch:
    thread = None

    def find_spec(self, name, path=None, target=None):
        if name == "torch" and Watch.thread is None:
            Watch.thread = threading.current_thread().name
        return None

sys.meta_path.insert(0, Watch())
from catviz import app
code = app.main(sys.argv[1:])
print(json.dumps({"code": code, "torch imported on": Watch.thread}), flush=True)
os._exit(0)  # as the app itself ends (catviz.app._exit_now): no interpreter teardown
"""


def test_torch_loads_in_a_worker_while_the_window_is_up(tmp_path, checkpoints):
    """The GUI thread never imports torch: the first import of it happens on a worker thread,
    and the app still shows both models' results (its screenshot waits for them)."""
    image = write_good_images(tmp_path / "imgs", 1)[0]
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, "-c", WATCHED_APP, str(image), "--baseline", str(checkpoints["baseline"]),
                           "--cat", str(checkpoints["cat"]), "--size", "800x600", "--screenshot", str(shot)],
                          env=env, capture_output=True, text=True, timeout=180)
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0, done.stderr
    assert outcome["torch imported on"] not in (None, "MainThread"), outcome
    import cv2

    assert cv2.imread(str(shot)).shape[:2] == (600, 800)  # the window at its size, 800x600 honoured


def test_held_workers_start_nothing_until_released(qtbot):
    """The app holds its workers until the window has painted (catviz.app._release_after_first_paint)."""
    import time

    from PySide6.QtWidgets import QApplication

    from catviz.qt_tasks import Workers

    workers = Workers(1)
    workers.hold()
    ran = []
    for name, priority in (("low", 0), ("high", 5)):
        workers.submit(lambda task, name=name: ran.append(name), lambda _: None, lambda _: None, priority=priority)
    time.sleep(0.2)
    QApplication.processEvents()
    assert ran == [] and workers.pending == 2  # queued and counted, not started
    workers.release()
    qtbot.waitUntil(lambda: workers.pending == 0, timeout=5000)
    assert ran == ["high", "low"]
    workers.shutdown()
