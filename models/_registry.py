"""Name → factory registry, in the spirit of timm's ``register_model``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_MODEL_FACTORIES: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``factory(num_classes=..., **kwargs)`` available as ``create_model(name, ...)``."""
    _MODEL_FACTORIES[name] = factory


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_MODEL_FACTORIES)


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build the model registered as ``name``.

    Keyword arguments (``backbone``, ``pretrained``, ``pretrained_file``,
    ``fpn_channels``, ``fpn_out_conv``, ...) override the variant's defaults.
    """
    if name not in _MODEL_FACTORIES:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    return _MODEL_FACTORIES[name](num_classes=num_classes, **kwargs)
