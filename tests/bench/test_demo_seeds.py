"""bench/demo_seeds.py: the paired difference, its t-interval and the median seed, from a results file."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from catviz.models.checkpoint import read_meta
from catviz.train_cli.config import DEMO_CPU_ISA, DEMO_THREADS, DEMO_TRUNK
from catviz.train_cli.side_by_side import recorded_isa

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


def test_ablations_are_paired_with_the_baseline_and_the_curves_are_drawn_once(tmp_path):
    results = run({0: (70.0, 71.0), 1: (80.0, 82.0)})
    for seed, fpn in (("0", 72.0), ("1", 84.0)):
        results["runs"][seed]["fpn_tiny"] = {"final": {"mAP": fpn, "CF1": 60.0, "OF1": 61.0}, "best_mAP": fpn,
                                             "size_mAP": {"small": 1.0, "medium": 2.0, "large": 3.0},
                                             "curve_mAP": [50.0, 60.0, 70.0, 71.0, 71.2, 71.4, fpn]}
    results["runs"]["1"]["fpn_tiny"]["curve_mAP"] += [84.1, 84.2]  # trained on until converged: 9 epochs
    for seed, epochs in (("0", 7), ("1", 9)):
        results["runs"][seed]["fpn_tiny"]["epochs"] = epochs
    results["runs"]["0"]["cat_mha_tiny"] = {"final": {"mAP": 73.5, "CF1": 60.0, "OF1": 61.0}, "best_mAP": 73.5,
                                            "size_mAP": {"small": 1.0, "medium": 2.0, "large": 3.0}}
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps(results))
    plot = tmp_path / "curves.png"
    command = [sys.executable, "bench/demo_seeds.py", "--summary", "--json", str(path), "--plot", str(plot)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "| fpn_tiny | 2 | +3.0 | [-9.7, +15.7] |" in done.stdout  # fpn - baseline: +2, +4
    assert "| 60.0 ± 0.0 | 61.0 ± 0.0 |" in done.stdout
    assert "| cat_mha_tiny | 1 | 73.5 | 60.0 | 61.0 | 73.5 |" in done.stdout  # one seed: no "± nan"
    assert "| cat_mha_tiny | 1 | +3.5 | – (one seed) |" in done.stdout
    # CAT − fpn: 71 - 72 = -1, 82 - 84 = -2 (mean -1.5, t(0.975, 1) = 12.71, sd 0.707: ± 6.4); small: 61 - 1, 72 - 1
    assert "| fpn_tiny | 2 | -1.5 | [-7.9, +4.9] | +65.5 | [-4.4, +135.4] |" in done.stdout
    assert "| cat_mha_tiny | 1 | -2.5 | – (one seed) | +60.0 | – (one seed) |" in done.stdout
    # last 5 epochs: seed 0 moves 72.0 - 70.0 = 2.00, seed 1 84.2 - 71.2 = 13.00; epochs 7 and 9
    assert "| 8.0, 7-9 | 7.50, 13.00 |" in done.stdout
    assert "| cat_mha_tiny | 1 | 73.5 | 60.0 | 61.0 | 73.5 | 1.0 | 2.0 | 3.0 | – | – |" in done.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_jobs_train_runs_side_by_side_on_one_thread_each_and_a_rerun_skips_them(tmp_path):
    results, runs = tmp_path / "seeds.json", tmp_path / "runs"
    command = [sys.executable, "bench/demo_seeds.py", "--jobs", "2", "--seeds", "0", "--models", "baseline_tiny",
               "cat_tiny", "--json", str(results), "--runs", str(runs), "--data-root", str(tmp_path / "demo"),
               "--train-args", "--epochs", "1", "--limit-images", "16", "--batch-size", "8"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    threads = DEMO_THREADS  # each run on one thread, whatever --jobs is (as make demo-models trains the shipped pair)
    rows = json.loads(results.read_text())["runs"]["0"]
    for model in ("baseline_tiny", "cat_tiny"):
        assert (rows[model]["jobs"], rows[model]["threads"]) == (2, threads)
        assert rows[model]["cpu_isa"] == recorded_isa(DEMO_CPU_ISA)
        assert read_meta(runs / "seed0" / model / "last.safetensors").config["threads"] == threads
        assert "done: 1 epochs" in (runs / "seed0" / f"{model}.log").read_text()  # its output, not interleaved
        assert f"seed 0 {model}: training, log in {runs / 'seed0' / f'{model}.log'}" in done.stdout
        assert f"seed 0 {model}: epoch 1, train loss" in done.stdout  # echoed from its log.jsonl
    assert f"2 run(s) to train, 2 at a time, {threads} thread(s) each" in done.stdout
    assert "eval:" not in done.stderr  # the scoring draws no bar between the echoed epochs
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("done, skipped") == 2


def test_runs_trained_with_other_settings_are_not_mixed_into_a_study(tmp_path):
    """The first study ran NCHW on torch's default threads: a run now (channels_last, one thread) differs in its last bits."""
    results = tmp_path / "seeds.json"
    study = run({0: (80.0, 85.0)}) | {"recipe": {"channels_last": False},
                                      "trunk": {"sha256": hashlib.sha256(Path(DEMO_TRUNK).read_bytes()).hexdigest()}}
    results.write_text(json.dumps(study))
    done = subprocess.run([sys.executable, "bench/demo_seeds.py", "--json", str(results), "--runs", str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "holds runs trained with other settings" in done.stderr
    assert json.loads(results.read_text()) == study and not (tmp_path / "runs").exists()


def test_runs_trained_on_the_cpus_own_instruction_set_are_not_mixed_into_a_study(tmp_path):
    """Same channels_last and threads, but not capped at DEMO_CPU_ISA: another order of float sums."""
    results = tmp_path / "seeds.json"
    study = run({0: (80.0, 85.0)}) | {"recipe": {"channels_last": True},
                                      "trunk": {"sha256": hashlib.sha256(Path(DEMO_TRUNK).read_bytes()).hexdigest()}}
    for row in study["runs"]["0"].values():
        row["threads"] = DEMO_THREADS
    results.write_text(json.dumps(study))
    done = subprocess.run([sys.executable, "bench/demo_seeds.py", "--json", str(results), "--runs", str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "holds runs trained with other settings" in done.stderr
    assert f"(True, {DEMO_THREADS}, 'native')" in done.stderr
    assert f"these runs: (True, {DEMO_THREADS}, '{recorded_isa(DEMO_CPU_ISA)}')" in done.stderr
    assert json.loads(results.read_text()) == study and not (tmp_path / "runs").exists()


def test_a_run_folder_of_other_settings_is_not_resumed_into_a_study(tmp_path):
    import torch

    from catviz import models
    from catviz.models.checkpoint import CheckpointMeta, save_checkpoint

    last = tmp_path / "runs" / "seed0" / "baseline_tiny" / "last.safetensors"
    last.parent.mkdir(parents=True)
    torch.manual_seed(0)
    save_checkpoint(last, models.create_model("baseline_tiny", 10),
                    CheckpointMeta(model="baseline_tiny", class_names=[str(d) for d in range(10)], input_size=128,
                                   mean=(0.5,) * 3, std=(0.25,) * 3, dataset="demo", epoch=16,
                                   config={"channels_last": False, "threads": 0}))
    done = subprocess.run([sys.executable, "bench/demo_seeds.py", "--json", str(tmp_path / "seeds.json"), "--runs",
                           str(tmp_path / "runs"), "--seeds", "0", "--models", "baseline_tiny"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and f"{last.parent} holds a run trained with other settings" in done.stderr
    assert not (tmp_path / "seeds.json").exists()


@pytest.mark.parametrize("text, where", [
    ('{"runs": {"0": {"cat_tiny": {"final": {"mAP": 7', "not valid JSON"),  # truncated
    ("[1, 2]", "the top level must be an object"),
    ('{"runs": {"0": {"cat_tiny": {"final": {"mAP": "81.9"}, "best_mAP": 82, '
     '"size_mAP": {"small": 1, "medium": 2, "large": 3}}}}}', "runs['0']['cat_tiny']['final']['mAP'] must be a number"),
    ('{"runs": {"0": {"cat_tiny": {"final": {"mAP": 81.9}, "best_mAP": 82, "size_mAP": [1, 2, 3]}}}}',
     "runs['0']['cat_tiny']['size_mAP'] must give a number"),
    ('{"runs": {"x": {}}}', "runs['x'] must be a seed number"),
    ('{"runs": {"0": {"cat_tiny": {"final": {"mAP": 1}, "best_mAP": 1, '
     '"size_mAP": {"small": 1, "medium": 2, "large": 3}, "curve_mAP": "1,2"}}}}', "['curve_mAP'] must be"),
])
def test_a_hand_edited_results_file_is_one_line_naming_it_and_the_entry(tmp_path, text, where):
    results = tmp_path / "seeds.json"
    results.write_text(text)
    done = subprocess.run([sys.executable, "bench/demo_seeds.py", "--summary", "--json", str(results)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{results}: " in done.stderr and where in done.stderr
    assert results.read_text() == text  # never rewritten
