"""torchrun detection: ranks from the environment, one flag gating writes and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """The ranks torchrun announces (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), before or
    without joining the process group: e.g. to let rank 0 alone check an output folder."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ.get("RANK", 0)), world, int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: torch.device, timeout: timedelta | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (``RANK``/``WORLD_SIZE`` set).
    ``timeout``: how long a collective waits for the slowest rank (None: torch's default)."""
    info = env_info()
    if not info.enabled:
        return info
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timeout)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def gather_rows(rows: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate every rank's (n_r, ...) CPU tensor on all ranks (gloo-safe)."""
    if not info.enabled:
        return rows
    parts: list = [None] * info.world_size
    dist.all_gather_object(parts, rows)
    return torch.cat(parts)


def gather_to_main(obj: Any, info: DistInfo, timeout: timedelta | None = None) -> list[Any] | None:
    """Every rank's picklable ``obj``, in rank order, on rank 0 (None on the others), then a
    barrier, so no rank leaves while rank 0 still reads. Sent through a CPU (gloo) group
    whatever the main backend: the objects are host data (numpy arrays), and NCCL would
    copy their pickles through GPU memory."""
    if not info.enabled:
        return [obj]
    group = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=timeout)
    parts: list | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, parts, dst=0, group=group)
    dist.barrier(group=group)
    return parts
