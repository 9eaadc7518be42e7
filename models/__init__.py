"""CAT models for multi-label image classification, their baseline and ablations."""

from . import variants as _variants  # noqa: F401  (registers the models)
from ._registry import create_model, list_models
from .backbone import DEFAULT_BACKBONE
from .baseline import Baseline
from .cat import CAT
from .device import default_device, resolve_device
from .outputs import LevelSpec, ModelOutput, ModelSpec

__all__ = [
    "CAT",
    "DEFAULT_BACKBONE",
    "Baseline",
    "LevelSpec",
    "ModelOutput",
    "ModelSpec",
    "create_model",
    "default_device",
    "list_models",
    "resolve_device",
]
