"""``catviz-eval --faithfulness`` end to end on the bundled demo models and demo images."""

import json

import pytest

from catviz import eval_cli, faithfulness
from catviz.train_cli.data import load_splits

FAST = ["--steps", "4", "--ig-steps", "4", "--road-percentiles", "50"]


def _pairs(limit: int) -> int:
    _, val = load_splits("demo", None)
    return int(sum((s.target == 1).sum() for s in val.samples[:limit]))


@pytest.mark.slow
def test_every_method_on_a_demo_image(tmp_path, capsys):
    out = tmp_path / "f.json"
    assert eval_cli.main(["--faithfulness", "--limit", "1", *FAST, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "deletion AUC" in table and "pointing" in table
    data = json.loads(out.read_text())
    assert data["dataset"] == "demo" and data["images"] == 1
    rows = data["results"]
    assert {(r["model"].split()[0], r["method"]) for r in rows} == {
        (m, k) for m in ("baseline_tiny", "cat_tiny")
        for k in ("cam", "gradcam", "gradcam++", "scorecam", "eigencam", "ig", "occlusion")}  # the default set
    for row in rows:
        assert row["deletion"]["n"] == _pairs(1)
        for metric in ("deletion", "insertion", "pointing", "chance"):
            assert 0.0 <= row[metric]["mean"] <= 1.0
        assert -1.0 <= row["road"]["mean"] <= 1.0
        assert 0.0 < row["chance"]["mean"] < 0.7  # digits are boxes of 16-80 px in 128²


def test_cheap_methods_and_no_silent_overwrite(tmp_path, capsys):
    out = tmp_path / "f.json"
    args = ["--limit", "1", "--methods", "cam,eigencam", *FAST, "--json", str(out)]
    assert eval_cli.main(["--faithfulness", *args]) == 0
    first = out.read_text()
    assert len(json.loads(first)["results"]) == 4
    assert "pointing" in capsys.readouterr().out  # the demo set's boxes reached the scores
    assert eval_cli.main(["--faithfulness", *args]) == 2 and out.read_text() == first
    assert "exists" in capsys.readouterr().err
    assert eval_cli.main(["--faithfulness", *args, "--methods", "cam", "--overwrite"]) == 0
    assert len(json.loads(out.read_text())["results"]) == 2


@pytest.mark.parametrize("bad", [["--methods", "cam,lime"], ["--road-percentiles", "0,50"],
                                 ["--road-percentiles", "x"], ["--limit", "-1"], ["--limit-images", "-1"],
                                 ["--json", "/nonexistent/dir/f.json"]])
def test_bad_flags_are_usage_errors_before_any_work(bad, capsys):
    assert eval_cli.main(["--faithfulness", *bad]) == 2
    assert "catviz-eval --faithfulness" in capsys.readouterr().err


def test_eval_help_names_the_faithfulness_mode(capsys):
    with pytest.raises(SystemExit):
        eval_cli.main(["--help"])
    assert "--faithfulness" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        eval_cli.main(["--faithfulness", "--help"])
    assert "trapezoid" in capsys.readouterr().out


def test_a_checkpoint_that_is_missing_is_a_one_line_error(tmp_path, capsys):
    assert eval_cli.main(["--faithfulness", str(tmp_path / "nope.safetensors"), "--dataset", "demo", "--limit", "1"]) == 1
    err = capsys.readouterr().err
    assert "nope.safetensors" in err and "Traceback" not in err


def test_a_mean_leaves_out_what_is_not_finite():
    assert faithfulness.summarise([1.0, float("nan"), 3.0])["mean"] == 2.0
