"""The views on real state filled by real workers and tiny models: the CAM display's
shared zero-centred scale and titles, the prediction table, bars and layer share, and
the attention controls read from the model's spec."""

import threading
import time

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QDialogButtonBox, QTextBrowser

from catviz import demo, inference, models
from catviz.methods import CAM
from catviz.models.attribution import Cancelled
from catviz.models.checkpoint import CheckpointMeta, save_checkpoint
from catviz.qt_attention_view import QtAttentionView
from catviz.qt_cam_view import QtCamView
from catviz.qt_main_window import MINIMUM_SIZE, QtMainWindow
from catviz.qt_predictions import ROW_MIN_PX, QtPredictions
from catviz.render import DIVERGING, Scale

from .conftest import CLASSES, write_good_images


def save_model(path, name: str, classes=CLASSES, seed: int = 0, **model_args):
    torch.manual_seed(seed)
    model = models.create_model(name, len(classes), **model_args)
    save_checkpoint(path, model, CheckpointMeta(model=name, class_names=list(classes), model_args=model_args,
                                                input_size=96, mean=(0.5,) * 3, std=(0.25,) * 3, dataset="test"))
    return path


def show(qtbot, widget, size=(900, 700)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    return widget


def fill(qtbot, state, controller, checkpoints, images, truth=None, depth="tokens"):
    """Both models loaded and the images' results in. These tests are about the maps the forward
    pass brings (token depth); the default, input pixels, is tested in test_qt_cam_depth.py."""
    state.update_settings(cam_depth=depth)
    for role, path in checkpoints.items():
        controller.load_checkpoint(path, role)
    qtbot.waitUntil(lambda: set(state.models) == set(checkpoints), timeout=60000)
    state.add_images(images, truth)
    qtbot.waitUntil(lambda: all(state.result(r) is not None for r in checkpoints), timeout=60000)


def test_cam_panels_share_one_zero_centred_scale_with_a_colour_bar(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtCamView(state))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    top = [view.panels["baseline"], view.panels["cat"]]
    assert state.settings.colormap == DIVERGING and state.settings.cam_method == CAM
    shown = [p.heat for p in top]
    scale = top[0].scale
    assert scale == top[1].scale and scale.low == -scale.high  # one scale, centred on zero
    assert scale.high == pytest.approx(max(float(np.abs(m).max()) for m in shown))
    assert view.top_bar.isVisible() and view.top_bar.levels() == pytest.approx((scale.low, scale.high))
    levels = list(view.level_panels.values())
    assert [p.scale for p in levels] == [levels[0].scale] * len(levels)
    assert levels[0].scale.high == pytest.approx(max(float(np.abs(p.heat).max()) for p in levels))
    # the maps are the results' signed logit contributions, not min-max scaled copies
    cat = state.result("cat")
    label = state.class_names.index(state.shown_label())
    np.testing.assert_array_equal(view.panels["cat"].heat, cat.combined_cam[label])
    assert view.panels["cat"].heat.min() < 0 < view.panels["cat"].heat.max()

    view.per_panel.setChecked(True)
    for panel in [*top, *levels]:
        assert panel.scale.high == pytest.approx(float(np.abs(panel.heat).max()))
    assert not view.top_bar.isVisible()  # one bar cannot describe several scales: titles do
    assert "±" in view.panels["cat"].title.text

    view.per_panel.setChecked(False)
    view.positive_only.setChecked(True)
    scale = view.panels["cat"].scale
    assert scale.low == 0 and scale.high == pytest.approx(max(float(p.heat.max()) for p in top))
    alpha = view.panels["cat"].heat_item.image[..., 3]
    assert (alpha == 0).any() and alpha.max() > 0  # negative evidence is not drawn


def test_titles_state_method_level_and_units(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtCamView(state))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    levels = list(state.spec("cat").level_names)
    assert [view.level.itemText(i) for i in range(view.level.count())] == ["combined", *levels]
    assert list(view.level_panels) == levels
    title = view.panels["cat"].title.text
    assert "CAM (complete)" in title and "logit contribution" in title and "combined" in title
    assert " logit " not in title.split("<br>")[0]  # combined: p is the sum's
    view.level.setCurrentText(levels[-1])
    assert levels[-1] in view.panels["cat"].title.text
    logits = state.result("cat").level_logits[levels[-1]]
    assert any(f"{levels[-1]} logit {v:+.2f}" in view.panels["cat"].title.text for v in logits)  # the shown level's own
    assert " logit " not in view.panels["baseline"].title.text.split("<br>")[0]  # one level: its logit is the whole
    assert "the offset" in view.panels["cat"].title.toolTip() or "offsets" in view.panels["cat"].title.toolTip()

    view.method.setCurrentText("EigenCAM")
    qtbot.waitUntil(lambda: view.panels["cat"].heat is not None, timeout=60000)
    title = view.panels["cat"].title.text
    layer = state.attribution_key("cat")[3]
    assert "EigenCAM" in title and layer in title and "same for every label" in title
    assert view.panels["cat"].scale == Scale(0.0, 1.0)  # unsigned: sequential 0-1
    assert "top row only" in view.bottom_caption.text
    assert not view.positive_only.isEnabled()
    assert not view.per_panel.isEnabled() and "unsigned" in view.per_panel.toolTip()  # no effect on 0-1 maps


def test_input_space_methods_disable_the_level_choice(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtCamView(state))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    view.method.setCurrentText("Occlusion")
    assert not view.level.isEnabled() and "input pixels" in view.level.toolTip()
    view.method.setCurrentText(CAM)
    assert view.level.isEnabled()


def test_how_are_these_computed_renders_markdown(qtbot, app_state):
    state, _ = app_state
    view = show(qtbot, QtCamView(state))
    view.show_derivation()
    browser = view.derivation.findChild(QTextBrowser)
    text = browser.toPlainText()
    assert len(text) > 200
    assert "**" not in text and "``" not in text  # rendered, not raw markup
    assert "Reading the display" in text and "one zero-centred scale" in text
    close = view.derivation.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Close)
    close.click()
    assert not view.derivation.isVisible()


