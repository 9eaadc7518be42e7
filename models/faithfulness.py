"""How faithful is a saliency map to the model it explains? (no Qt here)

* **Deletion / insertion** (RISE, Petsiuk et al., 2018): pixels are removed from (or
  inserted into) the image in order of the map, most salient first, in ``steps`` equal
  steps; the curve is the label's probability (sigmoid of its logit) after each step and
  the score is its area (trapezoid rule over the fraction of pixels, 0 to 1). A faithful
  map makes the probability fall fast (low deletion AUC) and rise fast (high insertion
  AUC). Deleted pixels get **0 in normalised space** (the dataset-mean colour); insertion
  starts from a **Gaussian-blurred** copy of the image (kernel 11, sigma 5, as in RISE)
  and puts back original pixels. Ties in the map are broken in a fixed random order, so
  a flat map does not delete row by row.
* **ROAD** (Rong et al., 2022) through ``pytorch_grad_cam.metrics.road.ROADCombined``:
  removed pixels are filled by noisy linear imputation from their neighbours, so the
  removal's shape leaks less; the score is (LeRF - MoRF) / 2 of the same probability,
  averaged over percentiles (higher is more faithful).
* With boxes: the **pointing game** (the map's maximum lies in a box of the label; no
  tolerance margin; a constant map is a miss) and the **share of positive map mass**
  inside the label's boxes, against the **chance level**: the boxes' share of the image.

Maps of any resolution are resized (bilinear) to the input's before scoring.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

DEFAULT_STEPS = 32
BLUR_KERNEL, BLUR_SIGMA = 11, 5.0
#: Perturbed images per model call.
CHUNK = 16


def resize_map(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized to ``size`` = (H, W), bilinear, float32."""
    saliency = np.asarray(saliency, np.float32)
    if saliency.ndim != 2:
        raise ValueError(f"a saliency map must be (h, w), got shape {saliency.shape}")
    if saliency.shape == tuple(size):
        return saliency
    return cv2.resize(saliency, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def salience_order(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat pixel indices, most salient first; ties in a fixed random order."""
    flat = saliency.ravel()
    tie_break = np.random.default_rng(seed).permutation(flat.size)
    return np.lexsort((tie_break, -flat))


def _check(model: nn.Module, image: Tensor, label: int) -> None:
    if model.training:
        raise ValueError("faithfulness needs a model in eval mode (dropout off): call model.eval() first")
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be one (1, 3, H, W) input, got {tuple(image.shape)}")
    if not 0 <= label < model.num_classes:
        raise ValueError(f"label {label} out of range for a model with {model.num_classes} labels")


@torch.no_grad()
def _probabilities(model: nn.Module, images: Tensor, label: int) -> np.ndarray:
    out = [torch.sigmoid(model(chunk).logits[:, label].float()) for chunk in images.split(CHUNK)]
    return torch.cat(out).cpu().numpy()


def perturbation_curves(
    model: nn.Module,
    image: Tensor,
    label: int,
    saliency: np.ndarray,
    steps: int = DEFAULT_STEPS,
    modes: tuple[str, ...] = ("deletion", "insertion"),
) -> dict[str, np.ndarray]:
    """Each mode's probability curve, (steps + 1,): after removing/inserting 0..N pixels."""
    _check(model, image, label)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    height, width = image.shape[-2:]
    order = torch.from_numpy(salience_order(resize_map(saliency, (height, width)))).to(image.device)
    counts = np.linspace(0, height * width, steps + 1).round().astype(int)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=image.device)
    # taken[k]: the pixels among the first counts[k] of the order, (steps + 1, 1, H, W).
    taken = (rank[None] < torch.as_tensor(counts, device=image.device)[:, None]).view(-1, 1, height, width)
    curves = {}
    for mode in modes:
        if mode == "deletion":
            batch = torch.where(taken, torch.zeros_like(image), image)
        elif mode == "insertion":
            blurred = gaussian_blur(image, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])
            batch = torch.where(taken, image, blurred)
        else:
            raise ValueError(f"unknown mode {mode!r}; choose deletion or insertion")
        curves[mode] = _probabilities(model, batch, label)
    return curves


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at equal fractions from 0 to 1 (trapezoid rule)."""
    return float(np.trapezoid(curve, np.linspace(0.0, 1.0, len(curve))))


def deletion_auc(model: nn.Module, image: Tensor, label: int, saliency: np.ndarray, steps: int = DEFAULT_STEPS) -> float:
    """Deletion AUC of ``saliency`` (h, w) for ``label`` on one (1, 3, H, W) input: lower is more faithful."""
    return auc(perturbation_curves(model, image, label, saliency, steps, ("deletion",))["deletion"])


def insertion_auc(model: nn.Module, image: Tensor, label: int, saliency: np.ndarray, steps: int = DEFAULT_STEPS) -> float:
    """Insertion AUC of ``saliency`` (h, w) for ``label`` on one (1, 3, H, W) input: higher is more faithful."""
    return auc(perturbation_curves(model, image, label, saliency, steps, ("insertion",))["insertion"])


class _LabelProbability:
    """A grad-cam target: the label's sigmoid probability (multi-label, not softmax)."""

    def __init__(self, label: int):
        self.label = label

    def __call__(self, output: Tensor) -> Tensor:
        return torch.sigmoid(output[..., self.label])


