"""``catviz-eval --faithfulness --depths``: each depth of the complete CAM a method row (issue 24)."""

import json

import numpy as np
import pytest

from catviz import eval_cli


def test_each_depth_is_a_row_and_a_depth_a_model_lacks_leaves_its_row_empty(tmp_path, capsys):
    out = tmp_path / "f.json"
    args = ["--faithfulness", "--limit", "1", "--methods", "cam", "--depths", "tokens,input,fpn", "--steps", "4",
            "--road-percentiles", "50", "--json", str(out)]
    assert eval_cli.main(args) == 0
    table = capsys.readouterr().out
    assert "complete CAM (classifier tokens)" in table and "complete CAM (input pixels)" in table
    assert "baseline_tiny has no depth fpn; it has tokens, s3, input" in table  # said, naming the depths it has
    assert "paired difference from complete CAM (input pixels)" in table
    rows = {(r["model"].split()[0], r["method"]): r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {(m, k) for m in ("baseline_tiny", "cat_tiny") for k in ("cam@tokens", "cam", "cam@fpn")}
    assert rows[("baseline_tiny", "cam@fpn")]["deletion"]["n"] == 0  # the baseline has no FPN
    assert rows[("cat_tiny", "cam@fpn")]["deletion"]["n"] > 0
    assert rows[("cat_tiny", "cam")]["deletion"]["mean"] != rows[("cat_tiny", "cam@tokens")]["deletion"]["mean"]
    paired = rows[("cat_tiny", "cam@tokens")]["paired"]["deletion"]  # the same pairs, differences from the input map
    per_pair = {k: rows[("cat_tiny", k)]["per_pair"]["deletion"] for k in ("cam", "cam@tokens")}
    assert paired["mean"] == pytest.approx(np.mean(np.subtract(per_pair["cam@tokens"], per_pair["cam"])), abs=1e-5)
    assert paired["low"] <= paired["mean"] <= paired["high"] and paired["images"] == 1


def test_an_unknown_depth_is_a_usage_error(capsys):
    assert eval_cli.main(["--faithfulness", "--depths", "input,pixels"]) == 2
    assert "--depths" in capsys.readouterr().err