def test_methods_are_listed_by_their_usual_names_and_say_which_colours_they_get(qtbot, app_state):
    state, _ = app_state
    view = show(qtbot, QtCamView(state))
    index = view.method.findData("GradCAMPlusPlus")
    assert view.method.itemText(index) == "GradCAM++"
    view.method.setCurrentIndex(index)
    assert state.settings.cam_method == "GradCAMPlusPlus"  # the key grad-cam and the settings use
    state.update_settings(colormap=DIVERGING)
    assert "unsigned (0-1)" in view.colormap.toolTip()  # unsigned maps never get the diverging one ...
    assert f"drawn with {view.colormap.currentText()}" in view.colormap.toolTip()  # ... the box shows theirs
    state.update_settings(cam_method=CAM)
    assert view.method.currentText() == CAM and "unsigned" not in view.colormap.toolTip()


def test_predictions_share_one_row_order_and_mark_ground_truth(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtPredictions(state), (360, 760))
    image = write_good_images(tmp_path / "imgs", 1)[0]
    fill(qtbot, state, controller, checkpoints, [image], {image: {"cat", "dog"}})
    table = view.table
    base, cat = table.rows("baseline"), table.rows("cat")
    assert [r[0] for r in base] == [r[0] for r in cat]  # same row order in both lists
    top = [max(float(b[1]), float(c[1])) for b, c in zip(base, cat, strict=True)]
    assert top == sorted(top, reverse=True)
    view.slider.setValue(1)  # everything predicted: the true labels are hits, the others FPs
    assert {r[0] for r in table.rows("cat") if r[2] == "hit"} == {"cat", "dog"}
    assert {r[0] for r in table.rows("cat") if r[2] == "FP"} == set(CLASSES) - {"cat", "dog"}
    view.slider.setValue(99)
    assert {r[0] for r in table.rows("baseline") if r[2] == "miss"} == {"cat", "dog"}


def test_label_search_mode_and_top_k(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtPredictions(state), (360, 760))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 2))
    first_top = state.shown_label()
    view.search.setText("bu")
    assert view.table.visible_labels() == ["bus"]
    qtbot.keyClick(view.search, "\r")
    assert state.settings.label == "bus" and state.shown_label() == "bus"
    state.select(1)  # top-prediction mode: a chosen label holds for its image only
    assert state.settings.label is None
    view.mode.setCurrentIndex(view.mode.findData("fixed"))
    state.update_settings(label="tree")
    state.select(0)
    assert state.shown_label() == "tree" and state.settings.label_mode == "fixed"
    assert first_top in state.class_names

    view.top_k.setValue(3)
    assert len(view.bars.labels) == 3 and "tree" in view.bars.labels  # the shown label is always there
    series = view.bars.series
    assert set(series) == {*(f"CAT {lvl}" for lvl in state.spec("cat").level_names), "CAT sum", "baseline"}
    cat = state.result("cat")
    index = [state.class_names.index(n) for n in view.bars.labels]
    np.testing.assert_allclose(series["CAT sum"], sum(cat.level_logits.values())[index], rtol=1e-6)
    tip = view.bars.tooltip_at(view.bars.labels.index("tree"))
    assert tip.startswith("tree") and all(f"{name}: logit" in tip for name in series)


