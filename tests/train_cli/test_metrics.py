import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from catviz.train_cli.metrics import average_precision, multilabel_metrics


def test_ap_matches_scikit_learn_on_random_data():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 6))
    targets = (rng.random((200, 6)) < 0.3).astype(int)
    result = multilabel_metrics(scores, targets)
    for c in range(6):
        assert result["AP"][c] == pytest.approx(100 * average_precision_score(targets[:, c], scores[:, c]))
    assert result["mAP"] == pytest.approx(np.mean(result["AP"]))


def test_ap_by_hand_and_difficult_entries_ignored():
    # ranks: pos(1) neg pos(3) → (1/1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx(5 / 6)
    # a difficult entry ranked above is not counted as a negative
    assert average_precision(np.array([0.95, 0.9, 0.8, 0.7]), np.array([-1, 1, 0, 1])) == pytest.approx(5 / 6)


def test_threshold_metrics_by_hand():
    scores = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.8], [0.6, 0.1, 0.4]])
    targets = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    r = multilabel_metrics(scores, targets)
    # class 0: Np=2 Nc=1 Ng=1; class 1: Np=2 Nc=1 Ng=1; class 2: Np=1 Nc=1 Ng=2
    assert r["OP"] == pytest.approx(100 * 3 / 5)
    assert r["OR"] == pytest.approx(100 * 3 / 4)
    assert r["CP"] == pytest.approx(100 * (0.5 + 0.5 + 1) / 3)
    assert r["CR"] == pytest.approx(100 * (1 + 1 + 0.5) / 3)
    cp, cr = (0.5 + 0.5 + 1) / 3, (1 + 1 + 0.5) / 3
    assert r["CF1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))
    # top-1: image 0 → class 0, image 1 → class 2, image 2 → class 0: 2 correct of 3
    top1 = multilabel_metrics(scores, targets, top_k=1)["top1"]
    assert top1["OP"] == pytest.approx(100 * 2 / 3)


def test_class_without_positives_is_excluded_and_reported():
    scores = np.array([[0.9, 0.2], [0.1, 0.3]])
    targets = np.array([[1, 0], [0, 0]])
    r = multilabel_metrics(scores, targets)
    assert r["excluded"] == [1]
    assert np.isnan(r["AP"][1])
    assert r["mAP"] == pytest.approx(100.0)


def test_logits_are_refused():
    with pytest.raises(ValueError, match="probabilities"):
        multilabel_metrics(np.array([[2.0, -1.0]]), np.array([[1, 0]]))
