"""``catviz-eval C1 C2 C3 --compare --report DIR``: any number of models against a reference,
with intervals an independent bootstrap over ``scores.npz`` reproduces."""

import json
import shutil

import numpy as np
import pytest

from catviz import eval_cli
from catviz.explain_study import box_measures, cell_cover, label_boxes
from catviz.models.faithfulness import boxes_mask
from catviz.train_cli.metrics import multilabel_metrics
from tests.catviz.conftest import make_checkpoint
from tests.catviz.dataset_fixtures import VAL, small_checkpoints, write_boxes_dataset  # noqa: F401 (fixture)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CATVIZ_CACHE_DIR", str(tmp_path / "cache"))
    return write_boxes_dataset(tmp_path / "data", broken=(3,))


@pytest.fixture(scope="module")
def third(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("third") / "cat_seed1.safetensors", "cat_tiny", seed=1, input_size=32)


def compare(paths, data_root, report, *more):
    return eval_cli.main([*map(str, paths), "--compare", "--report", str(report), "--dataset", "coco-format",
                          "--data-root", str(data_root), "--workers", "0", *more])


def test_three_models_against_the_first_baseline_with_reproducible_intervals(
        small_checkpoints, third, data_root, tmp_path, capsys):  # noqa: F811
    paths = [small_checkpoints["cat"], small_checkpoints["baseline"], third]
    plain = tmp_path / "eval.json"
    assert eval_cli.main([*map(str, paths), "--dataset", "coco-format", "--data-root", str(data_root),
                          "--workers", "0", "--json", str(plain)]) == 0
    expected = json.loads(plain.read_text())["results"]
    report = tmp_path / "report"
    assert compare(paths, data_root, report, "--bootstrap", "100", "--seed", "3") == 0
    assert sorted(p.name for p in report.iterdir()) == ["report.html", "report.json", "scores.npz"]
    contract = json.loads((report / "report.json").read_text())
    models = contract["models"]
    assert [m["checkpoint"] for m in models] == [str(p) for p in paths]  # command-line order
    assert [m["reference"] for m in models] == [False, True, False]  # the first baseline given
    for m, row in zip(models, expected, strict=True):
        for key in ("mAP", "CF1", "OF1"):
            assert m[key] == pytest.approx(row[key]), key
    assert contract["bootstrap"]["resamples"] == 100 and contract["bootstrap"]["seed"] == 3
    assert [c["b"] for c in contract["comparisons"]] == [models[0]["name"], models[2]["name"]]
    assert all(c["a"] == models[1]["name"] for c in contract["comparisons"])
    assert len(models[0]["levels"]) == 3 and not models[1]["levels"]  # CAT's three classifiers alone

    # an independent paired bootstrap over scores.npz: the documented draw, train_cli's metrics
    scores = np.load(report / "scores.npz")
    targets, probabilities = scores["targets"], scores["probabilities"]
    assert probabilities.shape == (3, len(VAL) - 1, 5) and list(scores["models"]) == [m["name"] for m in models]
    draws = np.random.default_rng(3).multinomial(len(targets), np.full(len(targets), 1 / len(targets)), size=100)
    for k, comparison in ((0, contract["comparisons"][0]), (2, contract["comparisons"][1])):
        deltas, cf1 = [], []
        for draw in draws:
            index = np.repeat(np.arange(len(targets)), draw)
            ref, other = (multilabel_metrics(probabilities[j][index].astype(np.float64), targets[index]) for j in (1, k))
            deltas.append(other["mAP"] - ref["mAP"])
            cf1.append(other["CF1"] - ref["CF1"])
        assert comparison["ci95"] == pytest.approx(list(np.nanpercentile(deltas, [2.5, 97.5])))
        assert comparison["ci95_CF1"] == pytest.approx(list(np.percentile(cf1, [2.5, 97.5])))
        truth = targets == 1
        hit_ref, hit = probabilities[1] >= 0.5, probabilities[k] >= 0.5
        assert comparison["labels"]["fixed"] == int((truth & ~hit_ref & hit).sum())
        assert comparison["labels"]["broken"] == int((truth & hit_ref & ~hit).sum())

    # explanations: each level's sources sum to its logit; every model, every level
    ex = contract["explanations"]
    for name, levels in ex["layer_share"].items():
        for level, buckets in levels.items():
            for row in buckets.values():
                parts = sum(v for k, v in row.items() if k not in ("logit", "n", "ci95"))
                assert parts == pytest.approx(row["logit"], abs=1e-4), (name, level)
    assert set(ex["evidence"]) == {m["name"] for m in models}
    assert set(ex["fine_minus_coarse"]) == {models[0]["name"], models[2]["name"]}  # the CAT models
    page = (report / "report.html").read_text()
    for section in ("with 95% intervals", "Per class, with intervals", "By object size, with intervals",
                    "Explanations over the split", "seed 3", "100 resamples"):
        assert section in page
    assert page.count("<circle") >= 2 * 5  # two comparisons x five classes with error bars
    again = tmp_path / "again"
    assert compare(paths, data_root, again, "--bootstrap", "100", "--seed", "3", "--no-explanations") == 0
    assert json.loads((again / "report.json").read_text())["comparisons"] == contract["comparisons"]
    out = capsys.readouterr().out
    assert "100 resamples, seed 3" in out and "exact McNemar p" in out


