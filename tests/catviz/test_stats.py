"""catviz.stats: the paired bootstrap and the exact McNemar test, against derivations written out here."""

import math

import numpy as np
import pytest

from catviz import stats
from catviz.dataset_report import ReportInput
from catviz.study import build_study
from catviz.train_cli.metrics import multilabel_metrics


@pytest.mark.parametrize("fixed, broken, p", [
    (8, 1, 0.0390625),  # n = 9: 2 * (C(9,0) + C(9,1)) / 2^9 = 2 * 10 / 512
    (1, 8, 0.0390625),
    (10, 2, 2 * (1 + 12 + 66) / 4096),
    (5, 5, 1.0),
    (0, 0, 1.0),
    (0, 6, 2 / 64),
])
def test_exact_mcnemar_on_hand_cases(fixed, broken, p):
    assert stats.mcnemar_exact(fixed, broken) == pytest.approx(p, rel=1e-12)


def _literal(scores, targets, counts, threshold=0.5):
    """The resampled image lists built for real (copies of an image next to each other) and
    scored with train_cli's own metrics."""
    rows = []
    for draw in counts:
        index = np.repeat(np.arange(len(draw)), draw)
        rows.append(multilabel_metrics(scores[index], targets[index], threshold))
    return rows


def test_resampled_statistics_equal_the_metrics_on_the_literally_resampled_images():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random((30, 4)), 1)  # rounded: many ties
    targets = (rng.random((30, 4)) < 0.35).astype(np.int8)
    targets[0, 0] = -1  # a difficult label
    counts = stats.bootstrap_counts(30, 300, seed=5)  # more than one block of resamples (stats._CHUNK)
    assert counts.shape == (300, 30) and (counts.sum(1) == 30).all() and 300 > stats._CHUNK
    aps, maps = stats.mean_ap_counts(scores, targets, counts)
    f1 = stats.f1_counts(scores >= 0.5, targets, counts)
    for r, expected in enumerate(_literal(scores, targets, counts)):
        np.testing.assert_allclose(aps[r], expected["AP"], equal_nan=True)
        assert maps[r] == pytest.approx(expected["mAP"])
        assert f1["CF1"][r] == pytest.approx(expected["CF1"]) and f1["OF1"][r] == pytest.approx(expected["OF1"])


def _data(probabilities: dict[str, np.ndarray], targets: np.ndarray) -> ReportInput:
    n, labels = targets.shape
    return ReportInput([f"l{c}" for c in range(labels)], [f"{i}.png" for i in range(n)], targets,
                       probabilities, {}, [np.zeros((0, 4))] * n, np.full((n, 2), 64), 64, {}, np.ones(n, bool))


def test_the_draws_made_in_blocks_are_numpy_s_one_call_draws():
    """Blocks keep memory down without changing a seed's resamples (reports stay reproducible)."""
    n, resamples = 50, 2 * stats._CHUNK + 7
    whole = np.random.default_rng(3).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    counts = stats.bootstrap_counts(n, resamples, seed=3)
    np.testing.assert_array_equal(counts, whole)
    assert counts.dtype == np.uint8  # 1 byte an entry: a COCO split's 40,504 x 1,000 draws in 41 MB


def test_a_real_difference_excludes_zero_and_noise_spans_it():
    rng = np.random.default_rng(0)
    targets = (rng.random((60, 3)) < 0.4).astype(np.int8)
    targets[0] = 1
    perfect = np.where(targets == 1, 0.9, 0.1)
    noise_a, noise_b = rng.random((60, 3)), rng.random((60, 3))
    found = build_study(_data({"a": noise_a, "b": perfect, "c": noise_b}, targets),
                        {"a": "A", "b": "B", "c": "C"}, "a", resamples=500, seed=3)
    better, same = found.comparisons
    assert better["b"] == "B" and better["ci95"][0] > 0 and not better["spans_zero"]
    assert same["b"] == "C" and same["ci95"][0] < 0 < same["ci95"][1] and same["spans_zero"]
    assert all(not row["spans_zero"]["B"] for row in found.per_class)
    assert all(row["spans_zero"]["C"] for row in found.per_class)  # two noise models: no class told apart
    # the point estimate is the plain difference of the two mAPs (train_cli's metric)
    expected = multilabel_metrics(perfect, targets)["mAP"] - multilabel_metrics(noise_a, targets)["mAP"]
    assert better["delta_mAP"] == pytest.approx(expected)


def test_the_interval_is_the_percentile_interval_of_the_literal_paired_bootstrap():
    rng = np.random.default_rng(2)
    targets = (rng.random((25, 3)) < 0.4).astype(np.int8)
    a, b = rng.random((25, 3)), np.clip(rng.random((25, 3)) * 0.6 + 0.4 * targets, 0, 1)
    found = build_study(_data({"a": a, "b": b}, targets), {"a": "A", "b": "B"}, "a", resamples=200, seed=11)
    counts = np.random.default_rng(11).multinomial(25, np.full(25, 1 / 25), size=200)  # the draw, as documented
    deltas = [mb["mAP"] - ma["mAP"] for ma, mb in zip(_literal(a, targets, counts), _literal(b, targets, counts),
                                                      strict=True)]
    assert found.comparisons[0]["ci95"] == pytest.approx(list(np.percentile(deltas, [2.5, 97.5])))


def test_the_seed_reproduces_the_intervals_and_another_seed_moves_them():
    rng = np.random.default_rng(4)
    targets = (rng.random((40, 2)) < 0.5).astype(np.int8)
    data = _data({"a": rng.random((40, 2)), "b": rng.random((40, 2))}, targets)

    def ci(seed):
        return build_study(data, {"a": "A", "b": "B"}, "a", resamples=300, seed=seed).comparisons[0]["ci95"]

    assert ci(7) == ci(7) and ci(7) != ci(8)


def test_weighted_means_over_images():
    counts = np.array([[1, 1, 1], [3, 0, 0], [0, 0, 3]])
    sums, numbers = np.array([2.0, 3.0, 0.0]), np.array([2, 1, 0])  # image 2 has no pair
    means = stats.weighted_mean_counts(sums, numbers, counts)
    assert means[0] == pytest.approx(5 / 3) and means[1] == pytest.approx(1.0) and math.isnan(means[2])


def test_a_study_decides_at_the_threshold_in_float64_as_the_tables_show():
    """A float32 probability 0.21 is 0.2099999934: below a threshold of 0.21, as the table's
    float64 says, though a float32 comparison would put it at the threshold."""
    targets = np.ones((4, 1), np.int8)
    shown = np.array([[0.21], [0.9], [0.9], [0.9]], np.float32)
    other = np.array([[0.9], [0.9], [0.9], [0.9]], np.float32)
    assert (shown >= 0.21)[0, 0]  # NumPy 2 compares float32 with a Python float in float32
    found = build_study(_data({"a": other, "b": shown}, targets), {"a": "A", "b": "B"}, "a", resamples=100,
                        threshold=0.21)
    assert found.broken["b"][0, 0] and found.comparisons[0]["labels"]["broken"] == 1

