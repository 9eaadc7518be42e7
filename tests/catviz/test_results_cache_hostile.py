"""The results cache as an untrusted input (issue 28, point 3): a chunk of another checkpoint,
a header declaring a huge array, a compressed bomb, a cache folder that cannot be written.
The command-level cases run ``catviz-eval --compare`` in a real process."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from catviz import dataset_results, eval_cli
from catviz.dataset_results import CacheChunkError, read_chunk
from tests.catviz.dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


def compare_argv(checkpoints, data_root, report):
    return [str(checkpoints["baseline"]), str(checkpoints["cat"]), "--compare", "--report", str(report),
            "--dataset", "coco-format", "--data-root", str(data_root), "--workers", "0"]


def compare_process(checkpoints, data_root, report, cache):
    env = {**os.environ, "CATVIZ_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "catviz.eval_cli", *compare_argv(checkpoints, data_root, report)],
                          capture_output=True, text=True, env=env, timeout=300)


def summary(report):
    return json.loads((report / "summary.json").read_text())["models"]


@pytest.fixture
def filled(small_checkpoints, tmp_path, monkeypatch):  # noqa: F811
    """A dataset, and a cache filled by one in-process compare (its summary is the truth)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CATVIZ_CACHE_DIR", str(cache))
    root = write_boxes_dataset(tmp_path / "data")
    assert eval_cli.main(compare_argv(small_checkpoints, root, tmp_path / "first")) == 0
    folders = {role: next(cache.rglob(dataset_results.file_sha256(path))) for role, path in small_checkpoints.items()}
    return root, cache, folders, summary(tmp_path / "first")


def one_line_note(stderr: str, *words: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if all(w in line for w in words)]
    assert len(lines) == 1, stderr  # said once, on one line


def test_another_checkpoints_chunk_is_not_used(small_checkpoints, filled, tmp_path):  # noqa: F811
    root, cache, folders, truth = filled
    assert truth["baseline"]["mAP"] != truth["cat"]["mAP"]  # else the test could not tell
    for chunk in folders["baseline"].glob("chunk-*.npz"):
        chunk.unlink()
    planted = folders["baseline"] / "chunk-0-0.npz"
    shutil.copy(next(folders["cat"].glob("chunk-*.npz")), planted)
    done = compare_process(small_checkpoints, root, tmp_path / "second", cache)
    assert done.returncode == 0, done.stderr
    assert summary(tmp_path / "second")["baseline"]["mAP"] == truth["baseline"]["mAP"]
    assert summary(tmp_path / "second")["cat"]["mAP"] == truth["cat"]["mAP"]
    one_line_note(done.stderr, str(planted), "another checkpoint")
    assert not planted.exists()  # discarded, then recomputed and written again
    assert list(folders["baseline"].glob("chunk-*.npz"))


def stored_npy_zip(members: dict[str, bytes], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_header(shape, dtype="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_a_small_chunk_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    path = tmp_path / "chunk-huge.npz"
    path.write_bytes(stored_npy_zip({"probabilities.npy": npy_header((200_000_000_000, 5)) + b"\0" * 64}))
    assert path.stat().st_size < 500
    tracemalloc.start()
    try:
        with pytest.raises(CacheChunkError, match="shape"):
            read_chunk(path, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    # a header that fits the row limit but not the member's bytes
    path.write_bytes(stored_npy_zip({"probabilities.npy": npy_header((4000, 5)) + b"\0" * 64}))
    with pytest.raises(CacheChunkError, match="declares shape"):
        read_chunk(path, 5)


def test_a_compressed_bomb_is_refused_without_inflating(tmp_path):
    path = tmp_path / "chunk-bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("probabilities.npy", "w") as f:
        f.write(npy_header((3000, 5)))
        block = bytes(16 << 20)
        for _ in range(8):  # 128 MiB of zeros: some 130 kB compressed
            f.write(block)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(CacheChunkError, match="bytes uncompressed"):
            read_chunk(path, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 0.5 and peak < 1 << 20


def test_hostile_chunks_in_the_cache_are_discarded_in_a_real_process(small_checkpoints, filled, tmp_path):  # noqa: F811
    root, cache, folders, truth = filled
    huge = folders["cat"] / "chunk-1-1.npz"
    huge.write_bytes(stored_npy_zip({"probabilities.npy": npy_header((200_000_000_000, 5)) + b"\0" * 64}))
    bomb = folders["baseline"] / "chunk-2-2.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("images.npy", "w") as f:
        f.write(npy_header((3000,), "<U4096"))
        for _ in range(8):
            f.write(bytes(16 << 20))
    done = compare_process(small_checkpoints, root, tmp_path / "second", cache)
    assert done.returncode == 0, done.stderr
    one_line_note(done.stderr, str(huge), "discarded")
    one_line_note(done.stderr, str(bomb), "discarded")
    assert not huge.exists() and not bomb.exists()
    assert summary(tmp_path / "second") == truth


def test_a_file_where_the_cache_folder_should_be_means_no_cache(small_checkpoints, tmp_path):  # noqa: F811
    root = write_boxes_dataset(tmp_path / "data")
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    done = compare_process(small_checkpoints, root, tmp_path / "report", blocker)
    assert done.returncode == 0, done.stderr
    one_line_note(done.stderr, "running without the cache")
    assert blocker.read_text() == "a file, not a folder"
    assert summary(tmp_path / "report")["cat"]["mAP"] is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_means_no_cache(small_checkpoints, tmp_path):  # noqa: F811
    root = write_boxes_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        done = compare_process(small_checkpoints, root, tmp_path / "report", cache)
    finally:
        cache.chmod(0o755)
    assert done.returncode == 0, done.stderr
    one_line_note(done.stderr, "running without the cache")
    assert list(cache.iterdir()) == []


def test_the_pass_without_a_usable_cache_tells_the_caller(small_checkpoints, tmp_path):  # noqa: F811
    """In process: the note reaches the caller's channel (the app's Messages) once."""
    import torch

    from catviz.dataset_results import run_dataset
    from catviz.dataset_source import open_dataset
    from catviz.dataset_state import DatasetState
    from catviz.inference import load_model

    source = open_dataset("coco-format", write_boxes_dataset(tmp_path / "data"))
    models = {role: load_model(path, torch.device("cpu")) for role, path in small_checkpoints.items()}
    (tmp_path / "cache").write_text("")
    results = run_dataset(source, models, cache_dir=tmp_path / "cache")
    assert results.complete and results.scored().sum() == len(VAL)
    messages = []
    DatasetState(report=messages.append).run_ended(results, None)
    assert len(messages) == 1 and "running without the cache" in messages[0]
