"""The map methods the app offers and what their numbers mean (no torch, no Qt).

Titles, colour bars and scales are read from here, so every panel and the export
describe a map the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .results import GRAD_CAM_METHODS

CAM = "CAM"
ATTRIBUTION_METHODS = ("Integrated Gradients", "Occlusion")
METHODS = (CAM, *GRAD_CAM_METHODS, *ATTRIBUTION_METHODS)
#: How a method is named to the user where its key (the grad-cam class name) is not that.
MENU_NAMES = {"GradCAMPlusPlus": "GradCAM++"}
LOGIT_UNITS = "logit contribution"


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
class MethodInfo:
    name: str
    title: str  # as panels show it
    signed: bool  # values in logit units with a sign, drawn on a zero-centred scale
    units: str
    layered: bool  # computed at a level or layer (else on the input pixels)
    label_independent: bool = False
    note: str = ""
    #: the shared scale's limit: this percentile of |value| (beyond it colours saturate)
    scale_percentile: float = 100.0


def method_info(name: str) -> MethodInfo:
    """What ``name``'s maps are; a ValueError names the methods offered for an unknown one."""
    if name == CAM:
        return MethodInfo(name, "CAM (complete)", True, LOGIT_UNITS, True,
                          note="exact split of the level logit over positions; the offset is kept apart")
    if name == "EigenCAM":
        return MethodInfo(name, name, False, "relative, 0-1", True, label_independent=True,
                          note="first principal component of the layer: the same map for every label")
    if name in GRAD_CAM_METHODS:
        return MethodInfo(name, MENU_NAMES.get(name, name), False, "relative, 0-1", True,
                          note="grad-cam package, min-max scaled")
    if name == "Integrated Gradients":
        return MethodInfo(name, name, True, "logit attribution", False, scale_percentile=99.0,
                          note="per pixel; they sum to logit(image) − logit(black image). The colour scale "
                               "ends at the 99th percentile of |value|: the few pixels beyond saturate")
    if name == "Occlusion":
        return MethodInfo(name, name, True, "logit drop when occluded", False,
                          note="per pixel, the logit lost when a patch around it is covered")
    raise ValueError(f"unknown map method {name!r}; offered: {', '.join(METHODS)}")
