"""The Runs tab follows a real training process: curves and snapshot epochs appear while it
trains, it says when the run finished, and the slider puts an epoch's model into its slot. Its
run folders are read on a worker, never on the GUI thread; seed groups are drawn as a mean and a
band; the chosen images' maps across epochs are exported as one figure."""

import io
import os
import subprocess
import sys
import threading
import time

from catviz import runs
from tests.catviz.runs_fixtures import record, seed_config, write_header, write_run, write_snapshot
from tests.fixtures import write_coco_format

TRAIN = ["--dataset", "coco-format", "--model", "cat_tiny", "--no-pretrained", "--img-size", "64",
         "--batch-size", "4", "--workers", "0", "--optimizer", "adamw", "--lr", "0.003", "--threads", "1"]


def _logged(run) -> int:
    try:
        return sum(1 for line in (run / "log.jsonl").read_text().splitlines() if line.endswith("}"))
    except OSError:
        return 0


def _points(plot) -> int:
    items = plot.listDataItems()
    return len(items[0].getData()[0]) if items else 0


def test_the_runs_tab_follows_a_training_process_and_loads_a_snapshot(qtbot, window, tmp_path):
    data = write_coco_format(tmp_path / "data", images_per_split=13)
    run = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "catviz.train_cli.train", *TRAIN, "--data-root", str(data),
                                "--epochs", "3", "--snapshot-every", "1", "--out", str(run)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qtbot.waitUntil(lambda: (run / "config.yaml").is_file(), timeout=60_000)
        window.open_runs([run])  # as File ▸ Open run… does
        view = window.runs_view
        qtbot.waitUntil(lambda: len(view.runs) == 1, timeout=10_000)  # read on the view's worker
        assert window.tabs.currentWidget() is view and view.runs[0].live and "training" in view.runs[0].status
        loss = view.curves.plots["train loss"]
        # each new epoch reaches the curves and the slider within seconds of its log line
        for epoch in (1, 2):
            qtbot.waitUntil(lambda epoch=epoch: _logged(run) >= epoch, timeout=120_000)
            logged_at = time.monotonic()
            qtbot.waitUntil(lambda epoch=epoch: _points(loss) >= epoch
                            and len(view.slider_epochs()) >= epoch, timeout=10_000)
            assert time.monotonic() - logged_at < 5
        assert trainer.wait(120) == 0, trainer.stderr.read().decode()
        qtbot.waitUntil(lambda: view.runs[0].status.startswith("finished"), timeout=10_000)
    finally:
        trainer.kill()
        trainer.wait()
    assert view.slider_epochs() == [1, 2, 3] and "finished (3 epochs)" in view.status.text()
    assert list(view.curves.plots["val mAP"].listDataItems()[0].getData()[0]) == [1, 2, 3]
    assert sorted(i.name() for i in view.curves.plots["mAP of each level"].listDataItems()) == [
        "run P3", "run P4", "run P5"]
    # the slider puts epoch 1's snapshot into the CAT slot, through the app's model loading
    view.slider.setValue(0)
    assert view.epoch_label.text().startswith("epoch 1 of 3")
    snapshot = run / "snapshots" / "epoch-001.safetensors"
    qtbot.waitUntil(lambda: "cat" in window.state.models and window.state.models["cat"].path == snapshot,
                    timeout=60_000)
    assert window.state.models["cat"].meta.epoch == 1


def test_a_folder_without_a_run_is_named_in_the_tab(qtbot, window, tmp_path):
    (tmp_path / "nothing").mkdir()
    window.open_runs([tmp_path / "nothing"])
    qtbot.waitUntil(lambda: f"{tmp_path / 'nothing'}: holds no training run" in window.runs_view.status.text(),
                    timeout=10_000)


