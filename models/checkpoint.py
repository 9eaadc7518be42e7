"""catviz checkpoints: weights in safetensors, everything else in its JSON metadata.

A checkpoint carries what the app and ``catviz-eval`` need with no other input: the
model name and arguments, class names, normalisation, input size, dataset, epoch,
metrics and the resolved training config. Loading never executes code.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from ._registry import create_model, list_models
from .cat import CAT

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


#: How the temporary files of :func:`atomic_write` end (``.<name>.<random>.catviz-tmp``): the
#: one pattern a run folder's clean-up removes, so a user's own ``*.tmp`` files are never touched.
TEMP_SUFFIX = ".catviz-tmp"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
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


def atomic_write_text(path: str | Path, text: str) -> None:
    """``path.write_text(text)``, atomically (see :func:`atomic_write`): a results file is whole or as it was."""
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


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
    """The metadata alone, validated (cheap: the weights are not read).

    Everything in it is untrusted: each field's type and range is checked and an error
    names the file and the field. Nothing here reaches the network or another file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        why = ("corrupt or truncated safetensors file" if path.suffix.lower() == ".safetensors" else
               "not a safetensors file; pickled .pt/.pth files are refused because loading them can run code")
        raise CheckpointError(f"{path}: not a catviz checkpoint ({why}: {err})") from err
    if metadata.get("format") != FORMAT or "catviz" not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a catviz checkpoint (no catviz metadata)")
    try:
        fields = json.loads(metadata["catviz"])
    except (ValueError, RecursionError) as err:  # JSONDecodeError, or an integer too long to convert
        raise CheckpointError(f"{path}: catviz metadata is not valid JSON ({err})") from err
    try:
        return validate_meta(fields)
    except ValueError as err:
        raise CheckpointError(f"{path}: invalid metadata: {err}") from err


#: The smallest input any registered model accepts (the backbones' total stride).
MIN_INPUT_SIZE = 32
MAX_INPUT_SIZE = 4096
MAX_CLASSES = 100_000

#: CAT's own default, used when model_args does not set num_heads.
DEFAULT_HEADS = inspect.signature(CAT).parameters["num_heads"].default
#: Plain timm architecture names (with an optional ``.tag``): no ``hf-hub:`` prefix, no paths.
_TIMM_NAME = re.compile(r"[A-Za-z0-9_]{1,100}(\.[A-Za-z0-9_]{1,100})?")
_CAT_ARGS = ("backbone", "fpn_channels", "fpn_out_conv", "num_heads", "lrd_layers", "mlp_ratio", "dropout",
             "use_lrd", "clf")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _check(ok: bool, name: str, value, expected: str) -> None:
    if not ok:
        shown = repr(value)
        raise ValueError(f"{name} must be {expected}, got {shown[:80]}{' ...' if len(shown) > 80 else ''}")


def validate_meta(fields) -> CheckpointMeta:
    """A :class:`CheckpointMeta` from decoded JSON, or ``ValueError`` naming the bad field."""
    _check(isinstance(fields, dict), "the metadata", fields, "a JSON object")
    known = {f.name for f in dataclasses.fields(CheckpointMeta)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown[:5]))}")
    for required in ("model", "class_names"):
        if required not in fields:
            raise ValueError(f"missing field {required!r}")
    model = fields["model"]
    _check(isinstance(model, str) and model in list_models(), "model", model,
           f"one of {', '.join(list_models())}")
    names = fields["class_names"]
    _check(isinstance(names, list) and 0 < len(names) <= MAX_CLASSES, "class_names", names,
           f"a non-empty list (at most {MAX_CLASSES:,})")
    for i, name in enumerate(names):
        _check(isinstance(name, str) and name.strip() != "", f"class_names[{i}]", name, "a non-empty string")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"class_names has duplicates: {', '.join(map(repr, duplicates[:5]))}")
    out = dict(fields)
    if "input_size" in fields:
        size = fields["input_size"]
        _check(_is_int(size) and MIN_INPUT_SIZE <= size <= MAX_INPUT_SIZE, "input_size", size,
               f"an integer in [{MIN_INPUT_SIZE}, {MAX_INPUT_SIZE}]")
    for key in ("mean", "std"):
        if key in fields:
            values = fields[key]
            _check(isinstance(values, list) and len(values) == 3 and all(map(_is_number, values)), key, values,
                   "three finite numbers")
            out[key] = tuple(float(v) for v in values)
    if "std" in fields:
        _check(min(out["std"]) > 0, "std", fields["std"], "positive")
    if "epoch" in fields:
        _check(_is_int(fields["epoch"]) and fields["epoch"] >= 0, "epoch", fields["epoch"], "an integer >= 0")
    if "dataset" in fields:
        _check(isinstance(fields["dataset"], str), "dataset", fields["dataset"], "a string")
    for key in ("metrics", "config", "model_args"):
        if key in fields:
            _check(isinstance(fields[key], dict), key, fields[key], "a JSON object")
    validate_model_args(model, fields.get("model_args", {}))
    return CheckpointMeta(**out)


