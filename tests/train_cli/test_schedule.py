"""train_cli/schedule.py: the convergence test that ends a run past --epochs."""

import math

import pytest

from catviz.train_cli.schedule import converged, lr_factor, tail_span


def test_tail_span_is_the_range_of_the_last_window_values():
    assert tail_span([10.0, 50.0, 51.0, 50.5, 50.8], 3) == 0.5
    assert math.isnan(tail_span([50.0, 51.0], 3))  # not enough epochs yet
    assert math.isnan(tail_span([50.0, math.nan, 51.0], 3))  # an undefined mAP is never "flat"
    assert math.isnan(tail_span([math.nan, 50.0, 51.0], 3))  # wherever it sits (max/min of NaN depend on order)


def test_converged_needs_a_full_window_within_delta():
    history = [60.0, 70.0, 80.0, 80.3, 80.1, 80.4]
    assert converged(history, 3, 0.5) and not converged(history, 3, 0.3)
    assert not converged(history, 5, 0.5)  # 70 -> 80 is inside a 5-epoch window
    assert not converged(history[:2], 3, 100.0)


def test_step_rate_past_the_minimum_epochs_is_what_an_uninterrupted_run_sees():
    # Training on past --epochs is resuming the same schedule: the rate depends on progress only.
    assert lr_factor(17.5, 16, "step", 10) == lr_factor(17.5, 24, "step", 10) == 0.1
    assert lr_factor(21.0, 16, "step", 10) == pytest.approx(0.01)
