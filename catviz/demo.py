"""The bundled demo: two checkpoints and sample images, package data of ``catviz.assets``.

The repository keeps them in the top-level ``assets/`` folder; ``pyproject.toml`` maps that
folder to the package ``catviz.assets``, so an editable install and an installed wheel (pip,
pipx) find them the same way, through :mod:`importlib.resources`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

# pip and pipx install packages as files, so the package data has a file-system path.
ASSETS = Path(str(resources.files("catviz.assets")))
DEMO_CHECKPOINTS = {"baseline": ASSETS / "demo_baseline.safetensors", "cat": ASSETS / "demo_cat.safetensors"}
SAMPLES = ASSETS / "samples"


def demo_available() -> bool:
    return all(p.is_file() for p in DEMO_CHECKPOINTS.values())


def sample_images() -> tuple[list[Path], dict[Path, set[str]]]:
    """Sample image paths and the ground truth of those that have one."""
    truth_file = SAMPLES / "ground_truth.json"
    truth = json.loads(truth_file.read_text()) if truth_file.is_file() else {}
    paths = sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    return paths, {SAMPLES / name: set(labels) for name, labels in truth.items()}