def test_opening_and_polling_read_the_run_folder_off_the_gui_thread(qtbot, window, tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", [record(1, 1.0, 40)], config=seed_config(0))  # 1 of 3 epochs: followed
    write_header(run / "snapshots" / "epoch-001.safetensors", {"model": "cat_tiny", "class_names": ["a"]})
    touched = []  # (thread, path) of every stat, open and listing of the run folder

    def spy(function):
        def call(path, *args, **kwargs):
            if str(run) in os.fsdecode(path if isinstance(path, str | bytes | os.PathLike) else ""):
                touched.append((threading.current_thread(), str(path)))
            return function(path, *args, **kwargs)
        return call

    for module, name in ((os, "stat"), (io, "open"), (os, "scandir"), (os, "listdir"), (os, "lstat")):
        monkeypatch.setattr(module, name, spy(getattr(module, name)))
    view = window.runs_view
    window.open_runs([run])
    qtbot.waitUntil(lambda: len(view.runs) == 1, timeout=10_000)
    opened_by = {thread for thread, _ in touched}
    assert opened_by and threading.main_thread() not in opened_by
    touched.clear()
    with open(run / "log.jsonl", "a") as log:
        log.write('{"epoch": 2, "train_loss": 0.5, "mAP": 50}\n')
    view.poll()
    qtbot.waitUntil(lambda: view.runs[0].epochs == [1, 2], timeout=10_000)
    assert any(path.endswith("log.jsonl") for _, path in touched)  # the spy saw the poll's reads
    assert threading.main_thread() not in {thread for thread, _ in touched}, [p for t, p in touched
                                                                               if t is threading.main_thread()]


def test_a_slow_read_neither_blocks_the_gui_nor_queues_up(qtbot, window, tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", [record(1, 1.0, 40)], config=seed_config(0))
    view = window.runs_view
    view.timer.stop()
    window.open_runs([run])
    qtbot.waitUntil(lambda: len(view.runs) == 1, timeout=10_000)
    view.timer.stop()
    release = threading.Event()
    slow = runs.refreshed

    def stuck(run_):
        release.wait(10)  # a disk that does not answer
        return slow(run_)

    monkeypatch.setattr(runs, "refreshed", stuck)
    started = time.monotonic()
    view.poll()
    view.poll()  # the first read is still under way: not queued again
    assert time.monotonic() - started < 0.5 and view.reader.pending == 1
    release.set()
    qtbot.waitUntil(lambda: not view.reading, timeout=10_000)


def test_the_band_checkbox_groups_seeds_and_names_the_runs_left_alone(qtbot, window, tmp_path):
    folders = [write_run(tmp_path / f"s{seed}", [record(1, 1.0, 40 + seed), record(2, 0.8, 50 + seed)],
                         config=seed_config(seed)) for seed in (0, 1)]
    folders.append(write_run(tmp_path / "old", [record(1, 1.0, 30)], config={"model": "cat_tiny", "epochs": 1}))
    view = window.runs_view
    window.open_runs(folders)
    qtbot.waitUntil(lambda: len(view.runs) == 3, timeout=10_000)
    assert not view.band_kind.isEnabled()
    view.band_box.setChecked(True)
    assert view.band() == "minmax" and view.band_kind.isEnabled()
    names = sorted(i.name() for i in view.curves.plots["val mAP"].listDataItems() if i.name())
    assert names == ["cat_tiny · paper (2 seeds, min-max)", "old"]
    tip = view.curves.toolTip()
    assert "cat_tiny · paper: mean and min-max band of 2 seeds (s0 seed 0, s1 seed 1), over epochs 1-2" in tip
    assert "old: drawn on its own, config.yaml: no seed" in tip and "old: drawn on its own" in view.status.text()
    view.band_kind.setCurrentIndex(view.band_kind.findData("std"))
    assert "cat_tiny · paper (2 seeds, ±1 std)" in [i.name() for i in view.curves.plots["val mAP"].listDataItems()]
    view.band_box.setChecked(False)
    assert sorted(i.name() for i in view.curves.plots["val mAP"].listDataItems()) == ["old", "s0", "s1"]


def test_maps_across_epochs_are_exported_from_the_tab_and_never_replace_a_file_unasked(qtbot, window, tmp_path):
    from tests.catviz.conftest import write_good_images

    run = write_run(tmp_path / "run", [record(e, 1.0 / e, 10.0 * e) for e in (1, 2)], config=seed_config(0))
    for epoch in (1, 2):
        write_snapshot(run, epoch, seed=epoch, score=10.0 * epoch)
    window.add_paths(write_good_images(tmp_path / "images", 1))
    window.state.update_settings(cam_depth="tokens")  # the cheapest depth: no backward pass
    view = window.runs_view
    window.open_runs([run])
    qtbot.waitUntil(lambda: view.export_button.isEnabled(), timeout=10_000)
    out = tmp_path / "maps.png"
    with qtbot.waitSignal(view.maps_exported, timeout=120_000):
        assert view.export_maps_across_epochs(str(out))
        assert view.export_cancel.isVisible() and not view.export_button.isEnabled()
    assert out.is_file() and not view.export_progress.isVisible()
    assert "maps across epochs written to" in window.state.messages[-1].text
    assert "2 epochs × 1 images" in window.state.messages[-1].text
    before = out.read_bytes()
    assert not view.export_maps_across_epochs(str(out))  # not asked: refused
    assert "exists; not replaced" in window.state.messages[-1].text and out.read_bytes() == before
    view.ask_path = lambda title, name: str(out)  # the save dialog asked, and the user said replace
    os.utime(out, (0, 0))
    with qtbot.waitSignal(view.maps_exported, timeout=120_000):
        assert view.export_maps_across_epochs()
    assert out.stat().st_mtime > 0
    # a label the run's snapshots lack is refused, the snapshot named, before any work
    view._label_of = lambda entry: ("zebra", "shown in the app")
    assert not view.export_maps_across_epochs(str(tmp_path / "other.png"))
    assert f"{run / 'snapshots' / 'epoch-001.safetensors'}: its labels (5 labels: cat, dog, car, bus ...) have " \
           "no 'zebra'" in window.state.messages[-1].text
