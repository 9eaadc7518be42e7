"""The two model slots the app compares, stated once (no torch, no Qt).

Every view, the state, the dataset report and the CLIs read the slots and their titles
from here. A checkpoint's slot follows from its model name (see :func:`role_of`); any
loaded model can be put in either slot (``AppState.loaded``, the Models menu), and the
Dataset tab compares every loaded model by its :func:`model_names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
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


class _Loaded(Protocol):
    path: Path
    meta: _HasModelName


def model_names(models: Sequence[_Loaded]) -> list[str]:
    """Each loaded model's name as ``catviz-eval`` prints it, ``model (file stem)`` (more of
    the path where two would read the same): the Dataset tab's rows and the report's."""
    from catviz.train_cli.evaluate import row_names  # torch: loaded with the models already

    return row_names([m.meta.model for m in models], [m.path for m in models])


def default_reference(models: Sequence[_Loaded]) -> int:
    """Index of the model the others are compared with by default, as ``catviz-eval
    --compare`` chooses it: the first baseline model, else the first one."""
    return next((k for k, m in enumerate(models) if role_of(m.meta) == "baseline"), 0)
