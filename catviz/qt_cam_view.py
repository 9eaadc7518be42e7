"""Fig. 3, live: the shown label's map for the baseline and CAT, and CAT per level.

Complete CAMs are signed logit contributions, so they are drawn on a diverging colour
map centred on zero with a colour bar in logit units, and every panel of a row shares
one scale (baseline and CAT compare; CAT's levels compare). Options: positive evidence
only, and a scale per panel. Titles say the method, the level or layer and the units.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QSlider,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .evidence import DifferenceMap, difference_map, faint_share, faint_text, signed, totals_text
from .map_memo import per_map
from .methods import (
    CAM,
    DEPTH_TITLES,
    DISPLAY_MARKDOWN,
    LOGIT_UNITS,
    METHODS,
    DeletionScore,
    MapMethod,
    depth_title,
    display_percentile,
    method_info,
)
from .qt_events import unsubscribe_on_close
from .qt_layouts import QtFlowLayout, control_group, scrolling
from .qt_overlay import ColorBar, OverlayPanel, PanelTitle, display_image, fit_canvas_height
from .render import (
    COLORMAPS,
    DIVERGING,
    FAINT_SHARE,
    SMALL_VALUE_FLOOR,
    Scale,
    cam_map,
    colormap_for,
    drawn_strength,
    own_share,
    symmetric_scale,
)
from .results import at_or_above, probability_text
from .roles import ROLE_TITLES
from .state import ATTRIBUTION, DELETION_AUC, AppState, Event

COMBINED = "combined"
#: The maps' canvas scrolls in a window too short for this (titles of several lines over two rows of maps).
CANVAS_LEAST_HEIGHT = 500


def set_item_enabled(combo: QComboBox, key: str, reason: str | None) -> None:
    """Grey out the entry of a combo box whose data is ``key``, with ``reason`` as its tooltip (None: enable)."""
    index = combo.findData(key)
    model = combo.model()
    if index < 0 or not isinstance(model, QStandardItemModel):
        return
    item = model.item(index)
    item.setEnabled(reason is None)
    item.setToolTip(reason or "")


def deletion_tooltip(score: float, probability: float) -> str:
    """What a panel's deletion AUC is, with the raw area it came from."""
    text = (f"Deletion AUC {score:.3f} of p: the area under p(deleted) / p(intact image), each step capped at 1, "
            f"as the map's pixels are deleted, most salient first (RISE); p(intact image) = {probability:.2f}. "
            f"As a share of its starting probability it compares across models.")
    if isinstance(score, DeletionScore):
        text += f" The raw area under p (catviz-eval --faithfulness's) is {score.raw:.3f}."
    return text


def steady_bar() -> ColorBar:
    """A colour bar that keeps its room while hidden (no map yet, or one scale per panel):
    the panels beside it keep their size when a map arrives."""
    bar = ColorBar()
    policy = bar.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    bar.setSizePolicy(policy)
    return bar


