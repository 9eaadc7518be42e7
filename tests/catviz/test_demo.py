"""The bundled demo: checkpoints reload, score what the README says, and open by default."""

import re
from pathlib import Path

import pytest

from catviz import demo, eval_cli
from catviz.app import _sources, build_parser
from catviz.models.checkpoint import read_meta

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_demo_map(role: str) -> float:
    match = re.search(rf"^\| `demo_{role}\.safetensors`[^|]*\|\s*([\d.]+)", README.read_text(), re.MULTILINE)
    assert match, f"README states no mAP for demo_{role}"
    return float(match.group(1))


def test_demo_assets_are_small_and_complete():
    assert demo.demo_available()
    assert sum(p.stat().st_size for p in demo.DEMO_CHECKPOINTS.values()) < 25 * 2**20
    paths, truth = demo.sample_images()
    assert len(truth) == 8 and all(p in paths for p in truth)
    assert any(p.suffix == ".jpg" for p in paths)  # the two real photographs
    assert read_meta(demo.DEMO_CHECKPOINTS["cat"]).class_names == [str(d) for d in range(10)]


@pytest.mark.slow
def test_demo_checkpoints_score_the_readme_figures_on_the_demo_val_split(tmp_path, capsys):
    data = tmp_path / "demo"
    assert eval_cli.main([str(demo.DEMO_CHECKPOINTS["baseline"]), str(demo.DEMO_CHECKPOINTS["cat"]),
                          "--dataset", "demo", "--data-root", str(data), "--workers", "0",
                          "--json", str(tmp_path / "scores.json")]) == 0
    import json

    results = json.loads((tmp_path / "scores.json").read_text())["results"]
    for role, result in zip(("baseline", "cat"), results, strict=True):
        assert result["mAP"] == pytest.approx(readme_demo_map(role), abs=0.5)
        assert result["mAP"] == pytest.approx(read_meta(demo.DEMO_CHECKPOINTS[role]).metrics["mAP"], abs=0.05)


def test_no_arguments_means_the_demo_pair_and_samples():
    checkpoints, paths, truth = _sources(build_parser().parse_args([]))
    assert checkpoints == demo.DEMO_CHECKPOINTS
    assert paths and truth


def test_export_demo_writes_the_figure(tmp_path):
    from catviz.app import main

    assert main(["export", "--demo", "--out", str(tmp_path / "fig.png"), "--device", "cpu"]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 10_000
