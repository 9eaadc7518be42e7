"""CAT: Cross-layer Aggregation with Transformers (Zhang et al., ICASSP 2022).

backbone stages S3-S5 → FPN (P3, P4, P5 at H/8, H/16, H/32, ``fpn_channels`` each)
→ LRD: transformer encoder layers over the P5 positions → R5
→ CLF: top-down fusion R5 → P4 → P3, each step one attention block whose query comes
  from the level above and whose keys/values are the lower level's positions
→ one linear classifier per level (R5, R4, R3), summed into the final logits.

Choices where the paper is silent (each is a constructor argument):
- The P5 classifier averages R5 over positions (GAP). GAP + linear keeps its CAM exact
  (Zhou et al.), and GAP is what the baseline uses.
- PMA's "global maximization on the query": the query tokens are max-pooled over
  positions into one token before attending, so one query scans the lower level:
  cost linear in its size. With ``clf="mha"`` (the paper's "w/o PMA") every upper
  position stays a query: cost (upper positions) x (lower positions).
- LRD adds a fixed 2-D sine positional encoding to queries and keys; CLF uses none
  (its pooled query has no position to encode).
- Ablations: ``use_lrd=False`` passes P5 straight on ("w/o LRD"); ``clf=None`` drops
  the fusion ("w/o CLF") and classifies GAP(P4), GAP(P3) directly, so
  ``fpn`` (no LRD, no CLF) is "Backbone+FPN" with the same three classifiers.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .attention import AttentionBlock, sine_position_encoding
from .backbone import DEFAULT_BACKBONE, check_input, create_backbone, stage_module
from .fpn import FPN, OutConv
from .outputs import LevelSpec, ModelOutput, ModelSpec

FusionKind = Literal["pma", "mha"]
LEVELS = ("P5", "P4", "P3")


def _tokens(feature_map: Tensor) -> Tensor:
    """(B, C, h, w) → (B, h*w, C)."""
    return feature_map.flatten(2).transpose(1, 2)


def _grid(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, h*w, C) → (B, C, h, w)."""
    return tokens.transpose(1, 2).unflatten(2, (height, width))


