"""The registered model variants: CAT, the baseline and the paper's ablations (Table 3).

Each variant is a builder plus a dict of defaults; ``create_model`` keyword arguments
override them. Every variant has a ``_tiny`` twin on timm's 0.4M-parameter
``test_resnet`` with 64 FPN channels, for tests and the demo.
"""

from __future__ import annotations

from functools import partial

from ._registry import register_model
from .baseline import build_baseline
from .cat import build_cat

TINY = dict(backbone="test_resnet", fpn_channels=64, mlp_ratio=2.0)

_VARIANTS = {
    "baseline": (build_baseline, {}),  # Table 3 "Backbone"
    "fpn": (build_cat, dict(use_lrd=False, clf=None)),  # "Backbone+FPN"
    "cat_no_lrd": (build_cat, dict(use_lrd=False)),  # "CAT w/o LRD"
    "cat_no_clf": (build_cat, dict(clf=None)),  # "CAT w/o CLF"
    "cat_mha": (build_cat, dict(clf="mha")),  # "CAT w/o PMA"
    "cat": (build_cat, {}),  # "CAT"
}


def _factory(builder, defaults: dict, num_classes: int, **kwargs):
    return builder(num_classes, **{**defaults, **kwargs})


for _name, (_builder, _defaults) in _VARIANTS.items():
    register_model(_name, partial(_factory, _builder, _defaults))
    _tiny = {**_defaults, **(TINY if _builder is build_cat else {"backbone": TINY["backbone"]})}
    register_model(f"{_name}_tiny", partial(_factory, _builder, _tiny))