def test_layer_share_splits_each_level_logit_by_source(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    state.update_settings(cam_depth="tokens")  # the layer share; below the tokens a path share (the next test)
    view = show(qtbot, QtPredictions(state), (360, 760))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    label = state.class_names.index(state.shown_label())
    rows = dict(view.share.rows)
    for role, title in (("cat", "CAT"), ("baseline", "Baseline")):
        result = state.result(role)
        assert set(result.layer_share) == set(result.level_logits)
        for level, logits in result.level_logits.items():
            parts = rows[f"{title} {level}"]
            assert set(parts) == set(result.layer_share[level])  # sources as the data names them
            assert sum(parts.values()) == pytest.approx(float(logits[label]), rel=1e-4, abs=1e-4)
    assert len(rows["CAT P3"]) > len(rows["CAT P5"])  # P3's logit gathers more layers than P5's
    for row, (name, parts) in enumerate(view.share.rows):
        tip = view.share.tooltip_at(row)
        assert tip.startswith(name) and all(f"{source}: " in tip for source in parts)
    # one colour per layer in both charts: P4 is P4's colour as a CAT level and as a source
    shared = [lvl for lvl in state.result("cat").level_logits if lvl in view.share.colors]
    assert shared and all(view.bars.colors[f"CAT {lvl}"] == view.share.colors[lvl] for lvl in shared)
    assert len(set(view.share.colors.values())) == len(view.share.colors)
    before = dict(view.share.colors)
    state.set_model("baseline", None)  # the baseline's sources leave: the others keep their colours
    qtbot.waitUntil(lambda: view.share.rows and not any(name.startswith("Baseline") for name, _ in view.share.rows),
                    timeout=5000)
    assert view.share.colors and all(before[source] == color for source, color in view.share.colors.items())


def test_the_share_chart_follows_the_depth_as_a_path_share(qtbot, app_state, checkpoints, tmp_path):
    """With the complete CAM at the input pixels, the chart's rows are each level's routes (and
    its offset) from the shown maps' path share; together they sum to the level logit."""
    state, controller = app_state
    view = show(qtbot, QtPredictions(state), (360, 760))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    state.update_settings(cam_method="CAM", cam_depth="input")
    qtbot.waitUntil(lambda: all(state.path_share(r) is not None for r in state.models), timeout=60000)
    assert all(state.attribution(r) is not None for r in state.models)  # the maps come first
    qtbot.waitUntil(lambda: any("←" in name for name, _ in view.share.rows), timeout=5000)
    label = state.class_names.index(state.shown_label())
    rows = dict(view.share.rows)
    for role, title in (("cat", "CAT"), ("baseline", "Baseline")):
        for level, logits in state.result(role).level_logits.items():
            mine = [parts for name, parts in rows.items() if name.startswith(f"{title} {level} ")]
            total = sum(v for parts in mine for v in parts.values())
            assert total == pytest.approx(float(logits[label]), rel=1e-4, abs=1e-4)
    assert set(rows["CAT P3 ← P3"]) == {"input", "biases"} and "Path share" in view.share_title.text()
    state.update_settings(cam_depth="tokens")  # back at the tokens: the layer share again
    qtbot.waitUntil(lambda: "CAT P3" in dict(view.share.rows), timeout=5000)


def test_the_window_never_gets_smaller_than_its_panels_need(qtbot, app_state):
    state, controller = app_state
    window = QtMainWindow(state, controller)
    qtbot.addWidget(window)
    window.resize(800, 500)  # maps of a few pixels, buttons cut: refused
    window.show()
    assert (window.width(), window.height()) >= MINIMUM_SIZE and window.width() >= MINIMUM_SIZE[0]


def test_attention_offers_the_heads_and_layers_the_model_has(qtbot, app_state, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtAttentionView(state))
    four = {"baseline": save_model(tmp_path / "b.safetensors", "baseline_tiny"),
            "cat": save_model(tmp_path / "c.safetensors", "cat_tiny", num_heads=4, lrd_layers=1)}
    fill(qtbot, state, controller, four, write_good_images(tmp_path / "imgs", 1))
    heads = [view.head.itemText(i) for i in range(view.head.count())]
    layers = [view.layer.itemText(i) for i in range(view.layer.count())]
    assert heads == ["mean", "0", "1", "2", "3"]
    assert layers == ["rollout", "0"]
    view.head.setCurrentText("3")
    assert all(m is not None for m in view.current_maps().values())
    view.layer.setCurrentText("0")
    view.click_cell(0, 0)
    first = view.current_maps()["lrd"].copy()
    view.click_cell(1, 2)
    assert not np.array_equal(first, view.current_maps()["lrd"])
    assert "query at row 1, column 2" in view.panels["lrd"].title.text  # not a bare "(1, 2)"
    assert "PMA" in view.head.toolTip() and "rollout averages" in view.head.toolTip()


@pytest.mark.slow
def test_integrated_gradients_fills_both_panels_on_a_shared_signed_scale(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtCamView(state))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    view.method.setCurrentText("Integrated Gradients")
    qtbot.waitUntil(lambda: all(p.heat is not None for p in view.panels.values()), timeout=240000)
    base, cat = view.panels["baseline"], view.panels["cat"]
    assert base.scale == cat.scale and cat.scale.signed
    # per-pixel attributions: the scale ends at the larger 99th percentile of |value| (said in the tooltip)
    assert cat.scale.high == pytest.approx(max(float(np.percentile(np.abs(p.heat), 99)) for p in (base, cat)))
    assert "99th percentile" in cat.title.toolTip()
    assert "Integrated Gradients" in cat.title.text and "input pixels" in cat.title.text
    assert not view.progress_label.isVisible()


def test_a_long_attribution_shows_progress_in_its_panel_and_can_be_cancelled(qtbot, app_state, checkpoints, tmp_path,
                                                                             monkeypatch):
    """The attribution is a stub that reports 25% and then runs until it is told to stop:
    the map can only be missing because Cancel stopped it."""
    state, controller = app_state
    view = show(qtbot, QtCamView(state))
    asked_to_stop = threading.Event()

    def until_stopped(loaded, image, label, level, method, progress=None, should_stop=None, **request):
        progress(0.25)
        deadline = time.monotonic() + 20
        while not should_stop():
            if time.monotonic() > deadline:  # never stopped: a map arrives and the test fails below
                return np.zeros((8, 8), np.float32)
            time.sleep(0.005)
        asked_to_stop.set()
        raise Cancelled

    monkeypatch.setattr(inference, "run_attribution", until_stopped)
    fill(qtbot, state, controller, {"cat": checkpoints["cat"]}, write_good_images(tmp_path / "imgs", 1))
    view.method.setCurrentText("Occlusion")
    qtbot.waitUntil(lambda: view.cancel.isVisible() and "25%" in view.progress_label.text(), timeout=10000)
    assert view.progress_label.text() == "Computing Occlusion: CAT 25%"
    assert "computing … 25%" in view.panels["cat"].title.text
    qtbot.mouseClick(view.cancel, pg.QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not view.cancel.isVisible(), timeout=30000)
    assert asked_to_stop.is_set()  # the work saw the request
    assert view.panels["cat"].heat is None and view.run_again.isVisible()  # stopped, and it can be run again
    assert "cancelled" in view.progress_label.text()
    status = state.attribution_status("cat")
    assert status is not None and "cancelled" in status and status in view.panels["cat"].title.text  # says why


def test_deletion_auc_of_the_displayed_maps_on_demand(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtCamView(state))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    assert view.deletion.isEnabled()
    qtbot.mouseClick(view.deletion, pg.QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(state.deletion_aucs) == 2, timeout=60000)
    for role, panel in view.panels.items():
        value = state.deletion_aucs[view.shown[role]]
        assert 0.0 <= value <= 1.0
        assert f"deletion AUC {value:.3f}" in panel.title.text
    cat_key = view.shown["cat"]
    view.level.setCurrentText(state.spec("cat").level_names[0])  # another map: its own AUC, not the old one
    assert view.shown["cat"] != cat_key and "deletion AUC 0" not in view.panels["cat"].title.text


COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
        "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
        "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
        "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
        "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
        "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
        "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
        "teddy bear", "hair drier", "toothbrush"]


