"""The report's definitions, checked on numbers computed by hand."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from catviz.dataset_report import (
    NO_BOX,
    PIXEL_BUCKETS,
    ReportInput,
    bucket_index,
    build_report,
    filter_images,
    gains,
    largest_objects,
    losses,
    report_json,
)

# Four images, three labels, input size 100. Boxes: (label, width, height, crowd).
SIZES = np.array([[100, 200], [50, 50], [400, 400], [100, 100]])  # (height, width)
BOXES = [
    np.array([[0, 40, 20, 0], [1, 150, 80, 0], [1, 10, 10, 0]], float),
    np.array([[0, 30, 30, 0], [2, 50, 50, 1], [2, 5, 5, 0]], float),  # label 2: the crowd region is not used
    np.array([[1, 400, 400, 0], [2, 200, 100, 1]], float),  # label 2: only a crowd region, so it is used
    np.zeros((0, 4)),
]
TARGETS = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, 0]], np.int8)  # image 2's label 0 has no box
BASELINE = np.array([[0.9, 0.2, 0.1], [0.4, 0.1, 0.6], [0.6, 0.7, 0.3], [0.5, 0.1, 0.1]], np.float32)
CAT = np.array([[0.9, 0.8, 0.1], [0.3, 0.1, 0.4], [0.6, 0.7, 0.3], [0.2, 0.1, 0.1]], np.float32)


def make_input(**changes) -> ReportInput:
    fields = dict(
        class_names=["a", "b", "c"], paths=[Path(f"{i}.png") for i in range(4)], targets=TARGETS,
        probabilities={"baseline": BASELINE, "cat": CAT},
        level_logits={"cat": {"P5": np.log(CAT / (1 - CAT)), "P3": np.zeros_like(CAT)}},
        boxes=BOXES, sizes=SIZES, input_size=100, failed={}, scored=np.ones(4, bool))
    return ReportInput(**(fields | changes))


def test_largest_object_in_pixels_of_the_evaluated_input():
    area, share = largest_objects(BOXES, SIZES, 3, input_size=100)
    # image 0 (200 wide, 100 high) is resized to 100x100: widths halve, heights stay.
    assert area[0, 0] == pytest.approx(40 * 20 * 0.5) and share[0, 0] == pytest.approx(800 / 20000)
    assert area[0, 1] == pytest.approx(150 * 80 * 0.5)  # the larger of its two boxes
    # image 1 (50x50) is doubled in each direction.
    assert area[1, 0] == pytest.approx(900 * 4)
    assert area[1, 2] == pytest.approx(25 * 4) and share[1, 2] == pytest.approx(0.01)
    assert area[2, 1] == pytest.approx(100 * 100) and share[2, 1] == pytest.approx(1.0)
    assert area[2, 2] == pytest.approx(200 * 100 / 16)
    assert np.isnan(area[2, 0]) and np.isnan(area[3]).all()
    buckets = bucket_index(area, PIXEL_BUCKETS)
    assert buckets[0, 0] == 0 and buckets[0, 1] == 1 and buckets[1, 0] == 1 and buckets[1, 2] == 0
    assert buckets[2, 1] == 2 and buckets[2, 2] == 1 and buckets[2, 0] == len(PIXEL_BUCKETS)  # no box
    edges = bucket_index(np.array([32.0**2 - 1e-9, 32.0**2, 96.0**2 - 1e-9, 96.0**2]), PIXEL_BUCKETS)
    assert edges.tolist() == [0, 1, 1, 2]  # COCO: small < 32², medium < 96², large


def test_recall_and_ap_per_size_bucket_by_hand():
    report = build_report(make_input())
    rows = {r["bucket"]: r for r in report.by_size["pixels"]}
    assert [r["bucket"] for r in report.by_size["pixels"]] == ["small", "medium", "large", NO_BOX]
    assert rows["small"]["pairs"] == 2 and rows["medium"]["pairs"] == 3 and rows["large"]["pairs"] == 1
    assert rows[NO_BOX]["pairs"] == 1
    # small: (0, a) p=.9 and (1, c) p=.6 for the baseline; CAT drops (1, c) to .4
    assert rows["small"]["recall_baseline"] == pytest.approx(100) and rows["small"]["recall_cat"] == pytest.approx(50)
    # medium: (0, b), (1, a), (2, c): baseline .2 .4 .3, CAT .8 .3 .3
    assert rows["medium"]["recall_baseline"] == pytest.approx(0) and rows["medium"]["recall_cat"] == pytest.approx(100 / 3)
    # medium AP, baseline: b: positive image 0 (.2) vs negatives 1 (.1), 3 (.1) → 1;
    # a: positive image 1 (.4) vs negative 3 (.5) → 1/2; c: image 2 (.3) vs 0 (.1), 3 (.1) → 1
    assert rows["medium"]["AP_baseline"] == pytest.approx(100 * 2.5 / 3)
    assert rows["large"]["AP_baseline"] == pytest.approx(100) and rows["large"]["recall_baseline"] == pytest.approx(100)
    shares = {r["bucket"]: r["pairs"] for r in report.by_size["share"]}
    assert shares == {"< 1%": 0, "1-5%": 2, "5-20%": 1, "≥ 20%": 3, NO_BOX: 1}  # (0, b) 60%, (1, a) 36%, (2, b) 100%


def test_per_image_gain_fixes_and_breaks_by_hand():
    report = build_report(make_input())
    np.testing.assert_allclose(report.f1["baseline"], [2 / 3, 2 / 3, 0.8, 0.0])
    np.testing.assert_allclose(report.f1["cat"], [1.0, 0.0, 0.8, 1.0])  # image 3: nothing true, nothing predicted
    np.testing.assert_allclose(report.f1_gain, [1 / 3, -2 / 3, 0.0, 1.0])
    # image 0: +.6 on the true label b; image 3: -.3 on a label that is absent → +.3
    np.testing.assert_allclose(report.probability_gain, [0.6, -0.1 - 0.2, 0.0, 0.3], atol=1e-6)
    assert report.ranking.tolist() == [3, 0, 2, 1]
    assert report.fixes.tolist() == [True, False, False, False]
    assert report.breaks.tolist() == [False, True, False, False]
    assert filter_images(report, fixes=True).tolist() == [0]
    assert filter_images(report, breaks=True).tolist() == [1]
    assert filter_images(report, label=1).tolist() == [0, 2]  # images where b is present
    assert filter_images(report, bucket=0).tolist() == [0, 1]  # a small object of any label
    assert filter_images(report, label=0, bucket=1).tolist() == [1]
    # with a label (or bucket) chosen, "fixes a miss" / "breaks a hit" mean a miss or hit of that
    # label (bucket): image 0 fixes b, not a; image 1 breaks c (a small object), not a (medium)
    assert report.fixed[0].tolist() == [False, True, False] and report.broken[1].tolist() == [False, False, True]
    assert filter_images(report, label=1, fixes=True).tolist() == [0]
    assert filter_images(report, label=0, fixes=True).tolist() == []
    assert filter_images(report, label=2, breaks=True).tolist() == [1]
    assert filter_images(report, label=0, breaks=True).tolist() == []
    assert filter_images(report, bucket=0, breaks=True).tolist() == [1]
    assert filter_images(report, bucket=1, breaks=True).tolist() == []


def test_gains_and_losses_hold_only_images_where_cat_does_better_or_worse():
    report = build_report(make_input())
    assert gains(report).tolist() == [3, 0] and losses(report).tolist() == [1]  # image 2: a tie, in neither
    cat = CAT.copy()
    cat[2, 0] = 0.55  # still a hit: F1 unchanged, probability gain -0.05
    report = build_report(make_input(probabilities={"baseline": BASELINE, "cat": cat}))
    assert gains(report).tolist() == [3, 0] and losses(report).tolist() == [1, 2]  # worst first


def test_summary_is_catviz_evals_metrics_and_failed_images_are_left_out():
    data = make_input(scored=np.array([True, True, True, False]), failed={3: "3.png: corrupt"})
    report = build_report(data)
    # images 0-2 only. Predicted at 0.5, baseline: a on 0 and 2, b on 2, c on 1 - all true.
    # Per label (correct / predicted / true): a 2/2/3, b 1/1/2, c 1/1/2.
    # CP = mean(1, 1, 1); CR = mean(2/3, 1/2, 1/2) = 5/9; CF1 = 2 CP CR / (CP + CR) = 5/7;
    # OP = 4/4; OR = 4/7; OF1 = 8/11. Every label's positives outrank its negatives: mAP 100.
    # (With the failed image 3 counted, its a at .5 would be a false positive: CP 8/9, OP 4/5.)
    expected = {"mAP": 100, "CP": 100, "CR": 500 / 9, "CF1": 500 / 7, "OP": 100, "OR": 400 / 7, "OF1": 800 / 11}
    assert {key: report.summary["baseline"][key] for key in expected} == pytest.approx(expected)
    # the CAT: a on 0 and 2, b on 0 and 2, c never: a 2/2/3, b 2/2/2, c 0/0/2;
    # CP = mean(1, 1, 0) (no prediction: precision 0), CR = mean(2/3, 1, 0) = 5/9, OP 1, OR 4/7
    expected = {"CP": 200 / 3, "CR": 500 / 9, "OP": 100, "OR": 400 / 7}
    assert {key: report.summary["cat"][key] for key in expected} == pytest.approx(expected)
    # sklearn's definitions agree: macro precision / recall, micro precision / recall
    predicted = BASELINE[:3] >= 0.5
    assert report.summary["baseline"]["CR"] == pytest.approx(
        100 * recall_score(TARGETS[:3], predicted, average="macro", zero_division=0))
    assert report.summary["baseline"]["OR"] == pytest.approx(
        100 * recall_score(TARGETS[:3], predicted, average="micro", zero_division=0))
    assert report.summary["cat"]["CP"] == pytest.approx(
        100 * precision_score(TARGETS[:3], CAT[:3] >= 0.5, average="macro", zero_division=0))
    assert set(report.summary["cat"]["levels"]) == {"P5", "P3"}
    assert report.summary["cat"]["levels"]["P5"] == pytest.approx(report.summary["cat"]["mAP"])
    assert report.ranking.tolist() == [0, 2, 1]
    per_class = {r["label"]: r for r in report.per_class}
    assert per_class["a"]["positives"] == 3
    assert per_class["a"]["delta"] == pytest.approx(per_class["a"]["AP_cat"] - per_class["a"]["AP_baseline"])
    objects = report_json(report, data)
    assert objects["summary"]["failed"] == 1 and objects["summary"]["failed_images"] == {"3.png": "3.png: corrupt"}
    assert [img["path"] for img in objects["images"]] == ["0.png", "2.png", "1.png"]
    assert objects["images"][0]["objects"]["a"]["bucket"] == "small"


def test_bucket_ap_from_one_sort_equals_ap_of_the_subset():
    from catviz.dataset_report import subset_average_precision
    from catviz.train_cli.metrics import average_precision

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 500) / 20  # many ties
    positive = rng.random(500) < 0.3
    order = np.argsort(-scores, kind="stable")
    for _ in range(20):
        keep = rng.random(500) < 0.5
        expected = average_precision(scores[keep], positive[keep].astype(np.int8))
        assert subset_average_precision(order, positive, keep) == pytest.approx(expected, abs=1e-12)