def test_a_class_whose_interval_spans_zero_is_marked(small_checkpoints, third, data_root, tmp_path):  # noqa: F811
    report = tmp_path / "r"
    assert compare([small_checkpoints["cat"], third], data_root, report, "--bootstrap", "100",
                   "--no-explanations") == 0
    contract = json.loads((report / "report.json").read_text())
    name = contract["comparisons"][0]["b"]
    spanning = [r["label"] for r in contract["per_class"] if r["spans_zero"][name]]
    for row in contract["per_class"]:
        lo, hi = row["ci95"][name]
        assert row["spans_zero"][name] == (lo is None or lo <= 0 <= hi)
    assert spanning  # 6 images: two random models are not told apart on some class
    page = (report / "report.html").read_text()
    assert "Classes whose interval contains 0" in page and "≈0" in page


@pytest.mark.parametrize("more, message", [
    (["--bootstrap", "5"], "--bootstrap: 5 is outside [100, 100000]"),
    (["--bootstrap", "1000000"], "--bootstrap: 1000000 is outside [100, 100000]"),
    (["--bootstrap", "many"], "--bootstrap: 'many' is not an integer in [100, 100000]"),
    (["--seed", "-1"], "--seed: -1 is outside [0, 4294967295]"),
])
def test_bootstrap_settings_out_of_range_are_usage_errors(small_checkpoints, tmp_path, capsys, more, message):  # noqa: F811
    paths = [small_checkpoints["baseline"], small_checkpoints["cat"]]
    assert compare(paths, tmp_path / "nowhere", tmp_path / "r", *more) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_bootstrap_flags_need_compare(small_checkpoints, tmp_path, capsys):  # noqa: F811
    assert eval_cli.main([str(small_checkpoints["cat"]), "--seed", "4"]) == 2
    assert "--seed: need --compare" in capsys.readouterr().err


def test_the_same_checkpoint_twice_is_said(small_checkpoints, data_root, tmp_path, capsys):  # noqa: F811
    cat = small_checkpoints["cat"]
    assert compare([cat, small_checkpoints["baseline"], cat], data_root, tmp_path / "r1") == 2
    assert "is given twice" in capsys.readouterr().err
    copy = tmp_path / "copy.safetensors"
    shutil.copy(cat, copy)
    assert compare([cat, copy], data_root, tmp_path / "r2") == 2
    err = capsys.readouterr().err
    assert "are the same checkpoint" in err and str(copy) in err and not any((tmp_path / "r2").iterdir())


