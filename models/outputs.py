"""The typed structures every catviz model returns: its outputs and its own description."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True)
class LevelSpec:
    """One classifier of a model, as its ``spec`` states it.

    Attributes:
        name: the classifier's key in ``ModelOutput.level_logits`` (``"S5"``, ``"P5"``,
            ``"P4"``, ``"P3"``).
        stride: input pixels per grid cell of the map this level is explained on (the
            finest of its sources).
        kind: ``"gap"`` (global average pooling + linear), ``"pma"`` (one max-pooled
            query attends over the lower level) or ``"mha"`` (every upper position is a
            query).
        sources: the layers whose positions reach this logit, coarse first, e.g.
            ``("R5", "P4", "P3")`` for CAT's P3 level (R5: P5 after LRD).
    """

    name: str
    stride: int
    kind: str
    sources: tuple[str, ...]

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """The explanation grid for an input of ``height`` x ``width`` pixels.

        Ceil division: each stride-2 step of a (padded) CNN rounds up.
        """
        return -(-height // self.stride), -(-width // self.stride)


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, for anything that displays or explains it (no tensors).

    Attributes:
        role: ``"baseline"`` or ``"cat"`` (every CAT-style variant, ablations included).
        levels: the classifiers in ``level_logits`` order, coarse first.
        num_heads: attention heads per block, 0 when the model has no attention.
        lrd_layers: transformer layers of LRD (0 without LRD).
        clf: the cross-layer fusion, ``"pma"``, ``"mha"`` or None.
        attention_keys: the keys of ``ModelOutput.attention`` with
            ``return_attention=True``, e.g. ``("lrd.0", "lrd.1", "clf.P4", "clf.P3")``.
        depths: where complete CAMs can be taken (``models.cam.class_activation_maps``
            ``depth=``), coarse first: ``"tokens"`` (the positions the classifiers read),
            then feature maps further down (``"fpn"``: P5 before LRD, P4, P3;
            ``"stages"``: backbone S3-S5; ``"s3"``: stage 3 alone), last ``"input"``
            (the pixels).
    """

    role: str
    levels: tuple[LevelSpec, ...]
    num_heads: int
    lrd_layers: int
    clf: str | None
    attention_keys: tuple[str, ...]
    depths: tuple[str, ...] = ("tokens",)

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    def level(self, name: str) -> LevelSpec:
        """The level called ``name``; ``KeyError`` naming the known levels otherwise."""
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(f"no level {name!r}; this model has {', '.join(self.level_names)}")


@dataclass
class ModelOutput:
    """What a forward pass returns.

    Attributes:
        logits: (B, L) final logits, the sum of ``level_logits``.
        level_logits: one (B, L) tensor per classifier, keyed by level name
            (``"P5"``, ``"P4"``, ``"P3"`` for CAT-style models, ``"S5"`` for the baseline).
        attention: only with ``return_attention=True``. Keys ``"lrd.0"``, ``"lrd.1"``:
            (B, heads, N5, N5) self-attention over P5 positions; ``"clf.P4"``,
            ``"clf.P3"``: (B, heads, Nq, Nk) cross-attention of the query tokens (one
            pooled query with PMA) over the lower level's positions. Rows sum to 1.
        features: only with ``return_features=True``. For a level whose classifier
            averages a map, that (B, C, h, w) map under the level's name (``"P5"``,
            ``"S5"`` ...). For a
            fusion level, ``"<level>.query"`` (B, Nq, C), the query tokens (one pooled
            query with PMA), ``"<level>.context"`` (B, C, h, w), the lower level it attends
            over, ``"<level>.attn_out"`` (B, Nq, C), the attention's output before the
            residual, ``"<level>.weights"`` (B, heads, Nq, Nk) and ``"<level>.values"``
            (B, heads, Nk, C/heads), the per-head values: everything :mod:`models.cam` needs.
    """

    logits: Tensor
    level_logits: dict[str, Tensor]
    attention: dict[str, Tensor] | None = None
    features: dict[str, Tensor] | None = None
