"""Resume state (optimizer, scheduler, scaler, EMA, RNG, position) inside the safetensors file.

Nested state dicts are split into their tensors, stored beside the weights under a
``resume/`` prefix, and a JSON skeleton of everything else. One file written
atomically holds weights and resume state from the same step, and reading it back
never unpickles anything.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from models.checkpoint import RESUME_PREFIX as PREFIX


def flatten(obj: Any, tensors: dict[str, torch.Tensor], key: str = "") -> Any:
    """Replace each tensor in ``obj`` by ``{"__tensor__": name}``, collecting it in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        name = PREFIX + key
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if not all(isinstance(k, str | int) for k in obj):
            raise TypeError(f"state key types not supported at {key!r}")
        # JSON keys are strings: remember which were ints (optimizer param ids).
        return {
            "__dict__": [[k, flatten(v, tensors, f"{key}.{k}" if key else str(k))] for k, v in obj.items()]
        }
    if isinstance(obj, list | tuple):
        return [flatten(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {key!r} in a checkpoint")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        return {k: unflatten(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def pack(state: dict) -> tuple[dict[str, torch.Tensor], str]:
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    return tensors, json.dumps(skeleton)


def unpack(tensors: dict[str, torch.Tensor], skeleton: str) -> dict:
    return unflatten(json.loads(skeleton), tensors)
