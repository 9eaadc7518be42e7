"""bench/recipe_study.py: CAT's gain per recipe and its change, paired by seed, from the two studies' files."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import recipe_study  # noqa: E402


def study(seed_maps: dict[int, tuple[float, float]], trunk: str = "abc") -> dict:
    sizes = lambda m: {"small": m - 10, "medium": m, "large": m + 5}  # noqa: E731
    row = lambda m: {"final": {"mAP": m, "CF1": m - 1, "OF1": m - 2}, "best_mAP": m, "size_mAP": sizes(m),  # noqa: E731
                     "curve_mAP": [m / 2, m], "epochs": 2, "wall_seconds": 100.0}
    return {"trunk": {"sha256": trunk}, "recipe": {"epochs": 2},
            "runs": {str(s): {"baseline_tiny": row(b), "cat_tiny": row(c)} for s, (b, c) in seed_maps.items()}}


def write(tmp_path: Path, paper: dict, modern: dict) -> list[str]:
    (tmp_path / "paper.json").write_text(json.dumps(paper))
    (tmp_path / "modern.json").write_text(json.dumps(modern))
    run_log = tmp_path / "runs" / "seed0" / "cat_tiny" / "log.jsonl"
    run_log.parent.mkdir(parents=True)
    run_log.write_text("\n".join(json.dumps({"epoch": e, "mAP": 1.0, "mAP_raw": r}) for e, r in ((1, 30.0), (2, 40.0)))
                       + "\n{broken")
    return ["--paper", str(tmp_path / "paper.json"), "--modern", str(tmp_path / "modern.json"),
            "--modern-runs", str(tmp_path / "runs"), "--out", str(tmp_path / "study.json"), "--no-images"]


def test_the_gain_per_recipe_and_its_change_are_paired_by_seed(tmp_path, capsys):
    # paper gains +8, +8, +8; modern gains +2, +4, +6 (mean 4, sd 2, t(0.975, 2) = 4.303: ± 4.97)
    args = write(tmp_path, study({0: (80, 88), 1: (81, 89), 2: (82, 90), 3: (83, 91)}),
                 study({0: (85, 87), 1: (86, 90), 2: (84, 90)}))
    assert recipe_study.main(args) == 0
    out = json.loads((tmp_path / "study.json").read_text())
    p = out["paired"]
    assert p["seeds"] == [0, 1, 2]  # seed 3 has no modern runs: left out of every pairing
    assert p["mAP"]["cat_minus_baseline_modern"]["mean"] == pytest.approx(4.0)
    assert p["mAP"]["cat_minus_baseline_modern"]["ci95_t"] == pytest.approx([4 - 4.968, 4 + 4.968], abs=1e-3)
    assert p["mAP"]["gain_modern_minus_paper"]["per_seed"] == {"0": -6.0, "1": -4.0, "2": -2.0}
    assert p["small"]["baseline_tiny_modern_minus_paper"]["per_seed"] == {"0": 5.0, "1": 5.0, "2": 2.0}
    rows = {(r["recipe"], r["model"], r["seed"]): r for r in out["runs"]}
    assert len(rows) == 14 and set(rows["modern", "cat_tiny", 0]) >= {"mAP", "size_mAP", "curve_mAP", "seed"}
    assert rows["modern", "cat_tiny", 0]["curve_mAP_raw"] == [30.0, 40.0]  # from the run's log; a broken line skipped
    assert rows["modern", "baseline_tiny", 0]["curve_mAP_raw"] is None  # its run folder is gone
    assert out["new_runs_wall_seconds"] == 600.0
    assert "| mAP | +8.0 [+8.0, +8.0] | +4.0 [-1.0, +9.0] | -4.0 [-9.0, +1.0] |" in capsys.readouterr().out


def test_an_existing_result_other_trunks_and_no_common_seed_are_usage_errors(tmp_path, capsys):
    args = write(tmp_path, study({0: (80, 88)}), study({1: (85, 87)}))
    with pytest.raises(SystemExit) as exit_:
        recipe_study.main(args)
    assert exit_.value.code == 2 and "no seed has both models under both recipes" in capsys.readouterr().err
    (tmp_path / "modern.json").write_text(json.dumps(study({0: (85, 87)}, trunk="other")))
    with pytest.raises(SystemExit):
        recipe_study.main(args)
    assert "different pretrained trunks" in capsys.readouterr().err
    (tmp_path / "study.json").write_text("mine")
    with pytest.raises(SystemExit):
        recipe_study.main(args)
    assert "exists; pass --overwrite" in capsys.readouterr().err and (tmp_path / "study.json").read_text() == "mine"
