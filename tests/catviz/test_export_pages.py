"""``catviz export`` bounded by the work (issue 28, points 4, 5, 8), in real processes: a
folder is drawn a page at a time (--per-page images per figure, fig-001.png ...), page
files are never replaced without --overwrite, flags and --out are checked before any work,
and a list without a readable image is refused before any model is loaded."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import write_good_images


def export(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catviz", "export", *argv], capture_output=True, text=True,
                          timeout=timeout)


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(err: str, *words: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("(all options") and "%|" not in line]
    assert len(lines) == 1 and all(w in lines[0] for w in words), err


def models(checkpoints) -> list[str]:
    return ["--baseline", str(checkpoints["baseline"]), "--cat", str(checkpoints["cat"]), "--device", "cpu"]


def test_a_folder_is_drawn_a_page_at_a_time_and_pages_are_never_replaced(tmp_path, checkpoints):
    write_good_images(tmp_path / "images", 3)
    out = tmp_path / "out"
    out.mkdir()
    done = export(str(tmp_path / "images"), "--out", str(out / "fig.png"), "--per-page", "2", *models(checkpoints))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["fig-001.png", "fig-002.png"]
    assert "2 figures" in done.stdout and "3 images" in done.stdout
    before = hashes(out)
    again = export(str(tmp_path / "images"), "--out", str(out / "fig.png"), "--per-page", "2", *models(checkpoints))
    assert again.returncode == 2
    one_line(again.stderr, "fig-001.png", "--overwrite")
    assert hashes(out) == before


@pytest.mark.parametrize("flags, words", [
    (["--per-page", "0"], ("--per-page", "[1, 200]")),
    (["--per-page", "100000"], ("--per-page", "[1, 200]")),
    (["--threshold", "nan"], ("--threshold",)),
    (["--opacity", "7"], ("--opacity",)),
])
def test_numeric_flags_out_of_range_are_usage_errors(tmp_path, flags, words):
    done = export("--demo", "--out", str(tmp_path / "f.png"), *flags, timeout=60)
    assert done.returncode == 2
    one_line(done.stderr, *words)
    assert list(tmp_path.iterdir()) == []


def test_an_out_name_too_long_is_a_usage_error(tmp_path):
    done = export("--demo", "--out", str(tmp_path / ("x" * 257 + ".png")), timeout=60)
    assert done.returncode == 2
    one_line(done.stderr, "--out", "at most 255")


def test_more_images_than_the_limit_are_refused_before_decoding(tmp_path, checkpoints):
    from catviz.app import MAX_EXPORT_IMAGES

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(MAX_EXPORT_IMAGES + 1):
        (folder / f"{i:05d}.png").touch()  # empty: decoding any would be an error message per file
    done = export(str(folder), "--out", str(tmp_path / "f.png"), *models(checkpoints), timeout=120)
    assert done.returncode == 2
    one_line(done.stderr, f"{MAX_EXPORT_IMAGES + 1} images", f"at most {MAX_EXPORT_IMAGES}")


def test_no_readable_image_is_said_before_any_model_is_loaded(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a checkpoint either")  # loading it first would be the error reported
    done = export(str(notes), "--out", str(tmp_path / "f.png"), "--baseline", str(bogus), timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "bogus" not in done.stderr
    assert "no model was loaded" in done.stderr and "notes.txt" in done.stderr
    assert not (tmp_path / "f.png").exists()
