"""The Dataset tab's state, beside the per-image results in AppState: plain Python, no Qt."""

import pytest

from catviz.dataset_state import DatasetEvent, PassProgress
from catviz.state import AppState


def test_the_pass_lives_in_the_app_state_and_announces_each_step():
    state = AppState()
    d = state.dataset
    heard = []
    for event in DatasetEvent:
        d.subscribe(event, lambda *args, event=event: heard.append((event, *args)))
    d.start_run({"baseline": object(), "cat": object()})
    assert d.running
    d.set_progress(PassProgress(2, 7, 0, 10.0, 0.5))
    d.run_failed("tree is not in the checkpoint")
    assert not d.running and d.models_run is None
    assert [h[0] for h in heard] == [DatasetEvent.RUN_STARTED, DatasetEvent.PROGRESS_CHANGED,
                                     DatasetEvent.RUN_FAILED, DatasetEvent.ERROR]
    assert [m.text for m in state.messages] == ["tree is not in the checkpoint"]  # in the app's Messages too


def test_dataset_events_are_members_of_their_own_enum_with_typed_payloads():
    d = AppState().dataset
    with pytest.raises(TypeError, match="use DatasetEvent.REPORT_READY"):
        d.subscribe("report_ready", print)
    with pytest.raises(TypeError, match="progress must be PassProgress"):
        d.set_progress((2, 7, 0, 10.0, 0.5))  # the old tuple
    assert all(event.doc for event in DatasetEvent)


def test_a_raising_dataset_subscriber_is_reported_and_the_others_still_hear(subscriber_errors):
    state = AppState()
    heard = []
    state.dataset.subscribe(DatasetEvent.OPENING, lambda name: 1 / 0)
    state.dataset.subscribe(DatasetEvent.OPENING, heard.append)
    state.dataset.opening("coco")
    assert heard == ["coco"] and "ZeroDivisionError" in state.messages[-1].text
    subscriber_errors.clear()  # expected
