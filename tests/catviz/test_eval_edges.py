"""catviz-eval's edges (issue 28, points 4, 6, 7): every numeric flag has a stated range
checked before any work, output paths are checked, --json is written atomically, and
--faithfulness scores a dataset without boxes (saying what it left out)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from catviz import eval_cli
from tests.catviz.conftest import make_checkpoint
from tests.catviz.dataset_fixtures import VAL, write_boxes_dataset


def run_eval(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catviz.eval_cli", *argv], capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line(err: str, *words: str) -> None:
    assert "Traceback" not in err, err
    err = err.replace("\r", "\n")  # progress bars redraw with carriage returns
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("(all options")
             and "%|" not in line and not line.endswith("it/s]")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), err


def test_a_billion_faithfulness_steps_is_refused_before_any_work():
    done = run_eval("--faithfulness", "--steps", "1000000000", timeout=60)
    assert done.returncode == 2
    assert_one_line(done.stderr, "--steps", "1000000000", "[1, 1000]")


@pytest.mark.parametrize("flags, words", [
    (["--ig-steps", "5000"], ("--ig-steps", "[1, 1000]")),
    (["--steps", "0"], ("--steps", "[1, 1000]")),
    (["--limit", "-3"], ("--limit", "-3")),
    (["--limit-images", "10000000"], ("--limit-images", "[0, 1000000]")),
    (["--scorecam-limit", "-1"], ("--scorecam-limit", "[0, 1000000]")),
    (["--road-percentiles", "1,2,3,4,5,6,7,8,9,10"], ("--road-percentiles", "1 to 9")),
    (["--road-percentiles", "0,50"], ("--road-percentiles", "between 0 and 100")),
    (["--seed", "-1"], ("--seed",)),
    (["--json", "x" * 261 + ".json"], ("--json", "at most 255")),
])
def test_faithfulness_ranges(flags, words, capsys):
    assert eval_cli.main(["--faithfulness", *flags]) == 2
    assert_one_line(capsys.readouterr().err, *words)


def test_every_numeric_flag_states_its_range_in_help(capsys):
    for argv in (["--faithfulness", "--help"], ["--help"]):
        with pytest.raises(SystemExit):
            eval_cli.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        for flag in (("--steps", "[1, 1000]"), ("--ig-steps", "[1, 1000]"), ("--scorecam-limit", "[0, 1000000]"))\
                if argv[0] == "--faithfulness" else (("--batch-size", "[1, 4096]"), ("--workers", "[0, 64]")):
            assert flag[1] in text, (argv, flag)


def test_a_report_folder_name_too_long_is_a_usage_error(tmp_path, capsys):
    a, b = str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")
    assert eval_cli.main([a, b, "--compare", "--report", str(tmp_path / ("r" * 300))]) == 2
    assert_one_line(capsys.readouterr().err, "--report", "at most 255")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def boxless(tmp_path_factory):
    """The small dataset with every ``bbox`` field removed, and a tiny baseline for it."""
    root = tmp_path_factory.mktemp("boxless")
    data = write_boxes_dataset(root / "data", val=VAL[:2])
    for split in ("train", "val"):
        path = data / "annotations" / f"{split}.json"
        content = json.loads(path.read_text())
        for annotation in content["annotations"]:
            del annotation["bbox"]
        path.write_text(json.dumps(content))
    return data, make_checkpoint(root / "b.safetensors", "baseline_tiny", input_size=32)


def test_faithfulness_without_boxes_scores_what_it_can(boxless, tmp_path):
    data, checkpoint = boxless
    out = tmp_path / "f.json"
    done = run_eval("--faithfulness", str(checkpoint), "--dataset", "coco-format", "--data-root", str(data),
                    "--limit", "1", "--methods", "cam", "--steps", "4", "--road-percentiles", "50",
                    "--device", "cpu", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "left out: pointing game and mass in box" in done.stdout
    row = json.loads(out.read_text())["results"][0]
    assert row["deletion"]["n"] == 2 and row["road"]["n"] == 2  # image 0: cat and dog
    assert row["pointing"]["n"] == 0 and row["box_mass"]["n"] == 0
    assert "pointing" in json.loads(out.read_text())["left_out"]


def test_a_bad_checkpoint_is_named_before_a_bad_dataset(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    done = run_eval("--faithfulness", str(bad), "--dataset", "coco-format", "--data-root", str(tmp_path / "nowhere"),
                    timeout=60)
    assert done.returncode == 1
    assert_one_line(done.stderr, str(bad))


def test_eval_json_is_written_atomically(boxless, tmp_path, monkeypatch, capsys):
    """A full disk while --json is written leaves the previous file whole, byte for byte."""
    data, checkpoint = boxless
    out = tmp_path / "e.json"
    out.write_text('{"previous": "results"}\n')
    before = out.read_bytes()
    real_write_text = Path.write_text

    def full_disk(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    code = eval_cli.main([str(checkpoint), "--dataset", "coco-format", "--data-root", str(data), "--workers", "0",
                          "--json", str(out), "--overwrite"])
    monkeypatch.undo()
    assert code == 1
    assert_one_line(capsys.readouterr().err, str(out), "No space left")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json"]  # no temporary file left
