"""``make gpu-check`` without a GPU: it says so and dry-runs every step on the CPU (what CI runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("models fp32", "models bf16", "train bf16 channels_last", "demo epoch bf16", "app offscreen", "torchrun")


@pytest.mark.slow
def test_without_a_gpu_every_step_runs_on_the_cpu_and_bench_results_stay_untouched(tmp_path):
    results = ROOT / "bench" / "results"
    def benchmark_files():  # what the benchmarks it runs would write by default
        return {p.name: p.stat().st_mtime_ns for p in results.iterdir() if p.name.startswith(("models-", "train-", "app-", "gpu-check"))}

    before = benchmark_files()
    summary_file = tmp_path / "check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU visible: the check must fall back by itself
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--json", str(summary_file)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "no CUDA GPU on this machine" in done.stdout
    summary = json.loads(summary_file.read_text())
    assert summary["dry_run"] is True
    steps = summary["steps"]
    assert [s["name"].split(" 64")[0].split(" (")[0].removesuffix(" gloo") for s in steps] == list(STEPS)
    for step in steps:
        assert step["status"] == "ok" and step["key"], step
        assert step["name"] in done.stdout  # the table
    assert "bf16" in " ".join(steps[1]["command"]) and "--channels-last" in steps[2]["command"]
    assert "cpu" in steps[3]["command"] and "--amp" in steps[3]["command"]
    assert benchmark_files() == before
    demo_run = Path(steps[3]["command"][steps[3]["command"].index("--out") + 1])
    assert not demo_run.parent.exists()  # its temp folder is removed: nothing piles up in /tmp
