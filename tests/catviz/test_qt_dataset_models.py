"""Issue 25: any number of loaded models — either panel from the Models menu, every one compared in
the Dataset tab (a row each, per-class error bars), File ▸ Export report…, and bad input said."""

import json
import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from scipy.stats import binomtest

from catviz import inference
from catviz.qt_dataset_view import QtDatasetView
from catviz.study import build_study
from catviz.train_cli.metrics import multilabel_metrics

from .conftest import make_checkpoint, write_good_images
from .dataset_fixtures import small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


def wait_messages(qtbot, window, count):
    qtbot.waitUntil(lambda: len(window.state.messages) >= count, timeout=30000)


@pytest.fixture(scope="module")
def three(tmp_path_factory, small_checkpoints):  # noqa: F811
    """The tiny baseline, the tiny CAT and a second CAT (another seed), in load order."""
    third = make_checkpoint(tmp_path_factory.mktemp("third") / "cat_seed1.safetensors", "cat_tiny", seed=1,
                            input_size=32)
    return [small_checkpoints["baseline"], small_checkpoints["cat"], third]


def load_three(qtbot, window, three):
    window.controller.load_checkpoints(three)  # as `catviz B C1 C2`, a drop or File ▸ Open models…
    qtbot.waitUntil(lambda: len(window.state.loaded) == 3 and len(window.models_menu.slot_actions["cat"]) == 3,
                    timeout=30000)


def test_three_models_load_and_either_panel_shows_any_of_them(qtbot, window, three, tmp_path):
    load_three(qtbot, window, three)
    state, menu = window.state, window.models_menu
    assert [m.path for m in state.loaded] == three
    assert state.models["baseline"].path == three[0] and state.models["cat"].path == three[1]
    assert "cat_seed1.safetensors is loaded too" in " ".join(m.text for m in state.messages)
    assert [a.text() for a in menu.slot_actions["cat"]] == ["baseline_tiny (baseline)", "cat_tiny (cat)",
                                                             "cat_tiny (cat_seed1)"]
    assert [a.isChecked() for a in menu.slot_actions["cat"]] == [False, True, False]
    state.update_settings(cam_depth="tokens")  # maps from the forward pass: no backward passes to wait for
    state.add_images(write_good_images(tmp_path / "imgs", 1))
    qtbot.waitUntil(lambda: state.result("cat") is not None, timeout=30000)

    menu.slot_actions["cat"][2].trigger()  # Models ▸ Right panel ▸ the second CAT
    assert state.models["cat"] is state.loaded[2] and [a.isChecked() for a in menu.slot_actions["cat"]] == \
        [False, False, True]
    qtbot.waitUntil(lambda: state.result("cat") is not None, timeout=30000)
    expected = inference.run_model(state.loaded[2], state.current_entry.image).probabilities
    np.testing.assert_allclose(state.result("cat").probabilities, expected, rtol=1e-5)  # the panel shows that model
    menu.slot_actions["baseline"][1].trigger()  # a CAT in the left panel
    assert state.models["baseline"] is state.loaded[1]
    menu.slot_actions["baseline"][2].trigger()  # the model the right panel shows: the panels swap
    assert state.models["baseline"] is state.loaded[2] and state.models["cat"] is state.loaded[1]
    assert "Baseline: cat_tiny (cat_seed1), CAT: cat_tiny (cat) (3 loaded)" in window.device_label.text()
    qtbot.waitUntil(lambda: state.result("baseline") is not None and state.result("cat") is not None, timeout=30000)

    menu.slot_actions["cat"][0].trigger()  # the baseline in the right panel: every tab draws it
    assert state.models["cat"] is state.loaded[0]
    qtbot.waitUntil(lambda: state.result("cat") is not None, timeout=30000)
    window.cam_view.refresh()
    titles = {role: panel.title.text for role, panel in window.cam_view.panels.items()}
    assert "<b>CAT: baseline_tiny</b>" in titles["cat"]  # the panel names the model it shows
    assert "<b>Baseline: cat_tiny</b>" in titles["baseline"]
    for tab in range(window.tabs.count()):
        window.tabs.setCurrentIndex(tab)
        qtbot.wait(50)
    window.tabs.setCurrentIndex(0)

    menu.unload_actions[0].trigger()  # Models ▸ Unload ▸ the baseline
    qtbot.waitUntil(lambda: len(menu.slot_actions["cat"]) == 2, timeout=10000)
    assert [m.path for m in state.loaded] == three[1:]


