"""What each offered map method's numbers mean, stated once for views and export."""

import pytest

import models.attribution
from catviz.methods import ATTRIBUTION_METHODS, CAM, METHODS, DeletionScore, method_info
from catviz.results import GRAD_CAM_METHODS


def test_every_offered_method_is_described_and_the_lists_agree_with_the_model_side():
    assert ATTRIBUTION_METHODS == models.attribution.ATTRIBUTION_METHODS
    assert METHODS == (CAM, *GRAD_CAM_METHODS, *ATTRIBUTION_METHODS)
    for name in METHODS:
        info = method_info(name)
        assert info.units and info.title
    assert method_info(CAM).signed and method_info(CAM).layered
    assert method_info("EigenCAM").label_independent and not method_info("EigenCAM").signed
    assert not method_info("Occlusion").layered and method_info("Integrated Gradients").signed
    with pytest.raises(ValueError, match="offered"):
        method_info("GuidedBackprop")


def test_a_deletion_score_is_the_relative_number_and_keeps_the_raw_area():
    score = DeletionScore(0.45, 0.235)
    assert score == 0.45 and f"{score:.3f}" == "0.450" and 0 <= score <= 1
    assert score.raw == 0.235