class CAT(nn.Module):
    """CAT and its ablations; see the module docstring for the architecture."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        fpn_channels: int = 1024,
        fpn_out_conv: OutConv = "3x3",
        num_heads: int = 8,
        lrd_layers: int = 2,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        use_lrd: bool = True,
        clf: FusionKind | None = "pma",
    ):
        super().__init__()
        if clf not in ("pma", "mha", None):
            raise ValueError(f"clf must be 'pma', 'mha' or None, got {clf!r}")
        reductions = backbone.feature_info.reduction()
        if len(reductions) != 3 or not reductions[0] < reductions[1] < reductions[2]:
            raise ValueError(f"CAT needs three backbone stages of rising stride, got {reductions}")
        self.backbone = backbone
        self.min_input_size = reductions[-1]
        self.strides = dict(zip(reversed(LEVELS), reductions, strict=True))  # P3, P4, P5
        self.fpn = FPN(backbone.feature_info.channels(), fpn_channels, fpn_out_conv)
        self.lrd = nn.ModuleList(
            AttentionBlock(fpn_channels, num_heads, mlp_ratio, dropout)
            for _ in range(lrd_layers if use_lrd else 0)
        )
        self.clf_kind = clf
        self.clf = nn.ModuleDict(
            {}
            if clf is None
            else {lvl: AttentionBlock(fpn_channels, num_heads, mlp_ratio, dropout) for lvl in LEVELS[1:]}
        )
        self.classifiers = nn.ModuleDict({lvl: nn.Linear(fpn_channels, num_classes) for lvl in LEVELS})
        # Identity tap on R5 as a map: a module whose output hooks (grad-cam) can see.
        self.lrd_output = nn.Identity()
        self.num_classes = num_classes

    @property
    def spec(self) -> ModelSpec:
        """Levels, their grids and sources, heads and layers (see :class:`ModelSpec`)."""
        upper = "R5" if len(self.lrd) else "P5"  # the tokens the P5 classifier and the query see
        levels = [LevelSpec(LEVELS[0], self.strides[LEVELS[0]], "gap", (upper,))]
        for i, level in enumerate(LEVELS[1:], start=1):
            if self.clf_kind is None:
                levels.append(LevelSpec(level, self.strides[level], "gap", (level,)))
            else:
                levels.append(LevelSpec(level, self.strides[level], self.clf_kind, (upper, *LEVELS[1 : i + 1])))
        blocks = [*self.lrd, *self.clf.values()]
        return ModelSpec(
            role="cat",
            levels=tuple(levels),
            num_heads=blocks[0].num_heads if blocks else 0,
            lrd_layers=len(self.lrd),
            clf=self.clf_kind,
            attention_keys=tuple(f"lrd.{i}" for i in range(len(self.lrd))) + tuple(f"clf.{k}" for k in self.clf),
            depths=("tokens", *self.depth_cuts()),
        )

    def depth_cuts(self) -> dict[str, nn.Module | None]:
        """Below the tokens, coarse first: depth → the module whose output cuts the network
        there (None: the input). ``"fpn"``: P5 (before LRD), P4, P3; ``"stages"``: the
        backbone's S3, S4, S5; ``"s3"``: stage 3 alone (stride 8)."""
        return {"fpn": self.fpn, "stages": self.backbone, "s3": stage_module(self.backbone, 3), "input": None}

    def route_taps(self) -> tuple[nn.Module, tuple[str, ...]]:
        """The module whose outputs every level's sources come from, and the source each
        output feeds: the FPN's P3, P4 and P5 (P5 becomes R5 through LRD). A level's logit
        reaches it through these routes only (:func:`models.cam.class_activation_maps`'s path share)."""
        return self.fpn, ("P3", "P4", "R5" if len(self.lrd) else "P5")

    def target_layers(self) -> dict[str, nn.Module]:
        """Per level, the module whose (B, C, h, w) output a gradient CAM explains.

        P5: R5 as a map (the LRD output; P5 itself without LRD); P4, P3: the FPN outputs
        the level's classifier or fusion reads.
        """
        return {"P5": self.lrd_output, "P4": self.fpn.output[1], "P3": self.fpn.output[0]}

    def forward(
        self, images: Tensor, return_attention: bool = False, return_features: bool = False
    ) -> ModelOutput:
        check_input(images, self.min_input_size)
        p3, p4, p5 = self.fpn(self.backbone(images))
        h5, w5 = p5.shape[-2:]
        attention: dict[str, Tensor] = {}
        features: dict[str, Tensor] = {}
        level_logits: dict[str, Tensor] = {}

        tokens = _tokens(p5)
        if len(self.lrd):
            pos = sine_position_encoding(h5, w5, tokens.shape[-1], tokens.device, tokens.dtype)
            for i, layer in enumerate(self.lrd):
                tokens, weights = layer(tokens, tokens, pos, pos, need_weights=return_attention)
                if return_attention:
                    attention[f"lrd.{i}"] = weights
        r5 = self.lrd_output(_grid(tokens, h5, w5))
        level_logits["P5"] = self.classifiers["P5"](r5.mean((2, 3)))
        features["P5"] = r5

        query = _tokens(r5)
        for level, lower in (("P4", p4), ("P3", p3)):
            if self.clf_kind is None:
                level_logits[level] = self.classifiers[level](lower.mean((2, 3)))
                features[level] = lower
                continue
            block, context = self.clf[level], _tokens(lower)
            if self.clf_kind == "pma":
                query = query.amax(dim=1, keepdim=True)
            if return_features:  # keep what the level's complete CAM needs (models.cam)
                attn_out, weights, values = block.attend_explained(query, context)
                features |= {f"{level}.query": query, f"{level}.context": lower, f"{level}.attn_out": attn_out,
                             f"{level}.weights": weights, f"{level}.values": values}
            else:
                attn_out, weights = block.attend(query, context, need_weights=return_attention)
            query = block.post_attention(query, attn_out)
            if return_attention:
                attention[f"clf.{level}"] = weights
            level_logits[level] = self.classifiers[level](query.mean(1))

        return ModelOutput(
            logits=torch.stack(list(level_logits.values())).sum(0),
            level_logits=level_logits,
            attention=attention if return_attention else None,
            features=features if return_features else None,
        )


def build_cat(
    num_classes: int,
    backbone: str = DEFAULT_BACKBONE,
    pretrained: bool = False,
    pretrained_file: str | None = None,
    **kwargs,
) -> CAT:
    """The one place CAT-style models are constructed (backbone weights included)."""
    trunk = create_backbone(backbone, 3, pretrained=pretrained, pretrained_file=pretrained_file)
    return CAT(trunk, num_classes, **kwargs)