def validate_model_args(model: str, args: dict) -> None:
    """Only the arguments a variant takes, in bounded ranges; never pretrained weights.

    A checkpoint's weights come from the file itself: ``pretrained``/``pretrained_file``
    would make opening it go online or read another path, so they are refused.
    """
    allowed = ("backbone",) if model.startswith("baseline") else _CAT_ARGS
    for key, value in args.items():
        name = f"model_args.{key}"
        if key in ("pretrained", "pretrained_file"):
            raise ValueError(f"{name} is not allowed in a checkpoint (its weights are in the file itself)")
        if key not in allowed:
            raise ValueError(f"{name} is not an argument of {model!r} (allowed: {', '.join(allowed)})")
        if key == "backbone":
            _check(isinstance(value, str) and _TIMM_NAME.fullmatch(value) is not None and timm.is_model(value),
                   name, value, "a timm model name (hub names are not allowed)")
        elif key == "fpn_channels":
            _check(_is_int(value) and 8 <= value <= 2048 and value % 4 == 0, name, value,
                   "an integer in [8, 2048] divisible by 4")
        elif key == "num_heads":
            _check(_is_int(value) and 1 <= value <= 64, name, value, "an integer in [1, 64]")
        elif key == "lrd_layers":
            _check(_is_int(value) and 0 <= value <= 12, name, value, "an integer in [0, 12]")
        elif key == "mlp_ratio":
            _check(_is_number(value) and 0 < value <= 8, name, value, "a number in (0, 8]")
        elif key == "dropout":
            _check(_is_number(value) and 0 <= value < 1, name, value, "a number in [0, 1)")
        elif key == "fpn_out_conv":
            _check(value in ("3x3", "1x1", "none"), name, value, "'3x3', '1x1' or 'none'")
        elif key == "use_lrd":
            _check(isinstance(value, bool), name, value, "true or false")
        elif key == "clf":
            _check(value in ("pma", "mha", None), name, value, "'pma', 'mha' or null")
    channels, heads = args.get("fpn_channels"), args.get("num_heads", DEFAULT_HEADS)
    if channels is not None and channels % heads:
        raise ValueError(f"model_args.fpn_channels ({channels}) must be divisible by model_args.num_heads ({heads})")


def _declared_tensors(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Name → (shape, dtype) of the weights, from the safetensors header only."""
    with safe_open(str(path), framework="pt") as f:
        return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype())
                for k in f.keys() if not k.startswith(RESUME_PREFIX)}


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model a checkpoint describes and load its weights (strictly).

    The model is first built on the ``meta`` device (no memory) and its parameter
    shapes compared with the file's declared tensors, so a checkpoint can never make
    us allocate more than its own tensors; only then is it built for real, always with
    ``pretrained=False``. Non-finite weights are refused.
    """
    path = Path(path)
    meta = read_meta(path)
    try:
        with torch.device("meta"):
            skeleton = create_model(meta.model, meta.num_classes, pretrained=False, **meta.model_args)
    except (ValueError, TypeError, RuntimeError, AssertionError, IndexError) as err:
        raise CheckpointError(f"{path}: cannot rebuild model {meta.model!r}: {err}") from err
    stride = getattr(skeleton, "min_input_size", MIN_INPUT_SIZE)
    if meta.input_size < stride:
        raise CheckpointError(f"{path}: invalid metadata: input_size {meta.input_size} is below the model's stride {stride}")
    try:
        declared = _declared_tensors(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: weights are corrupt or truncated ({err})") from err
    check_shapes({k: v.shape for k, v in skeleton.state_dict().items()}, {k: s for k, (s, _) in declared.items()}, path)
    del skeleton
    model = create_model(meta.model, meta.num_classes, pretrained=False, **meta.model_args)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            state = {k: f.get_tensor(k) for k in declared}
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"{path}: weights are corrupt or truncated ({err})") from err
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weight {key} holds NaN or infinite values")
    load_weights(model, state, path)
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
    check_shapes({k: v.shape for k, v in model.state_dict().items()}, {k: v.shape for k, v in state.items()}, source)
    model.load_state_dict(state)


def check_shapes(own: dict, given: dict, source: str | Path) -> None:
    """Raise :class:`CheckpointError` unless both name → shape maps agree exactly."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mismatched = sorted(k for k in own.keys() & given.keys() if tuple(own[k]) != tuple(given[k]))
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", mismatched))
            if keys
        )
        raise CheckpointError(f"{source}: weights do not fit model ({details})")
