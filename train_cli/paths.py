"""Telling same-named files apart in a list (no torch): table rows, the app's image list."""

from __future__ import annotations

from pathlib import Path


def distinct_tail(path: Path, others: list[Path]) -> Path:
    """The fewest last parts of ``path`` that none of ``others`` ends with (``a``, else
    ``x/a`` ...): how a list tells apart same-named files. All of ``path`` if nothing does."""
    others = [other for other in others if other != path]
    for k in range(1, len(path.parts) + 1):
        if all(other.parts[-k:] != path.parts[-k:] for other in others):
            return Path(*path.parts[-k:])
    return path
