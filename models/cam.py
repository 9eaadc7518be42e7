"""Class activation maps for catviz models, as CPU numpy arrays (no Qt here).

Three kinds:

* :func:`class_activation_maps` — CAM in the sense of Zhou et al. (the paper's ref.
  [20]), every label from one forward pass.

  - A level whose classifier is ``logit = W · mean_xy F(x, y) + b`` (the baseline's S5,
    CAT's P5/LRD level, the FPN levels of ``fpn``/``cat_no_clf``, the query grids of
    ``cat_mha``) gets ``M(x, y) = W · F(x, y)``. This is **exact**:
    ``mean(M) + b == logit``.
  - A PMA level is not linear in any map: its single pooled query q attends over the
    lower level's positions j, ``o = W_o · concat_h(Σ_j a_hj V_hj) + b_o``, and the
    logit is ``z = W · LN(FFN(LN(q + o)) + ...) + b``. We linearise everything after the
    attention at the actual point, ``g = ∂z/∂o`` (one Jacobian for all labels), and
    split the attention output over positions exactly:
    ``M(j) = N · Σ_h a_hj · (g W_o)_h · V_hj``. So ``mean(M) = g · (o - b_o)``, the
    first-order (gradient × input) share of the logit that flows through the attended
    positions. This map is **approximate**: it distributes the logit, it does not sum to it.

  ``combined`` adds every level's map, resized to the finest level's grid, so its mean
  plus the biases is the sum of the per-level shares (the final logit where all are exact).

* :func:`gradient_maps` — Grad-CAM for every label of one image at once: one forward,
  then ``torch.autograd.grad(..., is_grads_batched=True)`` (vmap over the vector-Jacobian
  product) instead of one backward pass per label.

* :func:`grad_cam` — the grad-cam package's methods (GradCAM, GradCAM++, XGradCAM,
  EigenCAM, ScoreCAM, ...) on a level's target layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import jacrev, vmap

from .outputs import ModelOutput


@dataclass
class CAMResult:
    """Per-level maps (B, L, h, w) in logit units, which are exact, and their sum."""

    maps: dict[str, np.ndarray]
    exact: dict[str, bool]
    combined: np.ndarray
    logits: np.ndarray
    level_logits: dict[str, np.ndarray]


def _require_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError("CAMs need a model in eval mode (dropout off): call model.eval() first")


def _pma_level_map(block: nn.Module, classifier: nn.Linear, features: dict[str, Tensor], level: str) -> Tensor:
    """Approximate CAM of one PMA level over the lower level's grid: (B, L, h, w).

    Reuses the forward pass's attention output and weights; only the value projection
    of the lower level is computed again (the fused attention does not expose it).
    """
    query, lower = features[f"{level}.query"], features[f"{level}.context"]
    attn_out, weights = features[f"{level}.attn_out"], features[f"{level}.weights"]  # (B,1,C), (B,H,1,N)
    context = lower.flatten(2).transpose(1, 2)  # (B, N, C)

    def level_logits(q: Tensor, o: Tensor) -> Tensor:  # one image: (1, C), (1, C) → (L,)
        return classifier(block.post_attention(q, o)).mean(0)

    with torch.enable_grad():
        grad = vmap(jacrev(level_logits, argnums=1))(query, attn_out)[:, :, 0]  # (B, L, C)
    per_head = (grad @ block.attn.out_proj.weight).unflatten(-1, (block.num_heads, -1))
    values = block.value_heads(context)  # (B, H, N, d)
    share = torch.einsum("bhn,bhnd,blhd->bln", weights[:, :, 0], values, per_head)
    return (share * context.shape[1]).unflatten(-1, lower.shape[-2:])


@torch.no_grad()
def class_activation_maps(model: nn.Module, images: Tensor, output: ModelOutput | None = None) -> CAMResult:
    """CAMs of every label at every level, from one forward pass (see module docstring).

    ``output``: that pass's result when the caller already ran it with
    ``return_features=True``, so the CAMs cost no second forward.
    """
    _require_eval(model)
    out = output if output is not None and output.features else model(images, return_features=True)
    maps: dict[str, Tensor] = {}
    exact: dict[str, bool] = {}
    for level, classifier in model.classifiers.items():
        if level in out.features:
            maps[level] = torch.einsum("lc,bchw->blhw", classifier.weight, out.features[level])
            exact[level] = True
        else:
            maps[level] = _pma_level_map(model.clf[level], classifier, out.features, level)
            exact[level] = False
    finest = max((m.shape[-2:] for m in maps.values()), key=lambda s: s[0] * s[1])
    combined = sum(F.interpolate(m, size=finest, mode="nearest") for m in maps.values())
    return CAMResult(
        maps={k: v.float().cpu().numpy() for k, v in maps.items()},
        exact=exact,
        combined=combined.float().cpu().numpy(),
        logits=out.logits.float().cpu().numpy(),
        level_logits={k: v.float().cpu().numpy() for k, v in out.level_logits.items()},
    )


class ActivationCapture:
    """Keeps a module's forward output (with its graph); a context manager that unhooks."""

    def __init__(self, module: nn.Module):
        self.activation: Tensor | None = None
        self._handle = module.register_forward_hook(self._store)

    def _store(self, module: nn.Module, inputs, output: Tensor) -> None:
        self.activation = output

    def release(self) -> None:
        self._handle.remove()
        self.activation = None

    def __enter__(self) -> ActivationCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def gradient_maps(model: nn.Module, image: Tensor, layer: nn.Module) -> np.ndarray:
    """Grad-CAM of every label for one (1, 3, H, W) image: (L, h, w), unscaled, ReLU'd.

    One forward and one batched backward: ``is_grads_batched`` vmaps the vector-Jacobian
    product over the L one-hot output directions.
    """
    _require_eval(model)
    if image.shape[0] != 1:
        raise ValueError(f"gradient_maps takes one image, got a batch of {image.shape[0]}")
    with torch.enable_grad(), ActivationCapture(layer) as capture:
        # The inspection path (explicit softmax) is the one vmap can batch backward through.
        logits = model(image, return_attention=True).logits[0]
        activation = capture.activation
        eye = torch.eye(logits.numel(), device=logits.device, dtype=logits.dtype)
        (grads,) = torch.autograd.grad(logits, activation, eye, is_grads_batched=True)
    weights = grads[:, 0].mean(dim=(-2, -1), keepdim=True)  # (L, C, 1, 1)
    cams = F.relu((weights * activation[0].detach()).sum(1))
    return cams.float().cpu().numpy()


class LogitsOnly(nn.Module):
    """Adapter for grad-cam, which expects ``model(x)`` to return a logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images, return_attention=True).logits


def grad_cam(
    model: nn.Module,
    images: Tensor,
    label: int,
    level: str,
    method: Callable | None = None,
) -> np.ndarray:
    """A grad-cam package method's map for ``label`` at ``level``: (B, H, W) in [0, 1].

    ``method`` is a grad-cam class (``pytorch_grad_cam.GradCAM`` by default). Note that
    grad-cam switches the model it is given to eval mode.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    method = method or GradCAM
    layer = model.target_layers()[level]
    with method(model=LogitsOnly(model), target_layers=[layer]) as cam:
        targets = [ClassifierOutputTarget(label)] * images.shape[0]
        return cam(input_tensor=images, targets=targets)