class QtCamView(QWidget):
    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.state = state
        s = state.settings
        self.method = QComboBox()
        for name, method in METHODS.items():  # shown by its menu name, kept by its name
            self.method.addItem(method.menu_name, name)
        self.method.setCurrentIndex(self.method.findData(s.cam_method))
        self.depth = QComboBox()
        for name, title in DEPTH_TITLES.items():  # shown by its title, kept by its name
            self.depth.addItem(title, name)
        self.depth.setCurrentIndex(self.depth.findData(s.cam_depth))
        for box in (self.method, self.depth):  # sized to a short entry: the long ones show in the open list
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(14)
            box.view().setMinimumWidth(box.view().sizeHintForColumn(0) + 24)
        self.level = QComboBox()
        self.level.addItem(COMBINED)
        self.colormap = QComboBox()
        for name in COLORMAPS:
            self.colormap.addItem(name, name)
        self.colormap.setCurrentText(colormap_for(s.colormap, True))
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(s.opacity * 100))
        self.opacity.setMaximumWidth(90)
        self.opacity.setMinimumWidth(60)
        self.positive_only = QCheckBox("Positive evidence only")
        self.positive_only.setToolTip("Hide negative contributions; the scale runs from 0 to the largest positive value.")
        self.per_panel = QCheckBox("Per-panel scale")
        self.positive_only.setChecked(s.positive_only)
        self.per_panel.setChecked(s.per_panel_scale)
        self.small_values = QCheckBox("Show small values")
        self.difference = QCheckBox("Difference")
        self.difference.setToolTip("A third panel: CAT's complete CAM minus the baseline's, both on the input "
                                   "pixels (resampled by area where a grid differs): its mean plus the difference "
                                   "of the offsets is the logit difference")
        derivation = QPushButton("How are these computed?")
        derivation.clicked.connect(self.show_derivation)
        self.small_values.setChecked(s.small_values)
        self.difference.setChecked(s.cam_difference)
        self.deletion = QPushButton("Deletion AUC")
        self.deletion.setToolTip("How fast the label's probability falls when pixels are deleted in the order of "
                                 "each top map, most salient first (RISE; lower is more faithful): the area under "
                                 "p(deleted) / p(intact image), so models that start from different probabilities "
                                 "compare. Computed in a worker.")
        self.deletion.clicked.connect(self.request_deletion_auc)
        self.method.currentIndexChanged.connect(lambda _: state.update_settings(cam_method=self.method.currentData()))
        self.level.currentTextChanged.connect(lambda t: state.update_settings(cam_level=t) if t else None)
        self.depth.currentIndexChanged.connect(lambda _: state.update_settings(cam_depth=self.depth.currentData()))
        self.colormap.currentTextChanged.connect(lambda t: state.update_settings(colormap=t))
        self.opacity.valueChanged.connect(lambda v: state.update_settings(opacity=v / 100))
        self.positive_only.toggled.connect(lambda on: state.update_settings(positive_only=on))
        self.per_panel.toggled.connect(lambda on: state.update_settings(per_panel_scale=on))

        self.small_values.toggled.connect(lambda on: state.update_settings(small_values=on))
        self.difference.toggled.connect(lambda on: state.update_settings(cam_difference=on))
        controls = QtFlowLayout()  # wraps onto more lines in a narrow window, never cuts a control
        for text, widget in (("Method", self.method), ("Depth", self.depth), ("CAT level", self.level),
                             ("Colours", self.colormap), ("Opacity", self.opacity)):
            controls.addWidget(control_group(QLabel(text), widget))
        for widget in (self.deletion, self.positive_only, self.per_panel, derivation):
            controls.addWidget(widget)

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.top = self.canvas.addLayout(row=0, col=0)
        self.bottom = self.canvas.addLayout(row=1, col=0)
        self.panels = {role: OverlayPanel(self.top, 0, i, title) for i, (role, title) in enumerate(ROLE_TITLES.items())}
        self.top_bar, self.bottom_bar = steady_bar(), steady_bar()
        self.top.addItem(self.top_bar, row=1, col=len(self.panels) + 1)
        self.level_panels: dict[str, OverlayPanel] = {}
        self.shown: dict[str, tuple] = {}  # role → deletion-AUC key of the map its top panel shows
        self.difference_panel = OverlayPanel(self.top, 0, len(self.panels), "CAT − baseline")
        self.difference_map: DifferenceMap | None = None
        self._difference_of: tuple = (None, None, ())  # (CAT's map, the baseline's, the numbers) it was made from
        self.bottom_caption = self._add_caption(1)
        self.canvas.ci.layout.setRowStretchFactor(0, 3)
        self.canvas.ci.layout.setRowStretchFactor(1, 2)

        self.progress_label = QLabel()
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self._cancel)
        self.run_again = QPushButton("Run again")
        self.run_again.setToolTip("Compute the map that was cancelled or failed, for this image, label and level")
        self.run_again.clicked.connect(self._run_again)
        progress = QtFlowLayout()  # under the maps: how they are drawn, then the work on them
        progress.addWidget(self.small_values)
        progress.addWidget(self.difference)
        progress.addWidget(self.progress_label)
        progress.addWidget(self.cancel)
        progress.addWidget(self.run_again)
        for widget in (self.progress_label, self.cancel):  # the row keeps its room: the panels do not jump
            policy = widget.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            widget.setSizePolicy(policy)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(scrolling(self.canvas, CANVAS_LEAST_HEIGHT), 1)
        layout.addLayout(progress)
        layout.addWidget(self.hint)
        self._update_progress()

        unsubscribe_on_close(self, [
            state.subscribe(Event.SELECTION_CHANGED, lambda *_: self.refresh(new_image=True)),
            state.subscribe(Event.IMAGE_LOADED, lambda entry: self.refresh(new_image=entry is state.current_entry)),
            state.subscribe(Event.MODELS_CHANGED, lambda *_: self._on_models_changed()),
            *(state.subscribe(event, lambda *_: self.refresh())
              for event in (Event.RESULT_READY, Event.ATTRIBUTION_READY, Event.DELETION_AUC_READY)),
            state.subscribe(Event.PROGRESS_CHANGED, lambda *_: self._update_progress()),
            state.subscribe(Event.ATTRIBUTION_READY, lambda *_: self._show_progress()),  # or stopped: Run again
            state.subscribe(Event.SETTINGS_CHANGED, self._on_settings_changed),
        ])
        self._on_models_changed()

    # state → widgets ----------------------------------------------------------------------
    def _on_settings_changed(self, keys: set[str]) -> None:
        if keys & {"cam_method", "cam_level", "cam_depth", "label", "label_mode", "colormap", "opacity", "positive_only",
                   "per_panel_scale", "threshold", "small_values", "cam_difference"}:  # the threshold decides a title's "(missed)"
            self._update_controls()
            self._show_progress()
            self.refresh()

    def _add_caption(self, columns: int) -> PanelTitle:
        """The bottom row's caption over its ``columns`` panels, wrapped to their width."""
        caption = PanelTitle("", color="#444", size="9pt")
        self.bottom.addItem(caption, row=0, col=0, colspan=max(columns, 1))
        return caption

    def _on_models_changed(self) -> None:
        """Level choices and panels come from the CAT model's own spec."""
        spec = self.state.spec("cat")
        levels = list(spec.level_names) if spec is not None else []
        if levels != list(self.level_panels):
            self.bottom.clear()
            self.bottom_caption = self._add_caption(len(levels))
            self.level_panels = {name: OverlayPanel(self.bottom, 1, i, f"CAT {name}") for i, name in enumerate(levels)}
            self.bottom_bar = steady_bar()
            self.bottom.addItem(self.bottom_bar, row=2, col=len(levels))
        self.level.blockSignals(True)
        self.level.clear()
        self.level.addItems([COMBINED, *levels])
        wanted = self.state.settings.cam_level
        self.level.setCurrentText(wanted if wanted in levels else COMBINED)
        self.level.blockSignals(False)
        self._update_controls()
        self.refresh(new_image=True)

    def _update_controls(self) -> None:
        s = self.state.settings
        info = method_info(s.cam_method)
        if self.method.currentData() != s.cam_method:
            self.method.blockSignals(True)
            self.method.setCurrentIndex(self.method.findData(s.cam_method))
            self.method.blockSignals(False)
        drawn = colormap_for(s.colormap, info.signed)
        if self.colormap.currentText() != drawn:  # the box shows what is drawn; the choice is kept for signed maps
            self.colormap.blockSignals(True)
            self.colormap.setCurrentText(drawn)
            self.colormap.blockSignals(False)
        for box, on in ((self.positive_only, s.positive_only), (self.per_panel, s.per_panel_scale),
                        (self.small_values, s.small_values), (self.difference, s.cam_difference)):
            box.blockSignals(True)
            box.setChecked(on)
            box.blockSignals(False)
        self.opacity.blockSignals(True)
        self.opacity.setValue(round(s.opacity * 100))
        self.opacity.blockSignals(False)
        unsigned = None if info.signed else (f"{info.title} maps are unsigned (0-1): a diverging map needs a zero "
                                             "to centre on")
        set_item_enabled(self.colormap, DIVERGING, unsigned)
        self.colormap.setToolTip(
            f"{unsigned}; drawn with {drawn}, {s.colormap} again for signed maps (CAM)" if drawn != s.colormap
            else "Colour map of the heat maps")
        if self.state.spec("cat") is None:
            self.level.setEnabled(False)
            self.level.setToolTip("Load a CAT model to choose one of its levels.")
        elif not info.layered:
            self.level.setEnabled(False)
            self.level.setToolTip(f"{info.name} attributes input pixels: it has no level or layer.")
        else:
            self.level.setEnabled(True)
            self.level.setToolTip("The CAT panel shows this level (combined: the sum of every level).")
        for method in METHODS:
            set_item_enabled(self.method, method, self._unavailable(method))
        self._update_depths(info)
        signed = info.signed
        self.positive_only.setEnabled(signed)
        self.positive_only.setToolTip(
            "Hide negative contributions; the scale runs from 0 to the largest positive value." if signed
            else f"{info.name} maps are unsigned (0-1): there is no negative evidence to hide.")
        self.per_panel.setEnabled(signed)
        self.per_panel.setToolTip(
            "Scale each panel to its own largest value (the panels no longer compare)." if signed
            else f"{info.name} maps are unsigned: each is already scaled 0-1 on its own.")
        self.small_values.setEnabled(signed)
        self.small_values.setToolTip(
            f"Draw every non-zero value below {SMALL_VALUE_FLOOR:.0%} of the scale as if it reached {SMALL_VALUE_FLOOR:.0%}: "
            "its sign's colour at a visible opacity (the colour bar no longer reads their size). Titles say how much "
            "of a map's |mass| is drawn faint without it." if signed
            else f"{info.name} maps are unsigned and drawn at one opacity: nothing is hidden.")

    def _update_depths(self, info: MapMethod) -> None:
        """The depth box: the complete CAM's only; a depth a loaded model lacks is disabled, named."""
        depth = self.state.settings.cam_depth
        if self.depth.currentData() != depth:
            self.depth.blockSignals(True)
            self.depth.setCurrentIndex(self.depth.findData(depth))
            self.depth.blockSignals(False)
        self.depth.setEnabled(info.name == CAM)
        self.depth.setToolTip("Where the complete CAM splits the logit: the positions the classifiers read "
                              "(tokens), feature maps further down, or the input pixels (every bias credited "
                              "where it is added)" if info.name == CAM else f"{info.title} has no depth choice")
        specs = {role: self.state.spec(role) for role in self.state.models}
        for name in DEPTH_TITLES:
            lacking = [ROLE_TITLES.get(r, r) for r, spec in specs.items() if spec is not None and name not in spec.depths]
            set_item_enabled(self.depth, name, f"{' and '.join(lacking)} cannot be explained at "
                                               f"{depth_title(name)}" if lacking else None)

    def _unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot apply to the loaded models (None: it can)."""
        if not self.state.models:
            return None
        specs = [spec for r in self.state.models if (spec := self.state.spec(r)) is not None]
        reasons = [method_info(method).unavailable_for(spec) for spec in specs]
        return "; ".join(dict.fromkeys(reasons)) if reasons and all(reasons) else None

    def _update_progress(self) -> None:
        self._show_progress()
        self.refresh()

    def _show_progress(self) -> None:
        """The progress row names the chosen method: the workers report progress only for the
        map the view wants, and cancel any other when the method changes."""
        method = self.state.settings.cam_method
        running = {role: f for (role, what), f in self.state.progress.items() if what == ATTRIBUTION}
        if method == CAM and self.state.settings.cam_depth == "tokens":  # computed with the forward pass
            running = {}
        text = ", ".join(f"{ROLE_TITLES.get(r, r)} {f:.0%}" for r, f in running.items())
        stopped = {r: why for r in ROLE_TITLES if (why := self.state.attribution_status(r))}
        if running:
            self.progress_label.setText(f"Computing {method_info(method).title}: {text}")
        else:
            self.progress_label.setText("; ".join(f"{ROLE_TITLES[r]}: {why}" for r, why in stopped.items()))
        self.progress_label.setVisible(bool(running or stopped))
        self.cancel.setVisible(bool(running))
        self.run_again.setVisible(bool(stopped) and not running)

    def _run_again(self) -> None:
        """Ask again for the maps that stopped: a change of method clears what stopped (the
        workers then compute the wanted map again), so the method is left and chosen again."""
        method = self.state.settings.cam_method
        self.state.update_settings(cam_method=next(m for m in METHODS if m != method))
        self.state.update_settings(cam_method=method)

    def _cancel(self) -> None:
        for role, what in list(self.state.progress):
            if what == ATTRIBUTION:
                self.state.request_cancel(role, what)

    # drawing ------------------------------------------------------------------------------
    def current_label(self) -> int | None:
        label = self.state.shown_label()
        return None if label is None else self.state.class_names.index(label)

    def refresh(self, new_image: bool = False) -> None:
        entry, s = self.state.current_entry, self.state.settings
        image = display_image(entry.image) if entry is not None and entry.image is not None else None
        panels = [*self.panels.values(), self.difference_panel, *self.level_panels.values()]
        if new_image or image is None or any(p.shape is None for p in panels):
            for panel in panels:
                panel.set_image(image)
        self.hint.setText(entry.error if entry is not None and entry.error else "")
        label = self.current_label() if image is not None else None
        info = method_info(s.cam_method)
        top = {role: self._top_map(role, label, info) for role in self.panels}
        self.difference_map, why_no_difference = self._difference(label, info, {r: m for r, (m, _) in top.items()})
        maps = {r: m for r, (m, _) in top.items()}
        if self.difference_map is not None:  # on the row's scale: equal colours, equal logits
            maps["difference"] = self.difference_map.heat
        top_scale = self._scales(maps, info.signed, display_percentile(info, s.cam_depth))
        self.shown = {}
        for role, panel in self.panels.items():
            heat, detail = top[role]
            self._draw(panel, heat, top_scale.get(role), info.signed)
            if heat is not None:
                self.shown[role] = (entry.path, role, self.state.class_names[label], f"{info.title} · {detail}",
                                    self.state.generation.get(role))
            panel.set_title(*self._top_title(role, label, info, detail))
        self.deletion.setEnabled(bool(self.shown))
        self.difference_panel.set_visible(s.cam_difference)
        self._draw(self.difference_panel, maps.get("difference"), top_scale.get("difference"), True)
        self.difference_panel.set_title(*self._difference_title(label, why_no_difference))
        self._show_bar(self.top_bar, top_scale, info)

        cam = method_info(CAM)
        cat = self.state.result("cat")
        levels = {lvl: cam_map(cat, label, lvl) if cat is not None and label is not None and lvl in cat.cams else None
                  for lvl in self.level_panels}
        level_scale = self._scales(levels, True)
        for level, panel in self.level_panels.items():
            self._draw(panel, levels[level], level_scale.get(level), True)
            panel.set_title(*self._level_title(level, label))
        self._show_bar(self.bottom_bar, level_scale, cam)
        row = "CAT per level: complete CAM at the classifier tokens, logit contribution (map mean + offset = level logit)"
        if s.cam_method != CAM:
            row += f"<br>{method_info(s.cam_method).title}, chosen in the method menu, is shown in the top row only"
        self.bottom_caption.setText(row if self.level_panels else "")
        self.bottom_caption.setMinimumWidth(0)  # a caption never widens the grid past the window
        fit_canvas_height(self.canvas, CANVAS_LEAST_HEIGHT)  # titles of several lines: the canvas scrolls

    def _top_map(self, role: str, label: int | None, info: MapMethod):
        """(map, detail) for a top panel: the map in its method's units, and what it shows."""
        result = self.state.result(role)
        if result is None or label is None:
            return None, ""
        if info.name == CAM:
            wanted = self.state.settings.cam_level if role == "cat" else COMBINED
            level = self._cam_level(role, result)
            detail = level if level != COMBINED else f"{COMBINED} ({'+'.join(result.cams)})"
            if wanted != level:
                detail += f", this model has no {wanted}"
            depth = self.state.settings.cam_depth
            if depth == "tokens":
                return cam_map(result, label, level), f"{detail}, at the classifier tokens"
            return self.state.attribution(role), f"{detail}, at the {depth_title(depth)}"
        key = self.state.attribution_key(role)
        if key is None or not info.layered:
            return self.state.attribution(role), "input pixels"
        wanted, layer = self.state.settings.cam_level, key[3]
        if wanted == COMBINED:
            detail = f"layer {layer} (finest, for combined)"
        elif wanted != layer:
            detail = f"layer {layer} (this model has no {wanted})"
        else:
            detail = f"layer {layer}"
        return self.state.attribution(role), detail

    def _cam_level(self, role: str, result) -> str:
        """The level a top panel's complete CAM shows: CAT's chosen one where it has it, else combined."""
        wanted = self.state.settings.cam_level if role == "cat" else COMBINED
        return wanted if wanted in result.cams else COMBINED

    def _difference(self, label: int | None, info: MapMethod, maps: dict) -> tuple[DifferenceMap | None, str]:
        """CAT − baseline of the complete CAMs the top panels show, on the input pixels (the
        larger model input where the two differ), or why there is none."""
        s = self.state.settings
        if not s.cam_difference:
            return None, ""
        if info.name != CAM:
            return None, (f"complete CAM only: {info.title} maps have no offset and logit to add up to"
                          if info.signed else f"complete CAM only: {info.title} maps are min-max scaled 0-1")
        results = {role: self.state.result(role) for role in self.panels}
        if label is None or any(r is None for r in results.values()):
            return None, "needs both models' results"
        if any(maps[role] is None for role in self.panels):
            return None, "waiting for both maps …"
        levels = {role: self._cam_level(role, result) for role, result in results.items()}
        offsets = {role: result.offset(label, levels[role], s.cam_depth) for role, result in results.items()}
        if any(o is None for o in offsets.values()):
            return None, "a model's offsets are unknown"
        side = max(self.state.models[role].meta.input_size for role in self.panels)
        base, cat = results["baseline"], results["cat"]
        numbers = (cat.logit(label, levels["cat"]), base.logit(label, levels["baseline"]), offsets["cat"],
                   offsets["baseline"], (side, side))
        kept, made_of = self.difference_map, self._difference_of
        if kept is not None and made_of[0] is maps["cat"] and made_of[1] is maps["baseline"] and made_of[2] == numbers:
            return kept, ""  # the same maps as the last refresh: not resampled again (nor its totals recomputed)
        self._difference_of = (maps["cat"], maps["baseline"], numbers)
        return difference_map(maps["cat"], maps["baseline"], *numbers), ""

    def _difference_title(self, label: int | None, why: str) -> tuple[str, str, str]:
        s, diff = self.state.settings, self.difference_map
        cat = self.state.result("cat")
        level = self._cam_level("cat", cat) if cat is not None else COMBINED
        name = f"CAT{'' if level == COMBINED else ' ' + level} − baseline"
        if diff is None:
            return f"<b>{name}</b><br>{why}", "#777", ""
        title = (f"<b>{name}</b> · {self.state.class_names[label]} · {depth_title(s.cam_depth)}<br>"
                 f"Δlogit = {signed(diff.delta_logit)} = mean {signed(float(diff.heat.mean(dtype='float64')))} "
                 f"+ Δoffset {signed(diff.delta_offset)}")
        totals, tip = totals_text(diff.heat, method_info(CAM))
        faint, faint_tip = self._faint(self.difference_panel)
        title += "".join(f"<br>{line}" for line in [*totals, faint] if line)
        tooltip = (f"CAT's complete CAM minus the baseline's, both on the {diff.heat.shape[1]}x{diff.heat.shape[0]} "
                   f"input pixels (a coarser grid's cells resampled by area, so each map's mean is kept): mean "
                   f"{float(diff.heat.mean(dtype='float64')):+.4f} + Δoffset {diff.delta_offset:+.4f} = Δlogit "
                   f"{diff.delta_logit:+.4f} (residual {diff.residual:+.1e}). Red: CAT has more evidence for the label "
                   f"there, blue: the baseline has. {tip}{faint_tip}")
        return title, "k", tooltip

    def _faint(self, panel: OverlayPanel) -> tuple[str, str]:
        """(title line, tooltip sentence): the share of a signed map's |mass| drawn faint (evidence.FAINT_STRENGTH)."""
        s = self.state.settings
        if panel.heat is None or panel.scale is None or not panel.scale.signed \
                or colormap_for(s.colormap, True) != DIVERGING:
            return "", ""
        floor = SMALL_VALUE_FLOOR if s.small_values else 0.0
        heat, scale = panel.heat, panel.scale
        share = per_map(heat, ("faint", scale, s.opacity, floor),
                        lambda: faint_share(heat, drawn_strength(heat, scale, s.opacity, floor)))
        return faint_text(share), (
            f" {share:.1%} of the map's |mass| is drawn faint: under 10 % of full strength (opacity × colour, "
            f"both fading with |value|; at Opacity {s.opacity:.0%}"
            + (", Show small values)." if s.small_values else "; Show small values draws it visibly)."))

    def _totals(self, role: str, label: int, info: MapMethod, heat) -> tuple[list[str], str]:
        """A top panel's evidence totals: for a complete CAM with the logit and offset of its level and depth."""
        result, s = self.state.result(role), self.state.settings
        if info.name != CAM:
            return totals_text(heat, info)
        level = self._cam_level(role, result)
        return totals_text(heat, info, result.logit(label, level), result.offset(label, level, s.cam_depth))

    def _scales(self, maps: dict, signed: bool, percentile: float = 100.0) -> dict[str, Scale]:
        """One shared scale for every map (or one per map), keyed like ``maps``."""
        s = self.state.settings
        positive = signed and s.positive_only
        present = {k: m for k, m in maps.items() if m is not None}
        if not signed:
            return {k: Scale(0.0, 1.0) for k in present}
        if s.per_panel_scale:
            return {k: symmetric_scale([m], positive, percentile) for k, m in present.items()}
        shared = symmetric_scale(present.values(), positive, percentile)
        return dict.fromkeys(present, shared)

    def _draw(self, panel: OverlayPanel, heat, scale: Scale | None, signed: bool) -> None:
        s = self.state.settings
        colormap = colormap_for(s.colormap, signed)
        panel.set_muted(heat is None or colormap == DIVERGING)  # one look while a map is awaited, whatever the method
        panel.set_heat(heat, scale, colormap, s.opacity, SMALL_VALUE_FLOOR if s.small_values and signed else 0.0)

    def _show_bar(self, bar: ColorBar, scales: dict[str, Scale], info: MapMethod) -> None:
        s = self.state.settings
        distinct = set(scales.values())
        if len(distinct) != 1:  # nothing shown, or one scale per panel (stated in the titles)
            bar.show_scale(None)
            return
        bar.show_scale(distinct.pop(), colormap_for(s.colormap, info.signed), info.units)

    def _top_title(self, role: str, label: int | None, info: MapMethod, detail: str) -> tuple[str, str, str]:
        """(text, colour, tooltip) of a top panel."""
        name = ROLE_TITLES[role]
        entry, s = self.state.current_entry, self.state.settings
        if role not in self.state.models:
            return f"{name} (no model loaded)", "#777", ""
        if entry is None:
            return f"{name}: no image (open or drop images)", "#777", ""
        if entry.error:
            return f"{name}: this file cannot be shown (see below)", "#b00020", entry.error
        result = self.state.result(role)
        if result is None or label is None:
            return f"{name}: running the model …", "#777", ""
        model = self.state.models[role].meta.model
        if model.removesuffix("_tiny") != role:  # not the slot's own model (an ablation, or one put here): say which
            name = f"{name}: {model}"
        names = self.state.class_names
        p = float(result.probabilities[label])
        missed = entry is not None and entry.ground_truth is not None and names[label] in entry.ground_truth \
            and not at_or_above(p, s.threshold)
        head = f"<b>{name}</b> · {names[label]} p={probability_text(p, s.threshold)}{' (missed)' if missed else ''}"
        if s.cam_level in result.level_logits and len(result.level_logits) > 1:  # one of several levels shown
            head += f" · {s.cam_level} logit {float(result.level_logits[s.cam_level][label]):+.2f}"
        heat = self.panels[role].heat
        progress = self.state.progress.get((role, ATTRIBUTION))
        if (info.name != CAM or s.cam_depth != "tokens") and heat is None:
            stopped = self.state.attribution_status(role)
            state = stopped or (f"computing … {progress:.0%}" if progress is not None else "waiting …")
            return f"{head}<br>{info.title} · {detail}<br>{state}", "k", ""
        where = f"{detail}" if info.layered else "input pixels"
        units = info.units + (" · same for every label" if info.label_independent else "")
        text = f"{head}<br>{info.title} · {where}<br>{units}"
        if info.signed and s.per_panel_scale and self.panels[role].scale is not None:
            text += f" · {self.panels[role].scale.describe('')}".rstrip()
        elif info.signed and heat is not None and self.panels[role].scale is not None:
            share = own_share(heat, self.panels[role].scale, s.positive_only, display_percentile(info, s.cam_depth))
            if share < FAINT_SHARE:  # the other model's map set the shared scale: say why this one looks blank
                text += f"<br>reaches {share:.0%} of the shared scale: Per-panel scale shows its shape"
        totals, totals_tip = self._totals(role, label, info, heat)
        faint, faint_tip = self._faint(self.panels[role])
        text += "".join(f"<br>{line}" for line in [*totals, faint] if line)
        delta = getattr(self.state.attribution(role), "convergence_delta", None) if info.name != CAM else None
        if delta is not None:  # Integrated Gradients: Captum's sum(map) - (logit - logit of the reference)
            text += f"<br>completeness delta {delta:+.3g} (sum of map − logit gain from black)"
        key = self.shown.get(role)
        tooltip = totals_tip + faint_tip + "\n" + info.note
        if key in self.state.deletion_aucs:
            relative = self.state.deletion_aucs[key]
            text += f"<br>deletion AUC {relative:.3f} of p (lower: more faithful)"
            tooltip += "\n" + deletion_tooltip(relative, p)
        elif (role, DELETION_AUC) in self.state.progress:
            text += "<br>deletion AUC: computing …"
        return text, "#d32f2f" if missed else "k", tooltip

    def _level_title(self, level: str, label: int | None) -> tuple[str, str, str]:
        cat = self.state.result("cat")
        if cat is None or label is None or level not in cat.cams:
            return f"CAT {level}", "#777", ""
        logit = float(cat.level_logits[level][label])
        exact = "exact" if cat.cam_exact[level] else "approx."
        text = f"<b>{level}</b> · logit {logit:+.2f} ({exact})"
        if level in cat.offsets:
            text += f"<br>offset {float(cat.offsets[level][label]):+.2f}"
        panel = self.level_panels[level]
        if self.state.settings.per_panel_scale and panel.scale is not None:
            text += f" · {panel.scale.describe('')}".rstrip()
        totals, totals_tip = totals_text(panel.heat, method_info(CAM), logit, cat.offset(label, level))
        faint, faint_tip = self._faint(panel)
        text += "".join(f"<br>{line}" for line in [totals[0], faint] if line)  # logit and offset: above
        tooltip = (f"CAM (complete) of level {level}, {LOGIT_UNITS}: mean over the map + offset = level logit. "
                   f"{totals_tip}{faint_tip}")
        return text, "k", tooltip

    def request_deletion_auc(self) -> None:
        """Ask for the deletion AUC of each map the top row shows (as drawn: the raw values)."""
        for role, key in self.shown.items():
            if key not in self.state.deletion_aucs:
                self.state.request_deletion_auc(key, self.panels[role].heat)

    # help -----------------------------------------------------------------------------------
    def show_derivation(self) -> None:
        from catviz.models import (
            cam,  # torch is loaded in the app by now; the view module itself stays torch-free
        )

        dialog = QDialog(self)
        dialog.setWindowTitle("How catviz computes its maps")
        text = QTextBrowser()
        text.setOpenExternalLinks(True)
        text.setMarkdown(cam.EXPLANATION_MARKDOWN + "\n\n" + DISPLAY_MARKDOWN)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(dialog.close)
        layout = QVBoxLayout(dialog)
        layout.addWidget(text)
        layout.addWidget(close)
        dialog.resize(640, 560)
        self.derivation = dialog
        dialog.show()
