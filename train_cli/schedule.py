"""How long and how fast to train: learning-rate schedules as pure functions of training
progress (in epochs), and the convergence test that ends a run past its minimum epochs."""

from __future__ import annotations

import math


def lr_factor(
    progress: float,
    epochs: int,
    schedule: str = "step",
    lr_step: int = 30,
    lr_gamma: float = 0.1,
    warmup_epochs: float = 0.0,
) -> float:
    """Multiplier of the peak learning rate after ``progress`` epochs.

    ``step``: x ``lr_gamma`` every ``lr_step`` epochs (the paper: x0.1 every 30).
    ``cosine``: half a cosine from 1 to 0. ``onecycle``: linear up over the first 30%,
    cosine down after (warm-up then is the cycle's own). A linear warm-up over
    ``warmup_epochs`` multiplies ``step``/``cosine``.
    """
    if schedule == "onecycle":
        peak = 0.3 * epochs
        if progress < peak:
            return 0.04 + 0.96 * progress / peak
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - peak) / (epochs - peak))))
    warmup = min(1.0, progress / warmup_epochs) if warmup_epochs > 0 else 1.0
    if schedule == "step":
        return warmup * lr_gamma ** int(progress // lr_step)
    if schedule == "cosine":
        return warmup * 0.5 * (1 + math.cos(math.pi * min(1.0, progress / epochs)))
    raise ValueError(f"unknown schedule {schedule!r}; choose step, cosine or onecycle")


def tail_span(history: list[float], window: int) -> float:
    """max - min of the last ``window`` values of a metric's per-epoch history (NaN if shorter)."""
    tail = history[-window:]
    if len(tail) < window or not all(map(math.isfinite, tail)):
        return math.nan
    return max(tail) - min(tail)


def converged(history: list[float], window: int, delta: float) -> bool:
    """Whether the last ``window`` epochs' val mAP spans less than ``delta`` points (an undefined mAP never does)."""
    span = tail_span(history, window)
    return math.isfinite(span) and span < delta
