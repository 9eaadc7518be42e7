"""Seed groups: runs of one model and recipe with different seeds, read from generated run
folders, drawn as a mean and a band; runs whose config cannot say what they are stay on their own."""

import math

import pyqtgraph as pg
import pytest

from catviz import runs
from catviz.qt_runs_plot import QtRunCurves
from tests.catviz.runs_fixtures import record, seed_config, write_header, write_run

#: val mAP of three seeds: seed 2 stopped after epoch 2, seed 1 lost its epoch-2 value to a damaged line
MAPS = {0: [40.0, 50.0, 60.0], 1: [44.0, None, 66.0], 2: [42.0, 53.0]}


def _seed_runs(tmp_path, recipe="paper", seeds=(0, 1, 2), **more):
    folders = []
    for seed in seeds:
        records = [record(e, 1.0 / e, m) if m is not None else {"epoch": e, "train_loss": 1.0 / e, "mAP": "?"}
                   for e, m in enumerate(MAPS[seed], 1)]
        folders.append(write_run(tmp_path / f"{recipe}-s{seed}", records, config=seed_config(seed, recipe=recipe, **more)))
    return [runs.open_run(f) for f in folders]


def test_the_band_is_the_mean_and_spread_over_the_epochs_every_run_has(tmp_path):
    groups, alone = runs.group_runs(_seed_runs(tmp_path))
    assert alone == [] and len(groups) == 1
    group = groups[0]
    assert group.name == "cat_tiny · paper" and group.seeds == [0, 1, 2]
    minmax = group.bands("minmax")["val mAP"]
    # epoch 1: 40, 44, 42; epoch 2 lacks seed 1's value (a gap); epoch 3 lacks seed 2 (it stopped)
    assert minmax.epochs == [1] and minmax.mean == [42.0] and (minmax.low, minmax.high) == ([40.0], [44.0])
    std = group.bands("std")["val mAP"]
    assert std.mean == [42.0] and std.low == [pytest.approx(40.0)] and std.high == [pytest.approx(44.0)]  # sd = 2
    loss = group.bands("minmax")["train loss"]  # every run has epochs 1 and 2
    assert loss.epochs == [1, 2] and loss.mean == [1.0, 0.5]
    assert group.coverage() == ("epochs 1-2, those all 3 runs have; paper-s0 (seed 0) goes on to 3, "
                                "paper-s1 (seed 1) goes on to 3")
    with pytest.raises(ValueError, match="band kind must be one of minmax, std"):
        group.bands("iqr")


def test_a_gap_inside_the_common_epochs_is_left_open(tmp_path):
    folders = [write_run(tmp_path / f"s{seed}", [record(1, 1, 10 + seed), record(2, 1, 20 + seed),
                                                 record(3, 1, 30 + seed)], config=seed_config(seed))
               for seed in (0, 1)]
    (folders[1] / "log.jsonl").write_text("\n".join(
        line if i != 1 else '{"epoch": 2, "train_loss": 1, "mAP": null}'
        for i, line in enumerate((folders[1] / "log.jsonl").read_text().splitlines())) + "\n")
    band = runs.group_runs([runs.open_run(f) for f in folders])[0][0].bands("std")["val mAP"]
    assert band.epochs == [1, 2, 3] and math.isnan(band.mean[1])
    # two values a and b: mean (a+b)/2, sample sd |a-b|/sqrt(2)
    assert band.mean[2] == 30.5 and band.high[2] == pytest.approx(30.5 + 1 / math.sqrt(2))


