"""``catviz-eval``: its own help and exit codes, usage errors before any work, what it reads
and what it says it scored (the --compare and --faithfulness jobs: test_compare.py, test_faithfulness.py)."""

import json

import pytest

from catviz import eval_cli
from catviz.train_cli import evaluate
from tests.catviz.conftest import make_checkpoint
from tests.catviz.dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


def test_help_gives_evals_own_exit_codes_not_the_trainers(capsys):
    with pytest.raises(SystemExit):
        eval_cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit codes: 0 success; 1 failure" in out and "130 interrupted (Ctrl-C)" in out
    text = " ".join(out.split())
    assert "CP = mean Nc/Np" in text and "OF1" in text and "at probability 0.5" in text  # the metrics explained
    assert "--compare without two checkpoints or --report" in out
    assert "diverged" not in out and "run folder" not in out


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupt(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "read_meta", interrupt)
    assert eval_cli.main([str(tmp_path / "a.safetensors")]) == 130
    assert capsys.readouterr().err == "catviz-eval: interrupted; nothing written\n"


def test_scores_the_val_split_alone_and_says_what_was_scored(small_checkpoints, tmp_path, capsys):  # noqa: F811
    root = write_boxes_dataset(tmp_path / "data", val=VAL[:3], broken=(1,))  # no "tree" in val
    (root / "annotations" / "train.json").unlink()  # evaluation never reads the training split
    (root / "images" / "train" / "000.png").unlink()
    same_name = [make_checkpoint(tmp_path / run / "best.safetensors", "cat_tiny", input_size=32) for run in "ab"]
    out_json = tmp_path / "eval.json"
    argv = [*map(str, same_name), "--dataset", "coco-format", "--data-root", str(root), "--workers", "0",
            "--limit-images", "2", "--json", str(out_json)]
    assert eval_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "cat_tiny (a/best)" in out and "cat_tiny (b/best)" in out
    assert "scored on the val split: 1 of 2 images (the first 2, --limit-images 2); 1 unreadable image skipped" in out
    assert 'excluded from mAP (no positive image): "car", "bus", "tree"' in out
    written = json.loads(out_json.read_text())
    assert {k: written[k] for k in ("split", "images", "scored", "unreadable", "limit_images")} == {
        "split": "val", "images": 2, "scored": 1, "unreadable": 1, "limit_images": 2}
    assert [r["name"] for r in written["results"]] == ["cat_tiny (a/best)", "cat_tiny (b/best)"]


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size: 0 is outside [1, 4096]"),
    (["--batch-size", "100000"], "--batch-size: 100000 is outside [1, 4096]"),
    (["--workers", "-1"], "--workers: -1 is outside [0, 64]"),
    (["--limit-images", "-1"], "--limit-images: -1 is outside [0, 1000000000]"),
    (["--device", "tpu9"], "--device"),
    (["--json", "/nonexistent/dir/e.json"], "--json /nonexistent/dir/e.json: cannot write into /nonexistent/dir (no such folder)"),
    (["--json", "x" * 261 + ".json"], "at most 255 are allowed"),
])
def test_eval_usage_errors(flags, message, capsys, tmp_path):
    assert eval_cli.main([str(tmp_path / "missing.safetensors"), "--data-root", "/nonexistent", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_eval_never_replaces_an_existing_json_without_overwrite(capsys, tmp_path):
    mine = tmp_path / "e.json"
    mine.write_text("mine")
    assert eval_cli.main([str(tmp_path / "missing.safetensors"), "--json", str(mine)]) == 2
    assert "--overwrite" in capsys.readouterr().err and mine.read_text() == "mine"