def test_a_checkpoint_given_twice_or_of_another_label_set_is_said_not_loaded(qtbot, window, three, tmp_path):
    load_three(qtbot, window, three)
    state = window.state
    copy = tmp_path / "copy.safetensors"
    shutil.copy(three[1], copy)
    count = len(state.messages)
    window.controller.load_checkpoints([copy])  # the same content under another name
    wait_messages(qtbot, window, count + 1)
    text = state.messages[-1].text
    assert "copy.safetensors is the same checkpoint as" in text and str(three[1]) in text and "not loaded" in text
    assert len(state.loaded) == 3
    count = len(state.messages)
    window.controller.load_checkpoints([three[2], three[2]])  # one file twice in one go: loaded once
    wait_messages(qtbot, window, count + 1)
    assert "cat_seed1.safetensors is given twice" in state.messages[-1].text and len(state.loaded) == 3

    other = make_checkpoint(tmp_path / "other.safetensors", "cat_tiny", classes=["x", "y"], input_size=32)
    window.controller.resolve_label_conflict = lambda new, old: "cancel"
    count = len(state.messages)
    window.controller.load_checkpoints([other])
    wait_messages(qtbot, window, count + 1)
    text = state.messages[-1].text
    assert str(other) in text and str(three[0]) in text and "labels" in text and "not loaded" in text
    assert [m.path for m in state.loaded] == three
    count = len(state.messages)
    window.controller.load_checkpoints([three[0], other, three[2]])  # a set that mixes two label sets
    wait_messages(qtbot, window, count + 1)
    assert "have different labels" in state.messages[-1].text and "none of the 3 was loaded" in state.messages[-1].text


def _bootstrap_delta_map(scores, reference: int, other: int, resamples: int, seed: int) -> list[float]:
    """An independent paired bootstrap of ΔmAP over scores.npz: the documented draw, train_cli's metrics."""
    targets, probabilities = scores["targets"], scores["probabilities"].astype(np.float64)
    n = len(targets)
    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
    deltas = []
    for draw in draws:
        index = np.repeat(np.arange(n), draw)
        deltas.append(multilabel_metrics(probabilities[other][index], targets[index])["mAP"]
                      - multilabel_metrics(probabilities[reference][index], targets[index])["mAP"])
    return list(np.nanpercentile(deltas, [2.5, 97.5]))


