"""The runners of the registered map methods (torch side; :mod:`catviz.methods` names them).

Every runner is ``fn(method, model, image, label, level, request) -> (H, W)`` float numpy
at the input's resolution (an :class:`~catviz.results.ExplainedMap` where the method says
more: IG's completeness delta), for one image (``image``:
(1, 3, H, W), normalised, on the model's device; the model in eval mode). ``level`` is a level name, or None for the
method's default: the complete CAM summed over levels ("combined"), the finest level for
a layer method. Input-pixel methods ignore it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from catviz.models import attribution
from catviz.models.attribution import Cancelled
from catviz.models.cam import class_activation_maps, grad_cam

from .evidence import area_resample
from .methods import DEFAULT_DEPTH, MapMethod, method_info
from .results import ExplainedMap


@dataclass
class MapRequest:
    """How to compute a map beyond what to explain: the input methods' reference (an input in
    normalised space, e.g. :func:`~catviz.models.attribution.black_baseline`), IG's path points,
    the complete CAM's depth, and the caller's progress callback and stop poll (a stop raises :class:`Cancelled`)."""

    reference: float | Tensor = 0.0
    n_steps: int = 32
    depth: str | None = None  # the complete CAM's depth (``model.spec.depths``; None: its default, the input)
    progress: Callable[[float], None] | None = None
    should_stop: Callable[[], bool] | None = None


def finest_level(model: nn.Module) -> str:
    """The level with the smallest stride: where a layer method looks for "combined"."""
    return min(model.spec.levels, key=lambda lv: lv.stride).name


def compute_map(name: str, model: nn.Module, image: Tensor, label: int, level: str | None = None,
                request: MapRequest | None = None) -> np.ndarray:
    """The registered method ``name``'s map of ``label``: (H, W) at the input's size."""
    method = method_info(name)
    request = request or MapRequest()
    if request.should_stop is not None and request.should_stop():
        raise Cancelled(f"{name} cancelled")
    return method.runner()(method, model, image, label, level, request)


def complete_cam(method: MapMethod, model, image, label, level, request) -> np.ndarray:
    """The complete CAM of ``label`` at ``request.depth`` (default: the input pixels) and
    ``level`` (None: summed over levels), on its own grid resized to the input (a coarser
    grid's cells repeated, so its values stay in logit units per cell and the mean, hence
    ``mean + offset == logit``, is kept exactly: :func:`catviz.evidence.area_resample`).

    Only the shown map is computed: below the tokens, the summed levels take one backward
    pass (not one per level) and the path share is left to :func:`cam_path_share`."""
    if level is not None and level not in model.spec.level_names:
        raise ValueError(f"no level {level!r}; this model has {', '.join(model.spec.level_names)}")
    depth = request.depth or DEFAULT_DEPTH
    cams = class_activation_maps(model, image, depth=depth, labels=[label], levels=None if level is None else [level],
                                 split_levels=level is not None, path_share=False)
    maps = cams.combined[0] if level is None else cams.maps[level][0]
    return area_resample(maps[0], tuple(image.shape[-2:]))


def cam_path_share(model: nn.Module, image: Tensor, label: int, depth: str,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """The complete CAM's path share of ``label`` at ``depth`` (below the tokens): level → route
    (``"R5"``, ``"P4"``, ``"P3"``, ``"fusion"``; the baseline's ``"S5"``; ``"offset"``) → part
    (the depth's tensors, ``"biases"``, ``"offset"``) → logit; a level's parts sum to its logit
    (:attr:`catviz.models.cam.CAMResult.path_share`). One backward pass per level, plus a
    forward-mode pass where a level has several routes: several times the map's cost.
    ``should_stop()`` is polled between the passes (True: :class:`Cancelled`)."""
    cams = class_activation_maps(model, image, depth=depth, labels=[label], should_stop=should_stop)
    return {lv: {route: {part: float(v[0, 0]) for part, v in parts.items()} for route, parts in routes.items()}
            | {"offset": {"offset": float(cams.offsets[lv][0, 0])}} for lv, routes in cams.path_share.items()}


class _GradCamProgress:
    """Stands in for the ``tqdm`` module inside pytorch_grad_cam (ScoreCAM, AblationCAM):
    its loops report progress to the calling thread's callback and stop when asked,
    and nothing is printed to the terminal."""

    _local = threading.local()

    @classmethod
    def tqdm(cls, iterable, *args, **kwargs):
        progress, should_stop = getattr(cls._local, "hooks", (None, None))
        total = len(iterable) if hasattr(iterable, "__len__") else 0
        for i, item in enumerate(iterable):
            if should_stop is not None and should_stop():
                raise Cancelled()
            yield item
            if progress is not None and total:
                progress((i + 1) / total)


def _route_grad_cam_progress() -> None:
    import pytorch_grad_cam.ablation_cam
    import pytorch_grad_cam.score_cam

    for module in (pytorch_grad_cam.score_cam, pytorch_grad_cam.ablation_cam):
        module.tqdm = _GradCamProgress


def grad_cam_map(method: MapMethod, model, image, label, level, request) -> np.ndarray:
    """The grad-cam package's class ``method.name`` on ``level``'s target layer, in [0, 1]."""
    import pytorch_grad_cam

    layer = finest_level(model) if level is None else level
    _route_grad_cam_progress()
    hooks = _GradCamProgress._local
    hooks.hooks = (request.progress, request.should_stop)
    try:
        return grad_cam(model, image, label, layer, getattr(pytorch_grad_cam, method.name))[0]
    finally:
        hooks.hooks = (None, None)


def integrated_gradients(method: MapMethod, model, image, label, level, request) -> np.ndarray:
    """Integrated Gradients from ``request.reference`` in ``request.n_steps`` path points, with
    Captum's completeness delta (``ExplainedMap.convergence_delta``)."""
    maps, deltas = attribution.integrated_gradients(
        model, image, label, baseline=request.reference, n_steps=request.n_steps, progress=request.progress,
        should_stop=request.should_stop, return_delta=True)
    return ExplainedMap(maps[0], convergence_delta=float(deltas[0]))


def occlusion(method: MapMethod, model, image, label, level, request) -> np.ndarray:
    """Occlusion by patches of ``request.reference``."""
    return attribution.occlusion(model, image, label, baseline=request.reference,
                                 progress=request.progress, should_stop=request.should_stop)[0]