#: pytorch-grad-cam's default ``ROADCombined`` percentiles.
GRADCAM_ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def _sparse_system(mask: np.ndarray, img: np.ndarray, neighbors_weights) -> tuple:
    """grad-cam's ``NoisyLinearImputer.setup_sparse_system``, the same matrix and right-hand
    side built in one sparse constructor instead of ``lil_matrix`` element assignment (which
    took most of ROAD's time at 128², two thirds of a second per removal at 50 %)."""
    from scipy.sparse import coo_matrix

    flat_mask = mask.flatten()
    flat_img = img.reshape((img.shape[0], -1))
    height, width = mask.shape
    indices = np.flatnonzero(flat_mask == 0)
    variable = np.zeros(len(flat_mask), dtype=int)
    variable[indices] = np.arange(len(indices))
    count = len(indices)
    rhs = np.zeros((count, img.shape[0]))
    diagonal = np.ones(count)
    rows, cols, values = [np.arange(count)], [np.arange(count)], []
    for (dy, dx), weight in neighbors_weights:
        y, x = indices // width + dy, indices % width + dx
        valid = (y >= 0) & (x >= 0) & (y < height) & (x < width)
        diagonal[~valid] -= weight
        ids, coords = np.flatnonzero(valid), (indices + dy * width + dx)[valid]
        known = flat_mask[coords] > 0.5
        rhs[ids[known], :] -= weight * flat_img[:, coords[known]].T
        missing = flat_mask[coords] < 0.5
        rows.append(ids[missing])
        cols.append(variable[coords[missing]])
        values.append(np.full(int(missing.sum()), weight))
    values.insert(0, -diagonal)
    matrix = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count))
    return matrix, rhs  # the caller converts it to CSC, as it would the lil_matrix


def road_scores(
    model: nn.Module, image: Tensor, label: int, saliency: np.ndarray,
    percentiles: tuple[int, ...] = GRADCAM_ROAD_PERCENTILES,
) -> dict[int, float]:
    """grad-cam's ROADCombined score of ``saliency`` for ``label``'s probability at each
    percentile alone, ``{p: (LeRF_p - MoRF_p) / 2}``: higher is more faithful. ROADCombined
    over a set of percentiles is the mean of these. Its imputation draws noise from torch's
    global generator: seed it for repeatable scores.
    """
    from pytorch_grad_cam.metrics import road

    _check(model, image, label)
    cam = resize_map(saliency, tuple(image.shape[-2:]))[None]

    def logits(images: Tensor) -> Tensor:
        return model(images).logits

    original = road.NoisyLinearImputer.setup_sparse_system
    road.NoisyLinearImputer.setup_sparse_system = staticmethod(_sparse_system)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # grad-cam's numpy calls on tensors
            return {p: float(road.ROADCombined(percentiles=[p])(image, cam, [_LabelProbability(label)], logits)[0])
                    for p in percentiles}
    finally:
        road.NoisyLinearImputer.setup_sparse_system = staticmethod(original)


def road_score(
    model: nn.Module, image: Tensor, label: int, saliency: np.ndarray, percentiles: tuple[int, ...] = (20, 50, 80)
) -> float:
    """grad-cam's ROADCombined score of ``saliency`` over ``percentiles``: the mean of
    :func:`road_scores` (higher is more faithful)."""
    return float(np.mean(list(road_scores(model, image, label, saliency, percentiles).values())))


def boxes_mask(size: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies in any (x0, y0, x1, y1) box."""
    height, width = size
    ys, xs = np.arange(height)[:, None] + 0.5, np.arange(width)[None, :] + 0.5
    mask = np.zeros(size, bool)
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        mask |= (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return mask


def pointing_game(saliency: np.ndarray, boxes: np.ndarray) -> bool:
    """Does the map's maximum (first in row-major order on ties) lie in a box? A flat map misses."""
    if saliency.max() == saliency.min():
        return False
    y, x = np.unravel_index(np.argmax(saliency), saliency.shape)
    return bool(boxes_mask(saliency.shape, boxes)[y, x])


def box_mass_share(saliency: np.ndarray, boxes: np.ndarray) -> float:
    """Share of the map's positive mass inside the boxes; NaN for a map with none."""
    positive = np.clip(saliency, 0, None)
    total = positive.sum()
    return float(positive[boxes_mask(saliency.shape, boxes)].sum() / total) if total > 0 else float("nan")


def box_area_share(size: tuple[int, int], boxes: np.ndarray) -> float:
    """The boxes' share of the image: the box-mass share of a uniform map (chance level)."""
    return float(boxes_mask(size, boxes).mean())
