"""Input attributions through Captum: Integrated Gradients and Occlusion (no Qt here).

Both explain one label's **logit** (not its probability), so they share the CAMs' units:
an attribution is the part of the logit a pixel accounts for.

* Integrated Gradients (Sundararajan et al., 2017) integrates the gradient along the
  straight path from a reference input to the image (Captum's Gauss-Legendre rule), so
  its attributions sum to ``logit(image) - logit(reference)`` (completeness).
* Occlusion (Zeiler & Fergus, 2014) slides a square patch of the reference over the
  image; a pixel's attribution is the mean logit drop over the patches that cover it.

The reference (``baseline``) is an input in *normalised* space: 0 is the dataset-mean
colour; :func:`black_baseline` gives the black image, the usual choice for IG and the one
``catviz-eval --faithfulness`` uses. Captum calls the model in chunks (IG: a few steps of
the path; Occlusion: a few window positions); between chunks the caller's ``progress``
gets the fraction done and ``should_stop`` can end the work with :class:`Cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

#: Inputs per model call (IG: path points x images; Occlusion: window positions x images).
CHUNK = 8


class Cancelled(Exception):
    """The caller's ``should_stop`` asked to end an attribution before it finished."""


def black_baseline(mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """The black image in normalised space, (1, 3, 1, 1): ``(0 - mean) / std``."""
    return (-torch.as_tensor(mean, dtype=torch.float32) / torch.as_tensor(std, dtype=torch.float32)).view(1, -1, 1, 1)


class _ChunkedForward:
    """The model's logits as Captum wants them, reporting rows done and honouring a stop."""

    def __init__(self, model: nn.Module, total_rows: int, progress, should_stop):
        self.model, self.total_rows = model, total_rows
        self.progress, self.should_stop = progress, should_stop
        self.rows = 0

    def __call__(self, images: Tensor) -> Tensor:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("attribution cancelled")
        logits = self.model(images).logits
        self.rows += images.shape[0]
        if self.progress is not None:
            self.progress(min(1.0, self.rows / self.total_rows))
        return logits


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """(window, stride) for Occlusion: an eighth of the shorter side, half-window steps."""
    window = max(1, min(height, width) // 8)
    return window, max(1, window // 2)


def _check(model: nn.Module, images: Tensor, label: int) -> None:
    if model.training:
        raise ValueError("attributions need a model in eval mode (dropout off): call model.eval() first")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if not 0 <= label < model.num_classes:
        raise ValueError(f"label {label} out of range for a model with {model.num_classes} labels")


def _reference(images: Tensor, baseline: float | Tensor) -> Tensor:
    return torch.as_tensor(baseline, dtype=images.dtype, device=images.device).expand_as(images).contiguous()


def integrated_gradients(
    model: nn.Module,
    images: Tensor,
    label: int,
    *,
    baseline: float | Tensor = 0.0,
    n_steps: int = 32,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    return_delta: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Integrated Gradients of ``label``'s logit: (B, H, W), signed, channels summed.

    ``images``: (B, 3, H, W) normalised model input. ``baseline``: the reference input
    in normalised space (a number or a tensor broadcastable to ``images``; see
    :func:`black_baseline`). ``n_steps``: the path points. ``return_delta``: also Captum's
    convergence delta, (B,): ``Σ attributions − (logit(image) − logit(baseline))``, the
    quadrature's error in completeness (two more model rows). Raises :class:`Cancelled`
    when ``should_stop()`` turns true between chunks.
    """
    from captum.attr import IntegratedGradients

    _check(model, images, label)
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    batch = images.shape[0]
    forward = _ChunkedForward(model, batch * n_steps, progress, should_stop)
    result = IntegratedGradients(forward).attribute(
        images, baselines=_reference(images, baseline), target=label, n_steps=n_steps,
        internal_batch_size=max(CHUNK, batch), return_convergence_delta=return_delta,
    )  # fmt: skip
    attributions, delta = result if return_delta else (result, None)
    maps = attributions.detach().sum(1).float().cpu().numpy()
    return (maps, delta.detach().float().cpu().numpy()) if return_delta else maps


def occlusion(
    model: nn.Module,
    images: Tensor,
    label: int,
    *,
    baseline: float | Tensor = 0.0,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Occlusion of ``label``'s logit: (B, H, W), signed (the window and stride: :func:`occlusion_window`);
    the arguments as :func:`integrated_gradients`'s."""
    from captum.attr import Occlusion

    _check(model, images, label)
    batch, _, height, width = images.shape
    window, stride = occlusion_window(height, width)
    positions = ((height - window) // stride + 1) * ((width - window) // stride + 1)
    per_eval = max(1, CHUNK // batch)
    forward = _ChunkedForward(model, batch * (1 + positions), progress, should_stop)
    with torch.no_grad():
        attributions = Occlusion(forward).attribute(
            images, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
            baselines=_reference(images, baseline), target=label, perturbations_per_eval=per_eval,
        )  # fmt: skip
    return attributions.detach().sum(1).float().cpu().numpy()