def test_runs_group_by_model_recipe_and_settings_and_the_others_say_why(tmp_path):
    paper = _seed_runs(tmp_path, seeds=(0, 1))
    modern = _seed_runs(tmp_path, recipe="modern", seeds=(0, 1))
    other_lr = _seed_runs(tmp_path / "lr", seeds=(0, 1), lr=0.02)
    odd = {
        "baseline": seed_config(0, model="baseline_tiny"),
        "noseed": {"model": "cat_tiny", "recipe": "paper"},
        "textseed": seed_config("seven"),
        "boolseed": seed_config(True),
        "listmodel": {**seed_config(3), "model": ["cat_tiny"]},
        "nested": {**seed_config(4), "recipe": {"a": [1, 2]}},
        "again": seed_config(1),  # seed 1 of the paper group twice
    }
    for name, config in odd.items():
        write_run(tmp_path / name, [record(1, 1.0, 40)], config=config)
    write_run(tmp_path / "unparsable", [record(1, 1.0, 40)], config="model: [unclosed\n")
    others = [runs.open_run(tmp_path / name) for name in [*odd, "unparsable"]]
    groups, alone = runs.group_runs([*paper, *modern, *other_lr, *others])
    assert [(g.name, [r.name for r in g.runs]) for g in groups] == [
        ("cat_tiny · paper (lr 0.01)", ["paper-s0", "paper-s1"]),
        ("cat_tiny · modern", ["modern-s0", "modern-s1"]),
        ("cat_tiny · paper (lr 0.02)", ["paper-s0", "paper-s1"]),
    ]
    assert {run.name: why for run, why in alone} == {
        "baseline": "the only run of baseline_tiny · paper (seed 0) with its settings",
        "noseed": "config.yaml: no seed",
        "textseed": "config.yaml: seed 'seven' is not an integer >= 0",
        "boolseed": "config.yaml: seed True is not an integer >= 0",
        "listmodel": "config.yaml: model a list is not a model name",
        "nested": "config.yaml: recipe a dict is not a recipe name",
        "again": "seed 1 again: paper-s1 has it already",
        "unparsable": "no readable config.yaml or checkpoint metadata: model and seed unknown",
    }


def test_without_config_yaml_the_checkpoint_metadata_says_what_the_run_is(tmp_path):
    folder = write_run(tmp_path / "a", [record(1, 1.0, 40)], config=None)
    write_header(folder / "last.safetensors", {"model": "cat_tiny", "class_names": ["x"],
                                               "config": seed_config(5, recipe="modern")})
    run = runs.open_run(folder)
    assert (run.model, run.recipe, run.seed, run.identity_source) == ("cat_tiny", "modern", 5,
                                                                      "the metadata of last.safetensors")
    assert run.identity_problem == ""


def test_the_curves_draw_each_group_as_a_mean_and_band_and_the_rest_as_runs(qapp, tmp_path):
    seeds = _seed_runs(tmp_path, seeds=(0, 2))
    loner = runs.open_run(write_run(tmp_path / "loner", [record(1, 0.9, 30)], config={"model": "cat_tiny"}))
    widget = QtRunCurves()
    groups, alone = widget.show_runs([*seeds, loner], "minmax")
    plot = widget.plots["val mAP"]
    curves = {item.name(): item for item in plot.listDataItems() if item.name()}
    mean = curves["cat_tiny · paper (2 seeds, min-max)"]
    levels = sorted(i.name() for i in widget.plots["mAP of each level"].listDataItems() if i.name())
    assert levels == ["cat_tiny · paper P3", "cat_tiny · paper P5", "loner P3", "loner P5"]
    assert list(mean.getData()[0]) == [1, 2] and list(mean.getData()[1]) == [41.0, 51.5]
    assert "loner" in curves  # drawn as itself
    shades = [item for item in plot.items if isinstance(item, pg.FillBetweenItem)]
    assert len(shades) == 1
    edges = sorted(list(c.getData()[1]) for c in shades[0].curves)
    assert edges == [[40.0, 50.0], [42.0, 53.0]]
    assert [r.name for r, _ in alone] == ["loner"] and len(groups) == 1
    # without the band every run is its own curve again
    widget.show_runs([*seeds, loner])
    assert sorted(i.name() for i in plot.listDataItems()) == ["loner", "paper-s0", "paper-s2"]
    widget.close()