def test_reference_by_name_and_a_name_that_matches_none(small_checkpoints, third, data_root, tmp_path, capsys):  # noqa: F811
    paths = [small_checkpoints["baseline"], small_checkpoints["cat"], third]
    assert compare(paths, data_root, tmp_path / "r1", "--reference", "nothing", "--no-explanations") == 2
    err = capsys.readouterr().err
    assert "--reference 'nothing' matches none" in err and str(third) in err and "cat_tiny" in err
    assert compare(paths, data_root, tmp_path / "r2", "--reference", "cat_tiny", "--no-explanations") == 2
    assert "matches several" in capsys.readouterr().err
    assert compare(paths, data_root, tmp_path / "r3", "--reference", "cat_seed1", "--no-explanations",
                   "--bootstrap", "100") == 0
    contract = json.loads((tmp_path / "r3" / "report.json").read_text())
    assert [m["reference"] for m in contract["models"]] == [False, False, True]


def test_other_labels_are_refused_naming_both(small_checkpoints, data_root, tmp_path, capsys):  # noqa: F811
    other = make_checkpoint(tmp_path / "other.safetensors", "cat_tiny", classes=["a", "b"], input_size=32)
    assert compare([small_checkpoints["baseline"], small_checkpoints["cat"], other], data_root, tmp_path / "r") == 1
    err = capsys.readouterr().err
    assert str(other) in err and str(small_checkpoints["baseline"]) in err and "labels" in err


# token-depth measures on hand-made maps ------------------------------------------------
def test_box_measures_at_token_depth():
    mask = boxes_mask((8, 8), np.array([[0, 0, 4, 4]]))  # the top-left quarter of an 8x8 input
    cover = cell_cover(mask, (2, 2))
    np.testing.assert_allclose(cover, [[1, 0], [0, 0]])
    assert box_measures(np.array([[2.0, -1.0], [0.0, 0.0]]), cover) == (1.0, 1.0, 0.25)
    in_box, pointing, chance = box_measures(np.array([[1.0, 3.0], [0.0, -5.0]]), cover)
    assert in_box == pytest.approx(0.25) and pointing == 0.0
    half = cell_cover(boxes_mask((8, 8), np.array([[0, 0, 2, 4]])), (2, 2))  # half of the first cell
    np.testing.assert_allclose(half, [[0.5, 0], [0, 0]])
    assert box_measures(np.array([[1.0, 1.0], [0.0, 0.0]]), half)[0] == pytest.approx(0.25)
    assert np.isnan(box_measures(np.full((2, 2), -1.0), cover)[0])  # no positive evidence


def test_label_boxes_scale_to_the_input_and_prefer_solid_boxes():
    rows = np.array([[1, 0, 0, 60, 60, 1], [1, 10, 20, 30, 40, 0], [2, 0, 0, 5, 5, 0]], float)  # label, x0..y1, crowd
    np.testing.assert_allclose(label_boxes(rows, 1, (80, 120), 32), [[10 * 32 / 120, 20 * 32 / 80, 30 * 32 / 120,
                                                                       40 * 32 / 80]])
    np.testing.assert_allclose(label_boxes(rows[:1], 1, (80, 120), 32), [[0, 0, 16, 24]])  # crowd: only one
    assert label_boxes(rows, 3, (80, 120), 32).shape == (0, 4)


def test_a_split_with_no_readable_image_is_a_failure_not_a_traceback(small_checkpoints, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("CATVIZ_CACHE_DIR", str(tmp_path / "cache"))
    root = write_boxes_dataset(tmp_path / "data", broken=tuple(range(len(VAL))))
    assert compare([small_checkpoints["baseline"], small_checkpoints["cat"]], root, tmp_path / "r") == 1
    err = capsys.readouterr().err
    assert "no image of the val split could be scored" in err and "Traceback" not in err
    assert not any((tmp_path / "r").iterdir())
