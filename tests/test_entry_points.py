"""No traceback reaches a user for bad input, from any entry point (issue 28, point 8): each
command, run in a real process with a bad flag, an out-of-range number, a missing file or an
output name too long, exits 2 (usage) or 1 (failure) with a one-line message naming the
flag or the file, before any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LONG = "x" * 300  # one name past NAME_MAX (255 bytes)
PY = [sys.executable]


def command(kind: str) -> list[str]:
    return {
        "catviz": [*PY, "-m", "catviz"],
        "export": [*PY, "-m", "catviz", "export"],
        "runs": [*PY, "-m", "catviz", "runs"],
        "train": [*PY, "-m", "catviz.train_cli.train"],
        "eval": [*PY, "-m", "catviz.eval_cli"],
        "demo_models": [*PY, "-m", "catviz.train_cli.demo_models"],
        "pretrain": [*PY, "-m", "catviz.train_cli.pretrain"],
    }.get(kind, [*PY, str(ROOT / "bench" / kind)])


CASES = [  # (entry point, arguments ({tmp}: a fresh folder), exit status, words the one line holds)
    ("catviz", ["--limit", "0"], 2, ["--limit"]),
    ("catviz", ["--screenshot", f"{{tmp}}/{LONG}.png"], 2, ["--screenshot", "at most 255"]),
    ("export", ["--demo", "--out", f"{{tmp}}/{LONG}.png"], 2, ["--out", "at most 255"]),
    ("export", ["{tmp}/missing.png", "--demo", "--out", "{tmp}/f.png"], 2, ["missing.png"]),
    ("runs", ["{tmp}/no-such-run", "--out", "{tmp}/c.png"], 2, ["no-such-run"]),
    ("runs", ["{tmp}", "--out", f"{{tmp}}/{LONG}.png"], 2, ["--out", "at most 255"]),
    ("train", ["--dataset", "demo", "--epochs", "1000000000"], 2, ["--epochs", "[1, 10000]"]),
    ("train", ["--config", "{tmp}/missing.yaml"], 2, ["missing.yaml"]),
    ("eval", ["{tmp}/missing.safetensors"], 1, ["missing.safetensors"]),
    ("eval", ["--faithfulness", "--steps", "1000000000"], 2, ["--steps", "[1, 1000]"]),
    ("demo_models", ["--seed", "-5"], 2, ["--seed"]),
    ("pretrain", ["--out", "{tmp}/t.safetensors", "--steps", "-1"], 2, ["--steps"]),
    ("pretrain", ["--out", f"{{tmp}}/{LONG}.safetensors"], 2, ["--out", "at most 255"]),
    ("memory.py", ["--photos", "-1"], 2, ["--photos", "[1, 1000]"]),
    ("demo_seeds.py", ["--seeds", "-1"], 2, ["--seeds"]),
    ("train.py", ["--steps", "-1"], 2, ["--steps", "[1, 10000]"]),
    ("models.py", ["--size", "-3"], 2, ["--size", "[32, 2048]"]),
    ("dataset.py", ["--batch-size", "0"], 2, ["--batch-size", "[1, 4096]"]),
    ("app.py", ["--images", "-1"], 2, ["--images", "[1, 1000]"]),
    ("app_images.py", ["--photos", "0"], 2, ["--photos", "[1, 1000]"]),
    ("gpu_check.py", ["--size", "0"], 2, ["--size", "[32, 1024]"]),
]


def one_line(err: str) -> str:
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith(("(all options", "usage:", " ")) and "%|" not in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("kind, argv, code, words", CASES, ids=[f"{c[0]} {' '.join(c[1])[:40]}" for c in CASES])
def test_bad_input_is_one_line_and_no_traceback(tmp_path, kind, argv, code, words):
    argv = [a.format(tmp=tmp_path) for a in argv]
    before = sorted(tmp_path.rglob("*"))
    done = subprocess.run([*command(kind), *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "CATVIZ_CACHE_DIR": str(tmp_path / "c")})
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    line = one_line(done.stderr)
    assert all(w in line for w in words), line
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_a_checkpoint_refused_at_start_up_is_said_on_stderr(tmp_path):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not a checkpoint")
    done = subprocess.run([*command("catviz"), "--cat", str(bogus), "--screenshot", str(tmp_path / "s.png")],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert "Traceback" not in done.stderr, done.stderr
    # said once, by the loader that refused it (as in the window's Messages), never twice
    lines = [line for line in done.stderr.splitlines() if str(bogus) in line]
    assert len(lines) == 1 and "not a catviz checkpoint" in lines[0], done.stderr
