"""Model side of the app, with no Qt: load checkpoints, run one image, return numpy.

Image → preprocessing (the checkpoint's own size and normalisation) → model →
:class:`~catviz.results.InferenceResult` (probabilities, per-level logits, CAMs of every
label, attention maps). Workers call these functions; views only ever see the numpy
results. What a model is — its role, levels, heads, layers and target layers — is the
model's own answer (``model.spec``, ``model.target_layers()``), never guessed here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from catviz.models.attribution import black_baseline
from catviz.models.cam import class_activation_maps
from catviz.models.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint
from catviz.models.faithfulness import auc, perturbation_curves
from catviz.models.preprocess import preprocess

from .explain import MapRequest, cam_path_share, compute_map
from .methods import DeletionScore, method_info
from .results import CLF_PREFIX, InferenceResult, attention_rollout, lrd_keys
from .roles import role_of

if TYPE_CHECKING:
    from catviz.models.outputs import ModelSpec

_logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A checkpoint's model in eval mode on a device, and where it came from."""

    path: Path
    model: nn.Module
    meta: CheckpointMeta
    device: torch.device
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spec(self) -> ModelSpec:
        """The model's own description: role, levels, heads, layers (plain data)."""
        return self.model.spec

    @property
    def role(self) -> str:
        """"baseline" or "cat": the slot this model belongs in, from its checkpoint's metadata."""
        return role_of(self.meta)

    def describe(self) -> str:
        m = self.meta
        score = f", val mAP {m.metrics['mAP']:.1f}" if "mAP" in m.metrics else ""
        return f"{m.model} ({m.num_classes} labels, {m.dataset or 'unknown data'}, epoch {m.epoch}{score}) from {self.path}"


def load_model(path: str | Path, device: torch.device) -> LoadedModel:
    model, meta = load_checkpoint(path, device)
    return LoadedModel(Path(path), model.eval(), meta, device)


def same_labels(a: LoadedModel, b: LoadedModel | None) -> bool:
    return b is None or a.meta.class_names == b.meta.class_names


def check_compatible(new: LoadedModel, other: LoadedModel | None) -> None:
    """Both panels compare the same labels: refuse a checkpoint whose classes differ."""
    if not same_labels(new, other):
        raise CheckpointError(
            f"{new.path}: its {new.meta.num_classes} labels ({', '.join(new.meta.class_names[:5])} ...) "
            f"differ from the other model's ({', '.join(other.meta.class_names[:5])} ...)"
        )


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
    grids = {level: tuple(maps.shape[-2:]) for level, maps in cams.maps.items()}
    attention = {}
    for key, weights in (out.attention or {}).items():
        w = weights[0].float().cpu().numpy()
        level = key.split(".", 1)[1]
        if key.startswith(CLF_PREFIX) and level in grids:  # (H, Nq, N) → (H, Nq, h, w) over that level's grid
            w = w.reshape(*w.shape[:2], *grids[level])
            if w.shape[1] == 1:
                w = w[:, 0]  # PMA: one pooled query → (H, h, w)
        attention[key] = w
    lrd = lrd_keys(attention)
    return InferenceResult(
        rollout=attention_rollout([attention[k] for k in lrd]) if lrd else None,
        probabilities=torch.sigmoid(out.logits[0].float()).cpu().numpy(),
        level_logits={k: v[0] for k, v in cams.level_logits.items()},
        cams={k: v[0] for k, v in cams.maps.items()},
        cam_exact=cams.exact,
        combined_cam=cams.combined[0],
        attention=attention,
        grids=grids,
        seconds=seconds,
        offsets={k: v[0] for k, v in cams.offsets.items()},
        layer_share={k: {source: v[0] for source, v in parts.items()} for k, parts in cams.layer_share.items()},
        biases={k: c.bias.detach().float().cpu().numpy() for k, c in loaded.model.classifiers.items()},
    )


def label_input(loaded: LoadedModel, image: np.ndarray, label: int) -> torch.Tensor:
    """``image`` (HWC uint8) as ``loaded``'s input on its device, once ``label`` is checked to be one of its labels."""
    if not 0 <= label < loaded.meta.num_classes:
        raise ValueError(f"label index {label} out of range for {loaded.meta.num_classes} labels")
    meta = loaded.meta
    return preprocess(image, meta.input_size, meta.mean, meta.std).to(loaded.device)


def run_deletion_auc(loaded: LoadedModel, image: np.ndarray, label: int, saliency: np.ndarray) -> DeletionScore:
    """Deletion AUC of a map for one label, relative to the intact image's probability: lower is more faithful."""
    tensor = label_input(loaded, image, label)
    with loaded.lock:
        curve = perturbation_curves(loaded.model, tensor, label, saliency, modes=("deletion",))["deletion"]
    return DeletionScore(relative_auc(curve), auc(curve))


def relative_auc(curve: np.ndarray) -> float:
    """Area under ``curve / curve[0]`` capped at 1: the deletion curve (RISE,
    :mod:`models.faithfulness`) as the share of the intact image's probability kept.

    The raw area scales with where the curve starts, so two models that lose the same share
    of their confidence at each step would score differently; this score is the same for
    both. A step that raises the probability counts as keeping all of it, so the score
    stays in [0, 1] like the raw one.
    """
    start = float(curve[0])
    if start <= 0.0:
        raise ValueError("the label's probability on the intact image is 0: there is nothing to delete")
    return auc(np.minimum(np.asarray(curve, np.float64) / start, 1.0))


def run_attribution(
    loaded: LoadedModel,
    image: np.ndarray,
    label: int,
    level: str | None,
    method: str,
    progress: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    depth: str | None = None,
) -> np.ndarray:
    """One label's map by the registered method ``method`` (:data:`catviz.methods.METHODS`),
    (H, W) at the model's input size; ``depth``: the complete CAM's (None: the input pixels).

    ``level``: the level or layer a layer method explains (None: its default, see
    :mod:`catviz.explain`); input-pixel methods (Integrated Gradients, Occlusion) attribute
    against the black image and ignore it. ``progress(fraction)`` is called as the work
    advances, and ``should_stop()`` is polled: when it returns True, :class:`Cancelled` is raised.
    """
    method_info(method)  # an unknown method is a ValueError naming those offered
    tensor, meta = label_input(loaded, image, label), loaded.meta
    request = MapRequest(black_baseline(meta.mean, meta.std).to(loaded.device), progress=progress,
                         should_stop=should_stop, depth=depth)
    with loaded.lock:
        return compute_map(method, loaded.model, tensor, label, level, request)


def run_path_share(loaded: LoadedModel, image: np.ndarray, label: int, depth: str,
                   should_stop: Callable[[], bool] | None = None) -> dict:
    """The complete CAM's path share of ``label`` at ``depth`` for ``image`` (HWC uint8):
    :func:`catviz.explain.cam_path_share`; ``should_stop()`` is polled between its backward
    passes (True: :class:`Cancelled`)."""
    tensor = label_input(loaded, image, label)
    with loaded.lock:
        return cam_path_share(loaded.model, tensor, label, depth, should_stop)
