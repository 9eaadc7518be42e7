"""bench/demo_seeds.py: the paired difference, its t-interval and the median seed, from a results file."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(seed_maps: dict[int, tuple[float, float]]) -> dict:
    sizes = lambda m: {"small": m - 10, "medium": m, "large": m + 5}  # noqa: E731
    row = lambda m: {"final": {"mAP": m}, "best_mAP": m + 1, "size_mAP": sizes(m)}  # noqa: E731
    return {"runs": {str(s): {"baseline_tiny": row(b), "cat_tiny": row(c)} for s, (b, c) in seed_maps.items()}}


def test_summary_reports_the_paired_t_interval_and_the_median_seed(tmp_path):
    results = tmp_path / "seeds.json"
    # differences CAT - baseline: +1, +2, +3 -> mean 2, sd 1, t(0.975, 2) = 4.303: CI 2 ± 2.48
    results.write_text(json.dumps(run({0: (70.0, 71.0), 1: (80.0, 82.0), 2: (75.0, 78.0)})))
    done = subprocess.run([sys.executable, "bench/demo_seeds.py", "--summary", "--json", str(results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "| final mAP | 3 | +2.0 | [-0.5, +4.5] | 0: +1.0, 1: +2.0, 2: +3.0 |" in out
    assert "| baseline_tiny | 3 | 75.0 ± 5.0 |" in out and "| cat_tiny | 3 | 77.0 ± 5.6 |" in out
    assert "median seed of CAT − baseline (final mAP): 1" in out
