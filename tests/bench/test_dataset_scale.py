"""bench/dataset.py's COCO-scale models: random tiny checkpoints set to predict ~3 of 80 labels."""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import dataset  # noqa: E402

from catviz.inference import load_model  # noqa: E402


def test_the_synthetic_models_predict_about_as_many_labels_as_trained_ones(tmp_path):
    torch.manual_seed(0)
    images = torch.randn(256, 3, 32, 32)
    plain = dataset.scale_checkpoints(tmp_path / "plain", ["baseline_tiny", "cat_tiny"], 32)
    calibrated = dataset.scale_checkpoints(tmp_path / "set", ["baseline_tiny", "cat_tiny"], 32, calibration=images)
    for before, after in zip(plain, calibrated, strict=True):
        counts = {}
        for name, path in (("plain", before), ("calibrated", after)):
            model = load_model(path, torch.device("cpu")).model
            with torch.no_grad():
                counts[name] = float((model(images).logits > 0).sum(1).float().mean())
        assert counts["plain"] > 20, counts  # random: about half of the 80 labels
        assert 1.5 <= counts["calibrated"] <= 4.5, counts  # ~LABELS_PER_IMAGE, the mean over its images
