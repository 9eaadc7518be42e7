"""catviz.map_memo: a map's summary computed once per array, never handed to another array."""

import gc

import numpy as np

from catviz import map_memo
from catviz.evidence import evidence_totals
from catviz.render import symmetric_scale


def test_a_summary_is_computed_once_per_array_and_key():
    calls = []
    heat = np.arange(6.0)
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert map_memo.per_map(heat, "k", compute) == map_memo.per_map(heat, "k", compute) == 1
    assert map_memo.per_map(heat, "other", compute) == 2
    assert map_memo.per_map(heat.copy(), "k", compute) == 3  # equal values, another array: computed again
    assert map_memo.per_map([1.0, 2.0], "k", compute) == 4 and map_memo.per_map([1.0, 2.0], "k", compute) == 5


def test_a_freed_arrays_entry_never_answers_for_a_new_one_at_its_address():
    first = np.full(1000, 1.0)
    assert symmetric_scale([first]).limit == 1.0
    del first
    gc.collect()
    for value in range(2, 40):  # new arrays often reuse a freed one's id
        again = np.full(1000, float(value))
        assert symmetric_scale([again]).limit == value
        assert evidence_totals(again).positive == value


def test_the_memo_stays_bounded():
    kept = [np.zeros(2) for _ in range(map_memo.LIMIT + 50)]
    for heat in kept:
        map_memo.per_map(heat, "bounded", lambda: 0)
    assert len(map_memo._memo) <= map_memo.LIMIT
