"""The map methods the app offers, registered once, and what their numbers mean (no torch, no Qt).

:data:`METHODS` is the one registry: the CAM view's menu, ``catviz export --method``, the
headless figure, the workers (through :func:`catviz.inference.run_attribution`) and
``catviz-eval --faithfulness`` all read it. Each :class:`MapMethod` says how its maps are
named, titled and scaled, which models it applies to, what it costs, and where the
function computing it lives (``run``: a ``"module:function"`` reference resolved only when
a map is computed, so this module, which the views import, never loads torch).

Adding a method: one :func:`register_method` call naming a runner ``fn(method, model,
image, label, level, request) -> (H, W) numpy`` (see :mod:`catviz.explain`), and its tests.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catviz.models.outputs import ModelSpec

CAM = "CAM"
LOGIT_UNITS = "logit contribution"
RELATIVE_UNITS = "relative, 0-1"
#: Cost classes: how long one map takes (expensive: many forward passes per map).
CHEAP, MEDIUM, EXPENSIVE = "cheap", "medium", "expensive"
COSTS = (CHEAP, MEDIUM, EXPENSIVE)
#: Where the runners live (torch side; resolved lazily).
COMPLETE_CAM = "catviz.explain:complete_cam"
GRAD_CAM = "catviz.explain:grad_cam_map"  # a grad-cam package class, named by the method's ``name``
INTEGRATED_GRADIENTS = "catviz.explain:integrated_gradients"
OCCLUSION = "catviz.explain:occlusion"


#: The complete CAM's depths (a model's ``spec.depths``, coarse first), as titles say them.
DEPTH_TITLES = {
    "tokens": "classifier tokens",
    "fpn": "FPN outputs (before LRD and fusion)",
    "stages": "backbone stages S3-S5",
    "s3": "backbone stage 3 (stride 8)",
    "input": "input pixels",
}
#: The depth shown and exported unless another is chosen.
DEFAULT_DEPTH = "input"


def depth_title(depth: str) -> str:
    """How titles name ``depth`` (an unknown name is shown as it is)."""
    return DEPTH_TITLES.get(depth, depth)


#: "How are these computed?" continues with this after the CAM explanation of :mod:`models.cam`.
DISPLAY_MARKDOWN = """\
### Reading the display

**Colours.** Signed maps (complete CAM, Integrated Gradients, Occlusion) use a diverging
colour map centred on zero: red adds to the label's logit, blue takes away from it. A
position's opacity grows with the size of its value, so where there is no evidence the
(greyed) image shows through. The colour bar beside each row is in the map's units.

**One scale.** The baseline and CAT panels share one zero-centred scale, and so do CAT's
per-level panels: equal colours mean equal logits, so intensities compare across models
and levels. *Per-panel scale* scales each panel to its own largest value instead (the
titles then give each range; panels no longer compare). *Positive evidence only* hides
the blue part. Integrated Gradients' scale ends at the 99th percentile of |value|, since
a few pixels carry extreme values; those saturate.

**Other methods.** The grad-cam package's methods (GradCAM, ..., EigenCAM) explain one
layer — the chosen level, or a model's finest level for *combined* (the title names
it) — and return maps min-max scaled to 0-1: a sequential colour map, no units, no
sign. EigenCAM does not depend on the label. Integrated Gradients (against the black
image) and Occlusion attribute input pixels; they have no level.

