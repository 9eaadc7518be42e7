"""Scoring rows of catviz-eval (the command: tests/catviz/test_eval_cli.py)."""

from catviz.train_cli import evaluate


def test_row_names_grow_the_path_only_where_rows_would_read_the_same(tmp_path):
    paths = [tmp_path / "x" / "a" / "best.safetensors", tmp_path / "y" / "a" / "best.safetensors",
             tmp_path / "b" / "best.safetensors", tmp_path / "b" / "last.safetensors"]
    names = evaluate.row_names(["cat_tiny", "cat_tiny", "cat_tiny", "baseline_tiny"], paths)
    assert names == ["cat_tiny (x/a/best)", "cat_tiny (y/a/best)", "cat_tiny (b/best)", "baseline_tiny (last)"]
