"""Feature Pyramid Network (Lin et al., 2017) over the backbone's last three stages."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

OutConv = Literal["3x3", "1x1", "none"]


def _out_conv(channels: int, kind: OutConv) -> nn.Module:
    if kind == "3x3":
        return nn.Conv2d(channels, channels, 3, padding=1)
    if kind == "1x1":
        return nn.Conv2d(channels, channels, 1)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"fpn_out_conv must be '3x3', '1x1' or 'none', got {kind!r}")


class FPN(nn.Module):
    """Lateral 1x1 convs to ``channels``, top-down nearest upsampling + add, output conv.

    ``out_conv="3x3"`` is the FPN paper's choice and our default. At 1024 channels it
    dominates CAT's cost (see ``bench/models.py``), so ``"1x1"`` and ``"none"`` exist.
    """

    def __init__(self, in_channels: list[int], channels: int, out_conv: OutConv = "3x3"):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(_out_conv(channels, out_conv) for _ in in_channels)

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """Stages from high to low resolution in, pyramid levels in the same order out."""
        laterals = [conv(f) for conv, f in zip(self.lateral, features, strict=True)]
        for i in range(len(laterals) - 2, -1, -1):
            upper = F.interpolate(laterals[i + 1], size=laterals[i].shape[-2:], mode="nearest")
            laterals[i] = laterals[i] + upper
        return [conv(p) for conv, p in zip(self.output, laterals, strict=True)]
