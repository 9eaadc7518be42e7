"""The Runs tab follows a real training process: curves and snapshot epochs appear while it
trains, it says when the run finished, and the slider puts an epoch's model into its slot."""

import subprocess
import sys
import time

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
    assert f"{tmp_path / 'nothing'}: holds no training run" in window.runs_view.status.text()