**Deletion AUC.** The button deletes the image's pixels in the order of each shown map,
most salient first, and reports the area under the label's probability curve (RISE) as a
share of the probability on the intact image ("of p"): the area under p(deleted) / p(intact),
capped at 1 (a step that raises the probability keeps all of it). Lower means the map found
what the model uses. The raw area under p (in the title's tooltip; `catviz-eval
--faithfulness` reports it) grows with the starting probability, so the more confident model
would look less faithful; the share compares baseline and CAT.
"""


class DeletionScore(float):
    """A map's deletion AUC as a share of the intact image's probability (the number itself,
    see :func:`catviz.inference.relative_auc`), with ``raw``: the area under the probability, as
    ``catviz-eval --faithfulness`` reports it."""

    raw: float

    def __new__(cls, relative: float, raw: float) -> DeletionScore:
        score = super().__new__(cls, relative)
        score.raw = raw
        return score


@dataclass(frozen=True)
class MapMethod:
    """One map method: what the user sees of it, what its numbers mean, and how it is computed."""

    name: str  # kept in the settings and given to ``catviz export --method`` (grad-cam: its class name)
    key: str  # ``catviz-eval --faithfulness --methods`` key
    title: str  # as panels show it
    signed: bool  # values in logit units with a sign, drawn on a zero-centred scale
    units: str
    layered: bool  # computed at a level or layer (else on the input pixels)
    run: str  # "module:function" computing one map: fn(method, model, image, label, level, request)
    label_independent: bool = False  # the same map for every label
    cost: str = CHEAP
    note: str = ""
    #: the shared scale's limit: this percentile of |value| (beyond it colours saturate)
    scale_percentile: float = 100.0
    menu_name: str = ""  # the method menu's entry (default: name)
    table_name: str = ""  # the faithfulness table's name (default: the menu's)
    scored_by_default: bool = True  # in ``--faithfulness``'s default ``--methods``

    def __post_init__(self):
        if self.cost not in COSTS:
            raise ValueError(f"{self.name}: cost must be one of {', '.join(COSTS)}, not {self.cost!r}")
        if ":" not in self.run:
            raise ValueError(f"{self.name}: run must be a 'module:function' reference, not {self.run!r}")
        object.__setattr__(self, "menu_name", self.menu_name or self.name)
        object.__setattr__(self, "table_name", self.table_name or self.menu_name)

    def runner(self) -> Callable:
        """The function computing this method's maps (imports its module, and so torch)."""
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)

    def unavailable_for(self, spec: ModelSpec) -> str | None:
        """Why this method cannot explain a model with ``spec`` (None: it can)."""
        if self.layered and not spec.levels:
            return f"{self.name} needs a layer to explain; the loaded model states none"
        return None


#: Method name → :class:`MapMethod`, in menu order. Read it, never copy it.
METHODS: dict[str, MapMethod] = {}


def register_method(method: MapMethod) -> MapMethod:
    """Add ``method`` to :data:`METHODS` (the menu, export and faithfulness then offer it)."""
    for other in METHODS.values():
        if method.name == other.name or method.key == other.key:
            raise ValueError(f"map method {method.name!r} (key {method.key!r}) is registered already as {other.name!r}")
    METHODS[method.name] = method
    return method


#: Complete maps at the input pixels concentrate the logit on few pixels with large values of both
#: signs (they cancel): like Integrated Gradients', their colour scale ends at this percentile of |value|.
PIXEL_SCALE_PERCENTILE = 99.0


def display_percentile(method: MapMethod, depth: str) -> float:
    """Where the colour scale of ``method``'s maps at ``depth`` ends, as a percentile of |value|."""
    if method.name == CAM and depth == "input":
        return PIXEL_SCALE_PERCENTILE
    return method.scale_percentile


def method_info(name: str) -> MapMethod:
    """What ``name``'s maps are; a ValueError names the methods offered for an unknown one."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown map method {name!r}; offered: {', '.join(METHODS)}") from None


def method_by_key(key: str) -> MapMethod:
    """The method whose ``--methods`` key is ``key`` (KeyError for an unknown one)."""
    for method in METHODS.values():
        if method.key == key:
            return method
    raise KeyError(key)


def grad_cam_methods() -> list[str]:
    """The registered methods computed by the grad-cam package (on a level's target layer)."""
    return [m.name for m in METHODS.values() if m.run == GRAD_CAM]


#: Kept for readers of the old name.
MethodInfo = MapMethod

_GRAD_CAM_NOTE = "grad-cam package, min-max scaled"
register_method(MapMethod(
    CAM, "cam", "CAM (complete)", True, LOGIT_UNITS, True, COMPLETE_CAM, table_name="complete CAM",
    note="exact split of the level logit over positions; the offset is kept apart"))
for _name, _key, _cost, _menu in (("GradCAM", "gradcam", CHEAP, ""), ("GradCAMPlusPlus", "gradcam++", CHEAP, "GradCAM++"),
                                  ("XGradCAM", "xgradcam", CHEAP, ""), ("EigenCAM", "eigencam", CHEAP, ""),
                                  ("ScoreCAM", "scorecam", EXPENSIVE, ""), ("LayerCAM", "layercam", CHEAP, ""),
                                  ("HiResCAM", "hirescam", CHEAP, "")):  # fmt: skip
    register_method(MapMethod(
        _name, _key, _menu or _name, False, RELATIVE_UNITS, True, GRAD_CAM, cost=_cost, menu_name=_menu,
        label_independent=_name == "EigenCAM",
        note="first principal component of the layer: the same map for every label" if _name == "EigenCAM"
        else _GRAD_CAM_NOTE,
        scored_by_default=_key in ("gradcam", "gradcam++", "eigencam", "scorecam")))
register_method(MapMethod(
    "Integrated Gradients", "ig", "Integrated Gradients", True, "logit attribution", False, INTEGRATED_GRADIENTS,
    cost=EXPENSIVE, scale_percentile=99.0,
    note="per pixel; they sum to logit(image) − logit(black image). The colour scale "
         "ends at the 99th percentile of |value|: the few pixels beyond saturate"))
register_method(MapMethod(
    "Occlusion", "occlusion", "Occlusion", True, "logit drop when occluded", False, OCCLUSION, cost=EXPENSIVE,
    note="per pixel, the logit lost when a patch around it is covered"))
