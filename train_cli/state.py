"""Resume state (optimizer, scheduler, scaler, EMA, RNG, position) inside the safetensors file.

Nested state dicts are split into their tensors, stored beside the weights under a
``resume/`` prefix, and a JSON skeleton of everything else. One file written
atomically holds weights and resume state from the same step, and reading it back
never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from catviz.models.checkpoint import RESUME_PREFIX as PREFIX
from catviz.models.checkpoint import CheckpointError, read_meta, read_resume

from .config import LENGTH, TrainConfig
from .errors import UsageError
from .schedule import converged

_logger = logging.getLogger("catviz.train")


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


#: What ``Trainer.save_last`` stores, with the type each entry must have.
REQUIRED = {
    "optimizer": dict, "scheduler": dict, "scaler": dict, "epoch": int, "step_in_epoch": int,
    "best_map": float | int, "torch_rng": torch.Tensor, "model": dict | None,
}


def read_state(path: Path, steps_per_epoch: int) -> tuple[dict, dict[str, torch.Tensor]]:
    """(resume state, weights) of a ``last`` checkpoint, checked; :class:`CheckpointError` names the file."""
    fix = "it cannot be resumed; start a new run with --overwrite or another --out"
    try:
        tensors, skeleton = read_resume(path)
        weights = {k: v for k, v in load_file(str(path)).items() if not k.startswith(PREFIX)}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable ({err}); {fix}") from err
    try:
        state = unpack(tensors, skeleton)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: resume state is malformed ({type(err).__name__}: {err}); {fix}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: resume state is malformed (not a mapping); {fix}")
    missing = sorted(set(REQUIRED) - set(state))
    if missing:
        raise CheckpointError(f"{path}: resume state is incomplete (no {', '.join(missing)}); {fix}")
    for key, kind in REQUIRED.items():
        value = state[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CheckpointError(f"{path}: resume state {key!r} has the wrong type ({type(value).__name__}); {fix}")
    epoch, step = state["epoch"], state["step_in_epoch"]
    if epoch < 0 or not 0 <= step <= steps_per_epoch:
        raise CheckpointError(
            f"{path}: resume position out of range (epoch {epoch}, step {step} of an epoch of "
            f"{steps_per_epoch} steps); {fix}"
        )
    if not math.isfinite(state["best_map"]) or state["torch_rng"].dtype != torch.uint8:
        raise CheckpointError(f"{path}: resume state has an invalid best_map or RNG state; {fix}")
    return state, weights


def map_history(state: dict, log: Path) -> list[float]:
    """The run's val mAP per epoch: from the resume state, or (a checkpoint written before it
    kept one) from the run's ``log.jsonl``; NaN where undefined. Incomplete or unreadable: ``[]``
    (the convergence test then waits for enough new epochs)."""
    epochs = state["epoch"]
    saved = state.get("map_history")
    if isinstance(saved, list) and len(saved) == epochs and all(v is None or isinstance(v, float | int) for v in saved):
        return [math.nan if v is None else float(v) for v in saved]
    by_epoch: dict[int, float] = {}
    try:
        for line in log.read_text().splitlines():
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                value = record.get("mAP")
                by_epoch[record["epoch"]] = float(value) if isinstance(value, float | int) else math.nan
    except (OSError, ValueError, UnicodeDecodeError) as err:
        _logger.warning("%s: cannot read the run's mAP history (%s); convergence is judged on new epochs only", log, err)
        return []
    if any(epoch not in by_epoch for epoch in range(1, epochs + 1)):
        _logger.warning("%s lacks some of epochs 1-%d; convergence is judged on new epochs only", log, epochs)
        return []
    return [by_epoch[epoch] for epoch in range(1, epochs + 1)]


def epoch_loss(state: dict, path: Path) -> tuple[float, int]:
    """(sum, count) of the step losses of the epoch the checkpoint stopped in. A checkpoint written
    before it kept them, or a damaged entry: ``(0.0, 0)``, so the epoch's logged train_loss averages
    only the steps after the resume (said in a warning when steps were already done)."""
    saved = state.get("epoch_loss")
    if (isinstance(saved, list) and len(saved) == 2 and type(saved[0]) in (float, int) and type(saved[1]) is int
            and math.isfinite(saved[0]) and saved[0] >= 0 and 0 <= saved[1] <= state["step_in_epoch"]
            and (saved[1] > 0 or saved[0] == 0)):
        return float(saved[0]), saved[1]
    if state["step_in_epoch"]:
        _logger.warning("%s does not hold the losses of the %d step(s) already done in epoch %d; its logged "
                        "train_loss averages the steps after the resume only", path, state["step_in_epoch"],
                        state["epoch"] + 1)
    return 0.0, 0


def unfinished(path: Path, cfg: TrainConfig) -> str | None:
    """Why the run whose ``last`` checkpoint is ``path`` would train on under ``cfg``'s length
    settings, or ``None`` when it is finished (:class:`CheckpointError` if unreadable)."""
    epoch = read_meta(path).epoch
    if epoch < cfg.epochs:
        return f"stopped at epoch {epoch} of {cfg.epochs}"
    if epoch >= cfg.max_epochs:
        return None
    tensors, skeleton = read_resume(path)
    try:
        state = unpack(tensors, skeleton)
        history = map_history(state, path.parent / "log.jsonl")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
        raise CheckpointError(f"{path}: resume state is malformed ({type(err).__name__}: {err})") from err
    if converged(history, cfg.converge_window, cfg.converge_delta):
        return None
    return f"not converged after {epoch} epochs (--max-epochs {cfg.max_epochs})"


#: May change on --resume: where and how fast the run goes, not what it computes.
OPERATIONAL = {"data_root", "workers", "threads", "cache_mib", "out", "resume", "overwrite", "allow_changed_config", "save_every",
               "snapshot_every", "snapshot_epochs",
               "device", "tensorboard", "channels_last"}
#: The saved weights or optimizer state depend on these: they never change on --resume.
STRUCTURAL = ("model", "backbone", "fpn_out_conv", "dataset", "optimizer", "ema", "amp")


def check_resume_config(cfg: TrainConfig, path: Path) -> None:
    """Refuse (:class:`UsageError`) a --resume whose settings differ from the run's, listing them.

    ``--allow-changed-config`` accepts the differences (except :data:`STRUCTURAL` ones), with a
    warning. ``epochs`` and how long to go on (``max_epochs``, ``converge_*``) may always change
    under the step schedule; cosine and onecycle depend on it.
    """
    meta = read_meta(path)
    saved = meta.config
    current = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, like the saved JSON
    ignored = OPERATIONAL | (LENGTH if cfg.schedule == "step" else set())
    changed = [k for k in current if k not in ignored and k in saved and saved[k] != current[k]]
    listed = "; ".join(f"{k}: {saved[k]!r} in the run, {current[k]!r} now" for k in changed)
    if any(k in STRUCTURAL for k in changed):
        raise UsageError(f"{path} was written by a different run ({listed}); it cannot be resumed with "
                         "these settings: use the run's settings, or another --out for a new run")
    if changed and not cfg.allow_changed_config:
        raise UsageError(f"--resume with settings that differ from the run in {path} ({listed}); "
                         "use the run's settings, or pass --allow-changed-config to continue with the new ones")
    if changed:
        _logger.warning("resuming %s with changed settings: %s", path, listed)
    longer = [f"{k} {saved[k]!r} -> {current[k]!r}" for k in sorted(LENGTH) if k in saved and saved[k] != current[k]]
    if longer and cfg.schedule == "step":
        _logger.info("resuming %s with another length: %s", path, ", ".join(longer))
    if meta.epoch >= max(cfg.epochs, cfg.max_epochs):
        most = f"--max-epochs {cfg.max_epochs}" if cfg.max_epochs else f"--epochs {cfg.epochs}"
        raise UsageError(f"{path}: the run already completed {meta.epoch} of {most}; "
                         "pass a larger --epochs (or --max-epochs) to train further")
