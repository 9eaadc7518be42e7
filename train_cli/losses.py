"""Training losses that are not torch's own.

Asymmetric loss (ASL; Ridnik, Ben-Baruch et al., "Asymmetric Loss for Multi-Label
Classification", ICCV 2021), with p = sigmoid(logit), the probability shifted by the margin m
for negatives, p_m = max(p - m, 0), and

    L+ = (1 - p)^gamma+ log(p)        L- = p_m^gamma- log(1 - p_m)        loss = -y L+ - (1 - y) L-

summed over labels and averaged over images. Defaults are the paper's (gamma- 4, gamma+ 0, m 0.05).
Gradients flow through the focusing weights (p_m^gamma-): the derivative of the formula as the
paper writes and analyses it (its Section 3). The authors' ``AsymmetricLoss`` does the same: its
``disable_torch_grad_focal_loss`` switch is commented out in the class (only their
``AsymmetricLossOptimized`` honours it), although their train.py passes True. log clamps its
argument at 1e-8, as the authors' code does. Difficult labels (target -1, VOC) carry no loss, as
with BCE.
"""

from __future__ import annotations

import torch


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_neg: float = 4.0, gamma_pos: float = 0.0,
                    clip: float = 0.05, eps: float = 1e-8) -> torch.Tensor:
    """ASL of (B, C) logits against (B, C) targets in {1, 0, -1}: the sum over labels, mean over images."""
    known = (targets >= 0).to(logits.dtype)
    y = targets.clamp(min=0).to(logits.dtype)
    p = torch.sigmoid(logits)
    one_minus_p_m = (1 - p + clip).clamp(max=1) if clip > 0 else 1 - p  # 1 - max(p - m, 0)
    positive = torch.log(p.clamp(min=eps))
    negative = torch.log(one_minus_p_m.clamp(min=eps))
    if gamma_pos:  # (1 - p)^0 is 1; skipping it also avoids 0 * inf in its gradient at p = 1
        positive = positive * (1 - p) ** gamma_pos
    if gamma_neg:
        negative = negative * (1 - one_minus_p_m) ** gamma_neg
    return -(known * (y * positive + (1 - y) * negative)).sum() / logits.shape[0]
