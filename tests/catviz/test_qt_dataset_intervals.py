"""The Dataset tab's intervals and its Write report… button (issue 25, point 4), as a user drives them."""

import json

import torch

from catviz.inference import load_model
from catviz.qt_dataset_view import QtDatasetView
from catviz.state import AppState

from .dataset_fixtures import small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


def test_per_class_intervals_are_shown_and_the_tab_writes_the_commands_report(qtbot, tmp_path, small_checkpoints):  # noqa: F811
    state = AppState()
    for role, path in small_checkpoints.items():
        state.set_model(role, load_model(path, torch.device("cpu")))
    view = QtDatasetView(state, cache_dir=tmp_path / "cache")
    qtbot.addWidget(view)
    try:
        assert not view.write_button.isEnabled()  # no pass yet
        with qtbot.waitSignal(view.report_ready, timeout=60000):
            view.open("coco-format", write_boxes_dataset(tmp_path / "data", broken=(3,)))
        assert view.write_button.isEnabled()
        table, report = view.per_class, view.report
        assert table.horizontalHeaderItem(5).text() == "Δ AP 95% interval"
        rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
        for row in report.per_class:
            cell = table.item(rows[row["label"]], 5)
            lo, hi = row["ci95"]
            if lo is None or lo != lo:  # a class without positives
                assert cell.text() == "–"
                continue
            assert lo <= row["delta"] <= hi or row["spans_zero"] is not None
            assert row["spans_zero"] == (lo <= 0 <= hi)
            assert cell.text().endswith("≈0") == row["spans_zero"]  # a class whose interval spans 0 is marked
            assert "1000 resamples, seed 0" in cell.toolTip()

        occupied = tmp_path / "occupied"
        occupied.mkdir()
        (occupied / "mine.txt").write_text("mine")
        assert not view.write_report(occupied) and "already holds files" in view.message.text()
        folder = tmp_path / "report"
        assert view.write_report(folder)
        qtbot.waitUntil(lambda: view.message.text().startswith("Report written to"), timeout=60000)
        assert {"report.json", "scores.npz", "report.html", "summary.json"} <= {p.name for p in folder.iterdir()}
        contract = json.loads((folder / "report.json").read_text())
        assert [m["reference"] for m in contract["models"]] == [True, False]
        assert {r["label"]: r["ci95"][contract["comparisons"][0]["b"]] for r in contract["per_class"]} == \
            {r["label"]: (list(r["ci95"]) if r["ci95"][0] == r["ci95"][0] else [None, None]) for r in report.per_class}
        assert contract["explanations"]["layer_share"]
    finally:
        view.shutdown()
