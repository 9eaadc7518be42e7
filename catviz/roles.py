"""The two model slots the app compares, stated once (no torch, no Qt).

Every view, the state, the dataset report and the CLIs read the slots and their titles
from here. A checkpoint's slot follows from its model name (see :func:`role_of`).
"""

from __future__ import annotations

from typing import Protocol

#: Slot name → the title panels, tables and headers show; the order is the panels' order.
ROLE_TITLES = {"baseline": "Baseline", "cat": "CAT"}
ROLES = tuple(ROLE_TITLES)


class _HasModelName(Protocol):
    model: str


def role_of(meta: _HasModelName) -> str:
    """``"baseline"`` or ``"cat"``: which slot a checkpoint belongs in, from its model name
    alone (``meta``: a :class:`catviz.models.checkpoint.CheckpointMeta`)."""
    return "baseline" if meta.model.startswith("baseline") else "cat"
