"""The typed structure every catviz model returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


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
            ``"S5"`` ...). For a PMA level, ``"<level>.query"`` (B, 1, C), the pooled
            query, ``"<level>.context"`` (B, C, h, w), the lower level it attends over,
            ``"<level>.attn_out"`` (B, 1, C), the attention's output before the residual,
            and ``"<level>.weights"`` (B, heads, 1, Nk): everything :mod:`models.cam` needs.
    """

    logits: Tensor
    level_logits: dict[str, Tensor]
    attention: dict[str, Tensor] | None = None
    features: dict[str, Tensor] | None = None
