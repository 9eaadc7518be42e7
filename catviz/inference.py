"""Model side of the app, with no Qt: load checkpoints, run one image, return numpy.

Image → preprocessing (the checkpoint's own size and normalisation) → model →
:class:`InferenceResult` (probabilities, per-level logits, CAMs of every label,
attention maps). Workers call these functions; views only ever see the numpy results.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.cam import class_activation_maps, grad_cam
from models.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint
from models.preprocess import preprocess

_logger = logging.getLogger(__name__)

GRAD_CAM_METHODS = ("GradCAM", "GradCAMPlusPlus", "XGradCAM", "EigenCAM", "ScoreCAM", "LayerCAM", "HiResCAM")


@dataclass
class LoadedModel:
    """A checkpoint's model in eval mode on a device, and where it came from."""

    path: Path
    model: nn.Module
    meta: CheckpointMeta
    device: torch.device
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def kind(self) -> str:
        return "baseline" if self.meta.model.startswith("baseline") else "cat"

    def describe(self) -> str:
        m = self.meta
        score = f", val mAP {m.metrics['mAP']:.1f}" if "mAP" in m.metrics else ""
        return f"{m.model} ({m.num_classes} labels, {m.dataset or 'unknown data'}, epoch {m.epoch}{score}) from {self.path}"


def load_model(path: str | Path, device: torch.device) -> LoadedModel:
    model, meta = load_checkpoint(path, device)
    return LoadedModel(Path(path), model.eval(), meta, device)


def check_compatible(new: LoadedModel, other: LoadedModel | None) -> None:
    """Both panels compare the same labels: refuse a checkpoint whose classes differ."""
    if other is not None and new.meta.class_names != other.meta.class_names:
        raise CheckpointError(
            f"{new.path}: its {new.meta.num_classes} labels ({', '.join(new.meta.class_names[:5])} ...) "
            f"differ from the other model's ({', '.join(other.meta.class_names[:5])} ...)"
        )


@dataclass
class InferenceResult:
    """Everything the views show for one image and one model, as numpy arrays."""

    probabilities: np.ndarray  # (L,)
    level_logits: dict[str, np.ndarray]  # level → (L,)
    cams: dict[str, np.ndarray]  # level → (L, h, w), logit units
    cam_exact: dict[str, bool]
    combined_cam: np.ndarray  # (L, H, W) on the finest level's grid
    attention: dict[str, np.ndarray]  # "lrd.i": (H, N5, N5); "clf.P4"/"clf.P3": (H, h, w) or (H, Nq, h, w)
    grids: dict[str, tuple[int, int]]  # level → (h, w)
    seconds: float


def run_model(loaded: LoadedModel, image: np.ndarray) -> InferenceResult:
    """One forward pass for the outputs, attention and the CAMs of every label."""
    meta = loaded.meta
    tensor = preprocess(image, meta.input_size, meta.mean, meta.std).to(loaded.device)
    with loaded.lock, torch.no_grad():
        start = time.perf_counter()
        out = loaded.model(tensor, return_attention=True, return_features=True)
        cams = class_activation_maps(loaded.model, tensor, out)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    size = meta.input_size
    reductions = loaded.model.backbone.feature_info.reduction()
    strides = dict(zip(("P3", "P4", "P5") if len(reductions) == 3 else ("S5",), reductions, strict=True))
    grids = {level: (-(-size // stride), -(-size // stride)) for level, stride in strides.items()}
    attention = {}
    for key, weights in (out.attention or {}).items():
        w = weights[0].float().cpu().numpy()
        if key.startswith("clf."):  # (H, Nq, N) → (H, Nq, h, w) over the lower level's grid
            w = w.reshape(*w.shape[:2], *grids[key.split(".")[1]])
            if w.shape[1] == 1:
                w = w[:, 0]  # PMA: one pooled query → (H, h, w)
        attention[key] = w
    return InferenceResult(
        probabilities=torch.sigmoid(out.logits[0].float()).cpu().numpy(),
        level_logits={k: v[0] for k, v in cams.level_logits.items()},
        cams={k: v[0] for k, v in cams.maps.items()},
        cam_exact=cams.exact,
        combined_cam=cams.combined[0],
        attention=attention,
        grids=grids,
        seconds=seconds,
    )


def run_grad_cam(loaded: LoadedModel, image: np.ndarray, label: int, level: str, method: str) -> np.ndarray:
    """A grad-cam package method's (H, W) map in [0, 1] at the model's input size."""
    import pytorch_grad_cam

    meta = loaded.meta
    tensor = preprocess(image, meta.input_size, meta.mean, meta.std).to(loaded.device)
    with loaded.lock:
        return grad_cam(loaded.model, tensor, label, level, getattr(pytorch_grad_cam, method))[0]


def attention_rollout(lrd_layers: list[np.ndarray]) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) over LRD layers: (N5, N5).

    Heads are averaged, the residual path is added as identity (0.5 A + 0.5 I, rows
    renormalised) and layers are multiplied in order.
    """
    rollout = np.eye(lrd_layers[0].shape[-1])
    for weights in lrd_layers:
        a = 0.5 * weights.mean(0) + 0.5 * np.eye(weights.shape[-1])
        rollout = (a / a.sum(-1, keepdims=True)) @ rollout
    return rollout
