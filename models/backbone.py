"""timm feature-extraction backbones: construction, pretrained weights, validation."""

from __future__ import annotations

import logging
from pathlib import Path

import timm
from torch import Tensor, nn

_logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = "resnext50_32x4d.fb_swsl_ig1b_ft_in1k"


def create_backbone(
    name: str,
    num_levels: int,
    pretrained: bool = False,
    pretrained_file: str | Path | None = None,
) -> nn.Module:
    """A timm ``features_only`` model returning its last ``num_levels`` stages.

    Pretrained weights come through timm: from the hub when ``pretrained`` is set, or
    from a local file (``.safetensors``/``.pth`` of the full classification model) when
    ``pretrained_file`` is given, which works offline.
    """
    kwargs: dict = {}
    if pretrained_file is not None:
        path = Path(pretrained_file)
        if not path.is_file():
            raise ValueError(f"pretrained weights file not found: {path}")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(path))
        pretrained = True
    if not timm.is_model(name):
        raise ValueError(
            f"unknown timm backbone {name!r}; any name from timm.list_models() with "
            f"feature extraction works, e.g. {DEFAULT_BACKBONE!r}"
        )
    try:
        model = timm.create_model(
            name,
            pretrained=pretrained,
            features_only=True,
            out_indices=tuple(range(-num_levels, 0)),
            **kwargs,
        )
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as err:
        raise ValueError(
            f"backbone {name!r} does not give {num_levels} feature stages "
            f"(timm features_only=True failed: {err}); choose a CNN such as {DEFAULT_BACKBONE!r}"
        ) from err
    if not next(model.parameters()).is_meta:  # load_checkpoint's shape-only skeleton is not news
        _logger.info("backbone %s (pretrained=%s): channels %s, strides %s", name, pretrained,
                     model.feature_info.channels(), model.feature_info.reduction())
    return model


def check_input(images: Tensor, min_size: int) -> None:
    """Raise ``ValueError`` unless ``images`` is (B, 3, H, W) with H, W >= ``min_size``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}; "
            "convert grayscale/RGBA to 3-channel RGB first"
        )
    if min(images.shape[-2:]) < min_size:
        raise ValueError(
            f"input {tuple(images.shape[-2:])} is smaller than the backbone's total stride "
            f"{min_size}; use images of at least {min_size}x{min_size}"
        )


def stage_module(trunk: nn.Module, stage: int) -> nn.Module:
    """The module of a timm features-only ``trunk`` whose output is backbone stage ``stage``.

    Stages count from the top as the paper does: the last of five is stage 5 (S5), so
    stage 3 is the one at stride 8. Any stage of the network is found, also one the trunk
    does not return (the baseline returns S5 only).
    """
    info = trunk.feature_info.info
    index = len(info) - 1 - (5 - stage)
    if not 0 <= index < len(info):
        raise ValueError(f"the backbone has {len(info)} stages; no stage {stage}")
    return trunk.get_submodule(info[index]["module"].replace(".", "_"))