def test_the_dataset_tab_compares_every_loaded_model_and_exports_the_report(qtbot, window, three, tmp_path,
                                                                             monkeypatch):
    load_three(qtbot, window, three)
    view = QtDatasetView(window.state, cache_dir=tmp_path / "cache")
    window.tabs.addTab(view, "Dataset")
    try:
        with qtbot.waitSignal(view.report_ready, timeout=120000):
            view.open("coco-format", write_boxes_dataset(tmp_path / "data", broken=(3,)))
        names = ["baseline_tiny (baseline)", "cat_tiny (cat)", "cat_tiny (cat_seed1)"]
        assert list(view.dataset.models_run) == names
        table = view.models_table
        assert table.rowCount() == 3 and [table.item(r, 0).text() for r in range(3)] == \
            [names[0] + "\n(reference)", *names[1:]]
        assert view.reference_box.currentText() == names[0]

        # the numbers are catviz's study code's over the pass's scores, the reference the first baseline
        found = build_study(view.data, dict(zip(names, names, strict=True)), names[0])
        scored = found.report.images
        truth, hit = view.data.targets[scored] == 1, {n: view.data.probabilities[n][scored] >= 0.5 for n in names}
        for r, name in enumerate(names[1:], start=1):
            comparison = next(c for c in found.comparisons if c["b"] == name)
            mAP, delta = table.item(r, 1).text().split("\n")
            assert mAP == f"{found.report.summary[name]['mAP']:.1f}"
            assert delta.startswith(f"{comparison['delta_mAP']:+.1f} [{comparison['ci95'][0]:+.1f}, ")
            fixed = int((truth & ~hit[names[0]] & hit[name]).sum())  # counted here, not by the study
            broken = int((truth & hit[names[0]] & ~hit[name]).sum())
            labels = table.item(r, 4).data(Qt.ItemDataRole.UserRole)
            assert (labels["fixed"], labels["broken"]) == (fixed, broken)
            assert table.item(r, 4).text().startswith(f"{fixed} / {broken}\np = ")
            assert labels["p"] == pytest.approx(binomtest(fixed, fixed + broken).pvalue if fixed + broken else 1.0)
            # per class: the error bars span exactly the study's intervals, one bar per class with an interval
            bars = view.class_bars[name].opts
            rows = [(k, row) for k, row in enumerate(found.per_class) if row["ci95"][name][0] == row["ci95"][name][0]]
            assert len(bars["x"]) == len(rows)
            for j, (k, row) in enumerate(rows):
                lo, hi = row["ci95"][name]
                assert bars["x"][j] == pytest.approx(row["delta"][name])
                assert bars["x"][j] - bars["left"][j] == pytest.approx(lo)
                assert bars["x"][j] + bars["right"][j] == pytest.approx(hi)
                assert round(bars["y"][j]) == k
        spanning = [row["label"] for row in found.per_class if any(row["spans_zero"].values())]
        ticks = dict(view.class_plot.getAxis("left")._tickLevels[0])
        assert spanning and all(ticks[k].endswith("≈0") == (row["label"] in spanning)
                                for k, row in enumerate(found.per_class))
        per_class = view.per_class
        header = [per_class.horizontalHeaderItem(c).text() for c in range(per_class.columnCount())]
        assert header[2:5] == [f"AP\n{n}" for n in names] and header[5:] == [
            f"Δ AP\n{names[1]}", f"95%\n{names[1]}", f"Δ AP\n{names[2]}", f"95%\n{names[2]}"]
        marked = {per_class.item(r, 0).text() for r in range(per_class.rowCount())
                  if per_class.item(r, 6).text().endswith("≈0")}
        assert marked == {row["label"] for row in found.per_class if row["spans_zero"][names[1]]}

        # File ▸ Export report…: the command's files; a folder that holds files only when confirmed
        folder = tmp_path / "report"
        window.export_report(str(folder))
        qtbot.waitUntil(lambda: view.message.text().startswith("Report written to"), timeout=120000)
        assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "scores.npz"]
        contract = json.loads((folder / "report.json").read_text())
        assert [m["name"] for m in contract["models"]] == names and contract["reference"] == names[0]
        assert [m["checkpoint"] for m in contract["models"]] == [str(p) for p in three]
        scores = np.load(folder / "scores.npz")
        for k, comparison in ((1, contract["comparisons"][0]), (2, contract["comparisons"][1])):
            assert comparison["b"] == names[k]
            assert comparison["ci95"] == pytest.approx(
                _bootstrap_delta_map(scores, 0, k, contract["bootstrap"]["resamples"], contract["bootstrap"]["seed"]))
            assert comparison["ci95"] == pytest.approx(next(c for c in found.comparisons if c["b"] == names[k])["ci95"])

        (folder / "report.json").write_text("mine")
        asked = []
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
        assert not view.export_report(folder)
        assert "already holds files" in asked[0] and (folder / "report.json").read_text() == "mine"
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
        assert view.export_report(folder)
        qtbot.waitUntil(lambda: view.message.text().startswith("Report written to"), timeout=120000)
        assert json.loads((folder / "report.json").read_text())["reference"] == names[0]

        view.reference_box.setCurrentIndex(2)  # another reference: compared again, no pass
        with qtbot.waitSignal(view.report_ready, timeout=60000):
            view.reference_box.activated.emit(2)
        assert table.item(2, 0).text() == names[2] + "\n(reference)" and view.study.reference == names[2]
    finally:
        view.shutdown()
