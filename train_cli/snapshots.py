"""Snapshots: a run's model kept at chosen epochs, ``RUN/snapshots/epoch-NNN.safetensors``.

Each snapshot is a normal catviz checkpoint (weights + metadata, no resume state), written
atomically like ``best``: the app and ``catviz-eval`` open it as they open ``best``. With
``--ema`` it holds the EMA weights, the ones that are evaluated (``metrics["weights"]``
says which). Which epochs: every ``--snapshot-every K``-th and those listed in
``--snapshot-epochs 1,2,4``.
"""

from __future__ import annotations

import re
from pathlib import Path

FOLDER = "snapshots"
_NAME = re.compile(r"epoch-(\d{3,})\.safetensors")


def path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / FOLDER / f"epoch-{epoch:03d}.safetensors"


def parse_epochs(text: str) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``; ``ValueError`` naming the first entry that is not an integer >= 1."""
    epochs = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not item.isdigit() or int(item) < 1:
            raise ValueError(f"{item!r} is not an epoch number >= 1")
        epochs.add(int(item))
    return sorted(epochs)


def due(epoch: int, every: int, listed: str) -> bool:
    """Whether the run keeps a snapshot after ``epoch`` (counted from 1)."""
    return bool(every and epoch % every == 0) or (bool(listed) and epoch in parse_epochs(listed))


def find(run_dir: Path) -> dict[int, Path]:
    """Epoch → snapshot file of a run folder, in epoch order (temporary files of a write under way are not listed)."""
    folder = Path(run_dir) / FOLDER
    found = {}
    if folder.is_dir():
        for file in folder.iterdir():
            match = _NAME.fullmatch(file.name)
            if match and file.is_file():
                found[int(match.group(1))] = file
    return dict(sorted(found.items()))
