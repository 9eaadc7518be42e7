"""``catviz-eval``'s own help, exit codes, what it reads and what it says it scored (flags: test_config.py)."""

import json

import pytest

from tests.catviz.conftest import make_checkpoint
from tests.catviz.dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)
from train_cli import evaluate


def test_help_gives_evals_own_exit_codes_not_the_trainers(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--help"])
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
    assert evaluate.main([str(tmp_path / "a.safetensors")]) == 130
    assert capsys.readouterr().err == "catviz-eval: interrupted\n"


def test_scores_the_val_split_alone_and_says_what_was_scored(small_checkpoints, tmp_path, capsys):  # noqa: F811
    root = write_boxes_dataset(tmp_path / "data", val=VAL[:3], broken=(1,))  # no "tree" in val
    (root / "annotations" / "train.json").unlink()  # evaluation never reads the training split
    (root / "images" / "train" / "000.png").unlink()
    same_name = [make_checkpoint(tmp_path / run / "best.safetensors", "cat_tiny", input_size=32) for run in "ab"]
    out_json = tmp_path / "eval.json"
    argv = [*map(str, same_name), "--dataset", "coco-format", "--data-root", str(root), "--workers", "0",
            "--limit-images", "2", "--json", str(out_json)]
    assert evaluate.main(argv) == 0
    out = capsys.readouterr().out
    assert "cat_tiny (a/best)" in out and "cat_tiny (b/best)" in out
    assert "scored on the val split: 1 of 2 images (the first 2, --limit-images 2); 1 unreadable image skipped" in out
    assert 'excluded from mAP (no positive image): "car", "bus", "tree"' in out
    written = json.loads(out_json.read_text())
    assert {k: written[k] for k in ("split", "images", "scored", "unreadable", "limit_images")} == {
        "split": "val", "images": 2, "scored": 1, "unreadable": 1, "limit_images": 2}
    assert [r["name"] for r in written["results"]] == ["cat_tiny (a/best)", "cat_tiny (b/best)"]


def test_row_names_grow_the_path_only_where_rows_would_read_the_same(tmp_path):
    paths = [tmp_path / "x" / "a" / "best.safetensors", tmp_path / "y" / "a" / "best.safetensors",
             tmp_path / "b" / "best.safetensors", tmp_path / "b" / "last.safetensors"]
    names = evaluate.row_names(["cat_tiny", "cat_tiny", "cat_tiny", "baseline_tiny"], paths)
    assert names == ["cat_tiny (x/a/best)", "cat_tiny (y/a/best)", "cat_tiny (b/best)", "baseline_tiny (last)"]
