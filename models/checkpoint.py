"""catviz checkpoints: weights in safetensors, everything else in its JSON metadata.

A checkpoint carries what the app and ``catviz-eval`` need with no other input: the
model name and arguments, class names, normalisation, input size, dataset, epoch,
metrics and the resolved training config. Loading never executes code.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ._registry import create_model

FORMAT = "catviz/1"


class CheckpointError(ValueError):
    """A file that is not a usable catviz checkpoint; the message names it."""


@dataclass
class CheckpointMeta:
    model: str
    class_names: list[str]
    model_args: dict = field(default_factory=dict)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    input_size: int = 448
    dataset: str = ""
    epoch: int = 0
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under DDP (``module.``) and ``torch.compile`` (``_orig_mod.``)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Tensors under this prefix are training state (see ``train_cli.state``), not weights.
RESUME_PREFIX = "resume/"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: CheckpointMeta,
    resume_tensors: dict[str, torch.Tensor] | None = None,
    resume_skeleton: str | None = None,
) -> None:
    """Write weights + metadata (+ optional resume state) atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    metadata = {"format": FORMAT, "catviz": json.dumps(asdict(meta))}
    if resume_skeleton is not None:
        state |= resume_tensors or {}
        metadata["resume"] = resume_skeleton
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata=metadata))


def read_meta(path: str | Path) -> CheckpointMeta:
    """The metadata alone (cheap: the weights are not read)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a catviz checkpoint (not a readable safetensors file: {err}); "
            "pickled .pt/.pth files are refused because loading them can run code"
        ) from err
    if metadata.get("format") != FORMAT or "catviz" not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a catviz checkpoint (no catviz metadata)")
    try:
        fields = json.loads(metadata["catviz"])
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        return CheckpointMeta(**fields)
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise CheckpointError(f"{path}: catviz metadata is malformed ({err})") from err


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights (strictly)."""
    meta = read_meta(path)
    try:
        model = create_model(meta.model, meta.num_classes, **meta.model_args)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: cannot rebuild model {meta.model!r}: {err}") from err
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: weights are corrupt or truncated ({err})") from err
    load_weights(model, {k: v for k, v in state.items() if not k.startswith(RESUME_PREFIX)}, path)
    return model.to(device), meta


def read_resume(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The resume tensors and JSON skeleton of a ``last`` checkpoint."""
    with safe_open(str(path), framework="pt") as f:
        skeleton = (f.metadata() or {}).get("resume")
        if skeleton is None:
            raise CheckpointError(f"{path}: has no resume state (only 'last' checkpoints do)")
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith(RESUME_PREFIX)}
    return tensors, skeleton


def load_weights(model: nn.Module, state: dict, source: str | Path) -> None:
    """``load_state_dict(strict=True)`` with an error that says what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", mismatched))
            if keys
        )
        raise CheckpointError(f"{source}: weights do not fit model ({details})")
    model.load_state_dict(state)
