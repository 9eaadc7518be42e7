"""Device selection shared by training, evaluation and the app."""

from __future__ import annotations

import torch

#: Device types catviz runs on (what ``auto`` can pick).
SUPPORTED = ("cpu", "cuda", "mps")


def default_device() -> torch.device:
    """CUDA when available, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(name: str | None) -> torch.device:
    """``None``/``"auto"`` → :func:`default_device`; otherwise a validated device."""
    if name in (None, "auto"):
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's message lists ~20 device types catviz does not run on
        device = None
    if device is None or device.type not in SUPPORTED:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} requested but Apple's MPS is not available; use 'cpu'")
    return device


def available_devices() -> list[str]:
    """Device names a user can pick: the CPU and each CUDA device."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
