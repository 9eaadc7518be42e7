"""``torchrun --nproc_per_node K -m catviz.eval_cli C1 C2 --compare --report DIR``: each process
a shard of the images, one results cache, rank 0 writes the report: the same report as one
process."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from catviz import eval_cli, inference
from catviz.dataset_results import run_dataset
from catviz.dataset_shards import shard_bounds
from catviz.dataset_source import open_dataset
from catviz.train_cli.distributed import DistInfo
from tests.catviz.dataset_fixtures import small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CATVIZ_CACHE_DIR", str(tmp_path / "cache"))
    return write_boxes_dataset(tmp_path / "data", broken=(3,))


def args(paths, data_root, report) -> list[str]:
    return [*map(str, paths), "--compare", "--report", str(report), "--dataset", "coco-format", "--data-root",
            str(data_root), "--workers", "0", "--batch-size", "2", "--bootstrap", "100", "--seed", "5"]


def assert_same(a, b, where="report.json"):
    """Equal JSON trees, floats to float32 tolerance (a shard's batches may be computed with
    other kernels than one process's); strings, counts and shapes exactly."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{k}]")
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), f"{where}: {a} != {b}"
    else:
        assert a == b, where


def assert_same_report(single: Path, sharded: Path) -> None:
    assert_same(json.loads((single / "report.json").read_text()), json.loads((sharded / "report.json").read_text()))
    one, many = np.load(single / "scores.npz"), np.load(sharded / "scores.npz")
    assert sorted(one.files) == sorted(many.files)
    for key in one.files:
        if one[key].dtype.kind in "fc":
            np.testing.assert_allclose(one[key], many[key], rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(one[key], many[key], err_msg=key)


def test_shards_end_on_whole_batches_and_cover_the_split():
    for n, batch, world in ((7, 2, 2), (100, 32, 3), (5, 32, 2), (0, 4, 2), (64, 8, 8)):
        bounds = [shard_bounds(n, batch, DistInfo(rank, world)) for rank in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert all(start % batch == 0 for start, _ in bounds)
    assert [shard_bounds(7, 2, DistInfo(r, 2)) for r in range(2)] == [(0, 4), (4, 7)]
    assert [shard_bounds(5, 32, DistInfo(r, 2)) for r in range(2)] == [(0, 0), (0, 5)]  # one batch: one shard


def test_under_torchrun_only_compare_is_sharded(small_checkpoints, data_root, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert eval_cli.main([str(small_checkpoints["cat"]), "--dataset", "coco-format", "--data-root",
                          str(data_root)]) == 2
    assert "only --compare" in capsys.readouterr().err


@pytest.mark.slow  # two fresh interpreters import torch: 40 s on the loaded 2-core machine
def test_two_gloo_processes_under_torchrun_write_one_process_report(small_checkpoints, data_root, tmp_path):  # noqa: F811
    paths = [small_checkpoints["baseline"], small_checkpoints["cat"]]
    assert eval_cli.main(args(paths, data_root, tmp_path / "single")) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CATVIZ_CACHE_DIR": str(tmp_path / "shared")}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "catviz.eval_cli", *args(paths, data_root, tmp_path / "sharded")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes, each a shard of the images" in done.stdout
    assert done.stdout.count("report written to") == 1  # rank 0 alone
    assert_same_report(tmp_path / "single", tmp_path / "sharded")
    # one cache: both models' chunks of both shards, none overwritten, read whole by one process
    assert len({p.name for p in (tmp_path / "shared").rglob("chunk-*.npz")}) == 4
    models = {key: inference.load_model(path, torch.device("cpu")) for key, path in zip(("baseline", "cat"), paths, strict=True)}
    again = run_dataset(open_dataset("coco-format", data_root), models, 2, cache_dir=tmp_path / "shared")
    assert again.computed == 0 and set(again.failed) == {3}