# 30 of 80 labels need at least 30 x ROW_MIN_PX = 420 px: more than the short panel (about 200 px)
# has, so they must scroll. 10 labels need 140 px and the axis, about what it has: whether they
# scroll depends on the fonts, but either way the chart must fill the panel or scroll.
@pytest.mark.parametrize(("classes", "must_scroll"), [(COCO, True), ([str(i) for i in range(10)], False)],
                         ids=["80 labels", "10 labels"])
def test_the_window_at_1280x800_shows_every_label_and_panel_whole(qtbot, window, tmp_path, classes, must_scroll):
    state, controller = window.state, window.controller  # the conftest window: 1280x800, its own settings
    pair = {role: save_model(tmp_path / f"{role}.safetensors", f"{role}_tiny", classes) for role in ("baseline", "cat")}
    photo = next(p for p in demo.sample_images()[0] if p.suffix == ".jpg")  # a wide photograph
    fill(qtbot, state, controller, pair, [photo], {photo: {classes[0], classes[1]}})
    state.update_settings(threshold=0.99)  # both true labels missed: the "miss" marks show
    table = window.predictions.table
    metrics = QFontMetrics(table.font())
    longest = max(classes, key=metrics.horizontalAdvance)
    bold = table.font()
    bold.setBold(True)

    def table_fits():
        assert {r[0] for r in table.rows("cat") if r[2] == "miss"} == {classes[0], classes[1]}
        assert table.columnWidth(0) >= metrics.horizontalAdvance(longest)  # names whole
        for role, (_, mark) in table.columns.items():
            assert table.columnWidth(mark) >= QFontMetrics(bold).horizontalAdvance("miss"), role
        assert table.header().length() <= table.viewport().width()  # the columns fit side by side ...
        assert table.horizontalScrollBar().maximum() == 0  # ... so no sideways scrolling

    qtbot.waitUntil(table_fits, timeout=5000)
    assert window.predictions.bars.ticks == window.predictions.bars.labels  # names whole on the axis
    axis = window.predictions.bars.getPlotItem().getAxis("left")
    assert axis.width() >= QFontMetrics(axis.font()).horizontalAdvance(max(window.predictions.bars.labels, key=len))
    window.messages.show()  # the panel gets short; more labels than fit: rows keep their height, it scrolls
    window.predictions.top_k.setValue(min(30, len(classes)))
    bars, scroll = window.predictions.bars, window.predictions.bars_scroll
    share = window.predictions.share  # the layer share below keeps its rows apart the same way

    def rows_apart():
        assert len(bars.labels) == min(30, len(classes))
        assert bars.height() >= bars.minimumHeight()  # the scroll area has laid the chart out anew
        rows = bars.getPlotItem().getViewBox().sceneBoundingRect().height() / len(bars.labels)
        assert rows >= ROW_MIN_PX - 4  # the 4 px: plot padding
        room, bar = scroll.viewport().height(), scroll.verticalScrollBar()
        if bars.minimumHeight() > room:  # the rows need more than the panel has: it scrolls through all of them
            assert bars.height() == bars.minimumHeight() and bar.maximum() == bars.height() - room
        else:  # they fit: the chart fills the panel, every label at once, nothing to scroll
            assert bars.height() == room and bar.maximum() == 0
        assert bar.maximum() > 0 or not must_scroll
        assert share.getPlotItem().getViewBox().sceneBoundingRect().height() / len(share.rows) >= ROW_MIN_PX - 4

    qtbot.waitUntil(rows_apart, timeout=5000)
    window.messages.hide()

    cam = window.cam_view
    qtbot.waitUntil(lambda: all(p.heat is not None for p in cam.panels.values()), timeout=60000)

    def same_widths():  # whatever their titles' length
        widths = {role: panel.view.sceneBoundingRect().width() for role, panel in cam.panels.items()}
        assert widths["cat"] > 100 and widths["baseline"] == pytest.approx(widths["cat"], abs=1), widths

    qtbot.waitUntil(same_widths, timeout=5000)

    window.tabs.setCurrentIndex(1)
    view = window.attention_view
    qtbot.waitUntil(lambda: all(p.heat is not None for p in view.panels.values()), timeout=60000)

    def panels_inside():  # every attention panel inside the window (PMA → P3 too)
        width = view.canvas.viewport().width()
        assert width > 100
        for key, panel in view.panels.items():
            rect = view.canvas.mapFromScene(panel.view.sceneBoundingRect()).boundingRect()
            assert rect.width() > 10 and rect.left() >= 0 and rect.right() <= width, key
            title = view.canvas.mapFromScene(panel.title.sceneBoundingRect()).boundingRect()
            assert title.right() <= width + 1, key

    qtbot.waitUntil(panels_inside, timeout=5000)


