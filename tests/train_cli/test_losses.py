"""ASL against an independent transcription of the paper's formula (Ridnik, Ben-Baruch et al., ICCV 2021).

The expected values are written out from the paper, element by element in float64 with the
standard library's math, never from the project's code: p = sigmoid(z); positives
L+ = (1 - p)^gamma+ log(p); negatives, shifted by the margin m, p_m = max(p - m, 0) and
L- = p_m^gamma- log(1 - p_m); loss = -y L+ - (1 - y) L-, summed over labels, averaged over
images, difficult labels (-1) left out. Gradients: the derivative written out by hand, and
central differences of the transcription.
"""

import math

import numpy as np
import pytest
import torch

from catviz.train_cli import train
from catviz.train_cli.config import TrainConfig

GAMMA_NEG, GAMMA_POS, MARGIN = 4, 0, 0.05


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def paper_loss(z: float, y: int, gamma_neg=GAMMA_NEG, gamma_pos=GAMMA_POS, m=MARGIN) -> float:
    p = _sigmoid(z)
    if y == 1:
        return -((1 - p) ** gamma_pos) * math.log(p)
    p_m = max(p - m, 0.0)
    return -(p_m**gamma_neg) * math.log(1 - p_m)


def paper_gradient(z: float, y: int, gamma_neg=GAMMA_NEG, gamma_pos=GAMMA_POS, m=MARGIN) -> float:
    """d loss / d z by hand; dp/dz = p (1 - p)."""
    p = _sigmoid(z)
    dp = p * (1 - p)
    if y == 1:  # -(1-p)^g log p
        return -(-gamma_pos * (1 - p) ** max(gamma_pos - 1, 0) * math.log(p) * (gamma_pos > 0) + (1 - p) ** gamma_pos / p) * dp
    p_m = p - m
    if p_m <= 0:
        return 0.0
    return -(gamma_neg * p_m ** (gamma_neg - 1) * math.log(1 - p_m) - p_m**gamma_neg / (1 - p_m)) * dp


def _reference(logits: np.ndarray, targets: np.ndarray, element) -> np.ndarray:
    out = np.zeros_like(logits)
    for (i, j), z in np.ndenumerate(logits):
        if targets[i, j] >= 0:
            out[i, j] = element(float(z), int(targets[i, j]))
    return out


@pytest.fixture
def batch():
    rng = np.random.default_rng(26)
    logits = rng.normal(0, 3, size=(6, 11))
    logits[0, :4] = [-3.0, -2.944, -2.9, 0.0]  # around p = m (z = logit(0.05) = -2.944)
    targets = rng.choice([1, 0, 0, -1], size=logits.shape)
    return logits, targets


def _project_asl():
    return train.make_loss(TrainConfig(loss="asl"))  # the loss exactly as catviz-train trains with it


def test_asl_values_match_the_papers_formula(batch):
    logits, targets = batch
    loss = _project_asl()(torch.tensor(logits), torch.tensor(targets, dtype=torch.float64))
    expected = _reference(logits, targets, paper_loss).sum() / logits.shape[0]
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_asl_gradients_match_the_derivative_of_the_formula(batch):
    logits, targets = batch
    z = torch.tensor(logits, requires_grad=True)
    _project_asl()(z, torch.tensor(targets, dtype=torch.float64)).backward()
    by_hand = _reference(logits, targets, paper_gradient) / logits.shape[0]
    h = 1e-6
    numeric = _reference(logits, targets, lambda v, y: (paper_loss(v + h, y) - paper_loss(v - h, y)) / (2 * h))
    numeric /= logits.shape[0]
    np.testing.assert_allclose(by_hand, numeric, atol=1e-7)  # the hand derivative is right
    np.testing.assert_allclose(z.grad.numpy(), by_hand, rtol=1e-8, atol=1e-12)
    assert (z.grad.numpy()[targets == -1] == 0).all()  # difficult labels carry no loss


@pytest.mark.parametrize("gammas", [(2, 1), (4, 0)])
def test_other_focusing_parameters_follow_the_formula_too(batch, gammas):
    from catviz.train_cli.losses import asymmetric_loss

    logits, targets = batch
    gamma_neg, gamma_pos = gammas
    loss = asymmetric_loss(torch.tensor(logits), torch.tensor(targets, dtype=torch.float64), gamma_neg, gamma_pos)
    expected = _reference(logits, targets, lambda z, y: paper_loss(z, y, gamma_neg, gamma_pos)).sum() / logits.shape[0]
    assert loss.item() == pytest.approx(expected, rel=1e-10)
