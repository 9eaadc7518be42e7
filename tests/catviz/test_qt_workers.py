"""Python's cycle collector never runs on a worker thread: there it would destroy Qt objects
off the GUI thread, which deadlocked the test suite once (a worker's collection and the GUI
thread each waiting for the other's lock)."""

import gc
import threading

import cv2
import numpy as np

from catviz.qt_workers import InferenceController
from catviz.state import AppState


class _Cycle:
    def __init__(self, finalized_in: list):
        self.me, self.finalized_in = self, finalized_in

    def __del__(self):
        self.finalized_in.append(threading.current_thread())


def test_garbage_made_on_a_worker_thread_is_collected_on_the_gui_thread(qtbot):
    controller = InferenceController(AppState(), "cpu")
    finalized_in: list = []

    def worker():  # cycles, unreachable at once: only the collector frees them
        for _ in range(3 * gc.get_threshold()[0]):  # well past its allocation threshold
            _Cycle(finalized_in)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert finalized_in == []  # the worker's allocations did not start a collection
    qtbot.waitUntil(lambda: bool(finalized_in), timeout=5000)  # the GUI thread's timer did
    assert set(finalized_in) == {threading.main_thread()}
    controller.wait()


def test_nothing_starts_after_shutdown(qtbot, tmp_path):
    state = AppState()
    controller = InferenceController(state, "cpu")
    controller.shutdown()
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((40, 60, 3), np.uint8))
    state.add_images([image])  # would queue decoding on a live controller
    assert controller.pending == 0 and controller.pool.activeThreadCount() == 0
