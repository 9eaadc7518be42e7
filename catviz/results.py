"""What the views show, as plain numpy (no torch, no Qt): a model's results for one image.

Workers produce these (see :mod:`catviz.inference`); the state caches them; views and the
headless export read them. Importing this module never loads torch, so a view that needs
a result type or a numpy helper imports it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Prefixes of :attr:`InferenceResult.attention`'s keys: LRD's layers ("lrd.0", "lrd.1", ...)
#: and the classifier's cross-attention over a level ("clf.<level>").
LRD_PREFIX, CLF_PREFIX = "lrd.", "clf."


@dataclass
class InferenceResult:
    """Everything the views show for one image and one model, as numpy arrays."""

    probabilities: np.ndarray  # (L,)
    level_logits: dict[str, np.ndarray]  # level → (L,)
    cams: dict[str, np.ndarray]  # level → (L, h, w), logit units
    cam_exact: dict[str, bool]
    combined_cam: np.ndarray  # (L, H, W) on the finest level's grid
    attention: dict[str, np.ndarray]  # "lrd.i": (H, N, N); "clf.<level>": (H, h, w) or (H, Nq, h, w)
    grids: dict[str, tuple[int, int]]  # level → (h, w)
    seconds: float
    #: level → (L,) logit part no position carries: mean(cams[level]) + offsets[level] == level logit
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    #: level → source layer ("R5", "P4", "P3", ..., "offset") → (L,): parts summing to the level logit
    layer_share: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: (N, N) attention rollout over the LRD layers (None without LRD), computed in the worker:
    #: at large inputs N is in the thousands and the product would stall the GUI thread.
    rollout: np.ndarray | None = None
    #: level → (L,) the level classifier's bias: the offset of the complete CAMs at every depth below
    #: the tokens (where every other bias is credited to positions), as ``offsets`` is at the tokens
    biases: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (the state's cache is bounded by it)."""
        arrays = [self.probabilities, self.combined_cam, self.rollout, *self.level_logits.values(),
                  *self.cams.values(), *self.attention.values(), *self.offsets.values(),
                  *(a for parts in self.layer_share.values() for a in parts.values()), *self.biases.values()]
        return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))

    def logit(self, label: int, level: str = "combined") -> float:
        """``level``'s logit of ``label`` (``combined``, or a level this model lacks: the sum of its levels)."""
        chosen = [level] if level in self.level_logits else list(self.level_logits)
        return sum(float(self.level_logits[k][label]) for k in chosen)

    def offset(self, label: int, level: str = "combined", depth: str = "tokens") -> float | None:
        """The part of ``level``'s logit a complete CAM at ``depth`` leaves to no position
        (``combined``: the levels' sum): ``mean(map) + offset == logit``. None when unknown."""
        source = self.offsets if depth == "tokens" else self.biases
        chosen = [level] if level in self.level_logits else list(self.level_logits)
        if not chosen or any(k not in source for k in chosen):
            return None
        return sum(float(source[k][label]) for k in chosen)

    def lrd_keys(self) -> list[str]:
        """The attention keys of LRD's layers, in layer order ("lrd.0", "lrd.1", ...)."""
        return lrd_keys(self.attention)


class ExplainedMap(np.ndarray):
    """A map method's (H, W) map, with what the method says about it beside the values (a
    plain array to everything that does not ask; arrays derived from it carry nothing):
    ``convergence_delta``, Integrated Gradients' completeness error, Captum's
    ``Σ attributions − (logit(image) − logit(reference))``.
    """

    convergence_delta: float | None

    def __new__(cls, heat: np.ndarray, convergence_delta: float | None = None) -> ExplainedMap:
        explained = np.asarray(heat).view(cls)
        explained.convergence_delta = convergence_delta
        return explained

    def __array_finalize__(self, obj) -> None:
        self.convergence_delta = None


def lrd_keys(attention) -> list[str]:
    """The keys of ``attention`` (a dict of attention maps) that are LRD's layers, in layer order."""
    return sorted((k for k in attention if k.startswith(LRD_PREFIX)), key=lambda k: int(k[len(LRD_PREFIX):]))


def attention_rollout(lrd_layers: list[np.ndarray]) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) over LRD layers: (N, N).

    Heads are averaged, the residual path is added as identity (0.5 A + 0.5 I, rows
    renormalised) and layers are multiplied in order.
    """
    rollout = np.eye(lrd_layers[0].shape[-1])
    for weights in lrd_layers:
        a = 0.5 * weights.mean(0) + 0.5 * np.eye(weights.shape[-1])
        rollout = (a / a.sum(-1, keepdims=True)) @ rollout
    return rollout


#: Probabilities are float32 (float32(0.21) is 0.2099999934 as a Python float): they are compared
#: with the threshold at this many decimals, and shown with as many as it takes for the shown
#: number to compare as the value does (0.2096 at threshold 0.21 reads "0.2096", not "0.21").
PROBABILITY_DECIMALS = 6


def at_or_above(p: float, threshold: float) -> bool:
    """``p`` counts as predicted at ``threshold`` (the rule behind every hit / miss / FP mark)."""
    return round(float(p), PROBABILITY_DECIMALS) >= round(float(threshold), PROBABILITY_DECIMALS)


def probability_text(p: float, threshold: float, decimals: int = 2) -> str:
    """``p`` with ``decimals`` decimals, or more where fewer would read as on the other side of the threshold."""
    predicted = at_or_above(p, threshold)
    for digits in range(decimals, PROBABILITY_DECIMALS + 1):
        text = f"{float(p):.{digits}f}"
        if at_or_above(float(text), threshold) == predicted:
            return text
    return text