def test_attention_of_ablations_without_lrd_or_clf(qtbot, app_state, tmp_path):
    state, controller = app_state
    view = show(qtbot, QtAttentionView(state))
    images = write_good_images(tmp_path / "imgs", 1)
    fill(qtbot, state, controller, {"cat": save_model(tmp_path / "n.safetensors", "cat_no_lrd_tiny")}, images)
    assert list(view.panels) == [k.split(".")[1] for k in state.spec("cat").attention_keys]  # PMA panels only
    assert not view.layer.isEnabled() and "no LRD" in view.layer.toolTip()
    assert all(m is not None for m in view.current_maps().values())
    controller.load_checkpoint(save_model(tmp_path / "f.safetensors", "fpn_tiny"), "cat")
    qtbot.waitUntil(lambda: state.models["cat"].meta.model == "fpn_tiny", timeout=60000)
    assert view.panels == {} and not view.head.isEnabled()
    assert "no attention" in view.help.text()


def test_an_unreadable_image_says_so_in_every_panel(qtbot, app_state, checkpoints, tmp_path):
    state, controller = app_state
    cams, predictions = show(qtbot, QtCamView(state)), show(qtbot, QtPredictions(state), (360, 760))
    fill(qtbot, state, controller, checkpoints, write_good_images(tmp_path / "imgs", 1))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    state.add_images([broken])
    state.select(1)
    qtbot.waitUntil(lambda: state.current_entry.error is not None, timeout=60000)
    for panel in cams.panels.values():
        assert "cannot be shown" in panel.title.text and panel.heat is None
    assert "broken.png" in cams.hint.text()
    assert predictions.table.topLevelItemCount() == 0 and predictions.bars.labels == []  # nothing stale


