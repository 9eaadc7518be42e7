"""Tiny checkpoints and image files (good and bad) written by the tests."""

from __future__ import annotations

import gc
import logging

import numpy as np
import pytest
import torch

from catviz import models
from catviz.models.checkpoint import CheckpointMeta, save_checkpoint

CLASSES = ["cat", "dog", "car", "bus", "tree"]


def make_checkpoint(path, name: str, classes=CLASSES, seed: int = 0, input_size: int = 96):
    torch.manual_seed(seed)
    model = models.create_model(name, len(classes))
    save_checkpoint(path, model, CheckpointMeta(model=name, class_names=list(classes), input_size=input_size,
                                                mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), dataset="test"))
    return path


@pytest.fixture(scope="session", autouse=True)
def _collect_garbage_while_qt_is_up(qapp):
    """The app collects reference cycles on a GUI-thread timer (catviz.qt_gc), which only
    ticks while an event loop runs. Collect what is left once more before the QApplication
    goes: left to the collection at interpreter exit, the tests' Qt wrappers crashed
    Python there ("deallocating None", a refcount error in the bindings)."""
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def subscriber_errors():
    """Failures of the state's subscribers, which the state reports and logs instead of
    raising (catviz.events): a test fails if any is left here at its end, so a view's bug
    is not hidden by that; a test that expects one clears the list."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger("catviz.events")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    if records:
        pytest.fail("a subscriber of the state failed:\n" + "\n".join(
            logging.Formatter().format(record) for record in records), pytrace=False)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {
        "baseline": make_checkpoint(root / "baseline.safetensors", "baseline_tiny"),
        "cat": make_checkpoint(root / "cat.safetensors", "cat_tiny"),
    }


def write_good_images(folder, count: int = 3):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        path = folder / f"good{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (120 + 10 * i, 160, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def write_odd_images(folder):
    """Files that are images in unusual forms: each must be shown correctly."""
    import cv2
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
    files = {}
    cv2.imwrite(str(folder / "gray.png"), rgb[..., 0])
    files["gray.png"] = (60, 90)
    cv2.imwrite(str(folder / "deep16.png"), (rgb.astype(np.uint16) * 257))
    files["deep16.png"] = (60, 90)
    Image.fromarray(rgb).convert("RGBA").save(folder / "rgba.png")
    files["rgba.png"] = (60, 90)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    files["cmyk.jpg"] = (60, 90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    Image.fromarray(rgb).save(folder / "exif_rotated.jpg", exif=exif)
    files["exif_rotated.jpg"] = (90, 60)
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files["animated.gif"] = (60, 90)
    return files


def write_bad_files(folder):
    """Files that are not readable images: each must give a message, never a crash."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image at all")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    good = folder / "_whole.png"
    cv2.imwrite(str(good), np.zeros((50, 50, 3), np.uint8))
    data = good.read_bytes()
    good.unlink()
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    return sorted(folder.iterdir())


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window at 1280x800 with its own settings file and a CPU controller."""
    import pyqtgraph as pg
    from PySide6.QtCore import QSettings

    from catviz.qt_main_window import QtMainWindow
    from catviz.qt_workers import InferenceController
    from catviz.state import AppState

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    pg.setConfigOptions(imageAxisOrder="row-major")
    state = AppState()
    controller = InferenceController(state, "cpu")
    win = QtMainWindow(state, controller)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    yield win
    controller.shutdown()


@pytest.fixture
def app_state(qtbot):
    """A state and its inference controller on the CPU, no window; the controller's work ends with the test."""
    import pyqtgraph as pg

    from catviz.qt_workers import InferenceController
    from catviz.state import AppState

    pg.setConfigOptions(imageAxisOrder="row-major")
    state = AppState()
    controller = InferenceController(state, "cpu")
    yield state, controller
    controller.pool.clear()
    controller.wait()