def test_a_path_share_no_longer_shown_is_stopped_and_a_failed_one_not_asked_again(qtbot, app_state, checkpoints,
                                                                                  tmp_path, monkeypatch):
    """The path share comes after its map and runs until told to stop (a stub): choosing
    another label stops it, so the next label's map is not queued behind it; a path share
    that fails is reported once, not asked for again until the user changes what is shown."""
    state, controller = app_state
    asked, stopped = [], threading.Event()

    def until_stopped(loaded, image, label, depth, should_stop=None):
        asked.append(label)
        deadline = time.monotonic() + 20
        while not should_stop():
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.005)
        stopped.set()
        raise Cancelled

    monkeypatch.setattr(inference, "run_path_share", until_stopped)
    state.update_settings(cam_method="CAM", label_mode="fixed", label=None)
    fill(qtbot, state, controller, {"cat": checkpoints["cat"]}, write_good_images(tmp_path / "imgs", 1), depth="input")
    first, second = state.class_names[:2]
    state.update_settings(label=first)
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=30000)  # the map of `first` is in, its path share running
    state.update_settings(label=second)
    qtbot.waitUntil(lambda: state.attribution("cat") is not None, timeout=30000)  # the next map is not held back
    assert stopped.is_set()

    def fails(loaded, image, label, depth, should_stop=None):
        asked.append(label)
        raise ValueError("no room")

    monkeypatch.setattr(inference, "run_path_share", fails)
    state.update_settings(label=first)  # its map is cached: only the path share is asked for
    qtbot.waitUntil(lambda: any("no room" in m.text for m in state.messages), timeout=30000)
    count = len(asked)
    for _ in range(2):  # what every other model's result or map does: not a new request by the user
        controller._request_attributions()
    qtbot.wait(100)
    assert len(asked) == count and sum("no room" in m.text for m in state.messages) == 1
    state.update_settings(label=second)
    qtbot.waitUntil(lambda: len(asked) == count + 1, timeout=30000)
    state.update_settings(label=first)  # chosen again: asked again, as a stopped map is
    qtbot.waitUntil(lambda: len(asked) == count + 2, timeout=30000)
