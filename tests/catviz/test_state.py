"""The plain-Python state: no Qt needed to drive it."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from catviz import state as state_module
from catviz.models.outputs import LevelSpec, ModelSpec
from catviz.state import ATTRIBUTION, AppState, Event

SPEC = ModelSpec(role="cat", levels=(LevelSpec("A", 32, "gap", ("A",)), LevelSpec("B", 8, "pma", ("A", "B"))),
                 num_heads=4, lrd_layers=1, clf="pma", attention_keys=("lrd.0", "clf.B"))


def fake_model(classes=("x", "y", "z"), spec=SPEC):
    """What the state reads of a loaded model: its labels and its spec."""
    return SimpleNamespace(meta=SimpleNamespace(class_names=list(classes)), spec=spec, path=Path("m.safetensors"))


def fake_result(probabilities):
    return SimpleNamespace(probabilities=np.asarray(probabilities, dtype=np.float32))


def recorder(state):
    events = []
    for event in Event:
        state.subscribe(event, lambda *args, event=event: events.append(event))
    return events


def test_images_selection_and_events(tmp_path):
    state = AppState()
    events = recorder(state)
    (tmp_path / "d").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "d" / name).write_bytes(b"x")
    added = state.add_images([tmp_path / "d", tmp_path / "d" / "a.jpg", tmp_path / "x.txt"])
    assert [e.path.name for e in added] == ["a.jpg", "b.png", "x.txt"]  # folder: images only, no duplicates
    assert state.current == 0 and events[:2] == [Event.IMAGES_ADDED, Event.SELECTION_CHANGED]
    state.step(5)
    assert state.current == 2
    state.step(-9)
    assert state.current == 0
    state.set_image_data(added[2].path, None, "x.txt: not a readable image")
    assert [m.text for m in state.messages] == ["x.txt: not a readable image"] and Event.MESSAGE in events
    state.update_settings(threshold=0.3)
    assert state.settings.threshold == 0.3


def test_an_unreadable_first_image_gives_way_to_the_next_readable_one_unless_the_user_chose_it(tmp_path):
    state = AppState()
    paths = [tmp_path / f"{name}.png" for name in ("a_corrupt", "b_empty", "c_good", "d_good")]
    state.add_images(paths)
    assert state.current == 0  # selected automatically: the first of the first drop
    state.set_image_data(paths[1], None, "b_empty.png: empty file")  # decoded first, in the background
    state.set_image_data(paths[0], None, "a_corrupt.png: not a readable image")
    assert state.current == 2  # skipped to the next image not known to be bad
    state.set_image_data(paths[2], None, "c_good.png: truncated")
    assert state.current == 3  # and on, while the selection is still the automatic one
    state.select(0)  # the user's choice stays, readable or not
    state.set_image_data(paths[0], None, "a_corrupt.png: not a readable image")
    assert state.current == 0 and len(state.messages) == 4


def test_events_are_enum_members_and_a_string_is_refused():
    state = AppState()
    with pytest.raises(TypeError, match=r"not 'result_ready' \(use Event.RESULT_READY\)"):
        state.subscribe("result_ready", lambda *a: None)
    with pytest.raises(TypeError, match="Event members"):
        state.emit("grad_cam_ready")
    with pytest.raises(AttributeError, match="no display setting"):
        state.update_settings(treshold=0.2)
    with pytest.raises(ValueError, match="label_mode"):
        state.update_settings(label_mode="sticky")


def test_every_event_declares_its_payload_and_a_wrong_one_is_refused():
    assert all(event.payload and event.doc for event in Event)
    assert [name for name, _ in Event.RESULT_READY.payload] == ["path", "role"]
    state = AppState()
    heard = []
    state.subscribe(Event.RESULT_READY, lambda *args: heard.append(args))
    with pytest.raises(TypeError, match="path must be Path, not str"):
        state.emit(Event.RESULT_READY, "a.png", "cat")
    with pytest.raises(TypeError, match=r"carries \(path, role\), not 1 argument"):
        state.emit(Event.RESULT_READY, Path("a.png"))
    assert heard == []  # refused before anyone heard it
    state.set_result(Path("a.png"), "cat", fake_result([0.5]))
    assert heard == [(Path("a.png"), "cat")]


def test_a_raising_subscriber_is_reported_and_the_others_still_hear(caplog, subscriber_errors):
    state = AppState()
    heard = []

    def broken(keys):
        raise RuntimeError("a view's bug")

    state.subscribe(Event.SETTINGS_CHANGED, broken)
    state.subscribe(Event.SETTINGS_CHANGED, heard.append)
    with caplog.at_level("ERROR", logger="catviz.events"):
        state.update_settings(threshold=0.3)
    assert state.settings.threshold == 0.3 and heard == [{"threshold"}]  # the second subscriber heard it
    assert [m.error for m in state.messages] == [True]
    assert "broken" in state.messages[0].text and "RuntimeError: a view's bug" in state.messages[0].text
    assert "a view's bug" in caplog.records[0].exc_text  # the traceback is in the log
    subscriber_errors.clear()  # expected


def test_a_raising_message_subscriber_is_logged_without_recursion(caplog, subscriber_errors):
    state = AppState()
    calls = []

    def broken(message):
        calls.append(message)
        raise RuntimeError("the Messages dock broke")

    state.subscribe(Event.MESSAGE, broken)
    with caplog.at_level("ERROR", logger="catviz.events"):
        state.report("hello")
    assert [m.text for m in calls][0] == "hello" and len(calls) == 2  # the failure itself, once
    assert len(caplog.records) == 2
    subscriber_errors.clear()  # expected


def test_unsubscribe_ends_a_subscription():
    state = AppState()
    heard = []
    subscription = state.subscribe(Event.MODELS_CHANGED, heard.append)
    other = state.subscribe(Event.MODELS_CHANGED, lambda role: subscription.disconnect())
    state.set_model("cat", fake_model())
    state.unsubscribe(other)
    state.set_model("cat", None)
    subscription.disconnect()  # again: nothing happens
    assert heard == ["cat"] and state.subscribers(Event.MODELS_CHANGED) == 0


def test_setters_announce_only_a_change(tmp_path):
    state = AppState()
    state.add_images([tmp_path / "a.png", tmp_path / "b.png"])
    events = recorder(state)
    state.select(0)  # already selected
    state.update_settings(threshold=0.5, colormap=state.settings.colormap)  # the values it has
    state.set_progress("cat", ATTRIBUTION, None)  # no progress to end
    state.set_model("baseline", None)  # an empty slot stays empty
    assert events == []
    changed = []
    state.subscribe(Event.SETTINGS_CHANGED, changed.append)
    state.update_settings(threshold=0.5, opacity=0.8)
    assert changed == [{"opacity"}]


def test_results_of_a_replaced_model_are_dropped_by_generation():
    state = AppState()
    state.add_images([Path("a.png")])
    state.set_model("cat", fake_model())
    old = state.generation["cat"]
    state.set_model("cat", fake_model())  # reloaded while the old model's work was running
    assert not state.set_result(Path("a.png"), "cat", fake_result([0.1, 0.2, 0.3]), old)
    assert state.result("cat") is None
    assert state.set_result(Path("a.png"), "cat", fake_result([0.1, 0.2, 0.3]), state.generation["cat"])
    assert state.result("cat") is not None


def test_attributions_live_in_the_state_keyed_by_what_is_shown():
    state = AppState()
    state.add_images([Path("a.png")])
    state.set_model("cat", fake_model())
    assert state.attribution_key("cat") is None  # CAM needs no attribution
    state.update_settings(cam_method="ScoreCAM")
    assert state.attribution_key("cat") is None  # no label to explain before the first result
    state.set_result(Path("a.png"), "cat", fake_result([0.1, 0.9, 0.3]))
    key = state.attribution_key("cat")
    assert key == (Path("a.png"), "cat", "y", "B", "ScoreCAM", state.generation["cat"])  # finest level of the spec
    state.update_settings(cam_level="A")
    assert state.attribution_key("cat")[3] == "A"
    heat = np.ones((4, 4), np.float32)
    ready = []
    state.subscribe(Event.ATTRIBUTION_READY, ready.append)
    assert state.set_attribution(state.attribution_key("cat"), heat)
    assert state.attribution("cat") is heat and ready
    state.set_model("cat", fake_model())  # a new model: its maps are not the old one's
    assert state.attribution("cat") is None
    assert not state.set_attribution(key, heat)  # late work for the old model is dropped
    state.set_result(Path("a.png"), "cat", fake_result([0.1, 0.9, 0.3]))
    state.stop_attribution(state.attribution_key("cat"), "ScoreCAM cancelled")
    assert state.attribution_status("cat") == "ScoreCAM cancelled"
    state.update_settings(cam_method="GradCAM")  # choosing again asks again
    state.update_settings(cam_method="ScoreCAM")
    assert state.attribution_status("cat") is None


def test_the_path_share_is_kept_per_label_and_depth_for_every_level():
    """The complete CAM's path share (every level's) is asked for apart from its map: one per
    image, label and depth, whichever level the map shows; late work for an old model is dropped."""
    state = AppState()
    state.add_images([Path("a.png")])
    state.set_model("cat", fake_model())
    state.set_result(Path("a.png"), "cat", fake_result([0.1, 0.9, 0.3]))
    state.update_settings(cam_method="CAM", cam_depth="tokens")
    assert state.path_share_key("cat") is None  # at the tokens the layer share is shown
    state.update_settings(cam_method="GradCAM")
    assert state.path_share_key("cat") is None
    state.update_settings(cam_method="CAM", cam_depth="input")
    key = state.path_share_key("cat")
    assert key == (Path("a.png"), "cat", "y", "CAM@input", state.generation["cat"])
    state.update_settings(cam_level="A")
    assert state.path_share_key("cat") == key  # one path share serves every level's map
    heard = []
    state.subscribe(Event.PATH_SHARE_READY, heard.append)
    paths = {"A": {"offset": {"offset": 0.5}}}
    assert state.set_path_share(key, paths) and heard == [key]
    assert state.path_share("cat") is paths
    state.update_settings(cam_depth="c3")
    assert state.path_share("cat") is None  # another depth: another path share
    state.set_model("cat", fake_model())
    assert state.path_shares == {} and not state.set_path_share(key, paths)


def test_progress_is_per_panel_and_cancel_is_an_event():
    state = AppState()
    heard = []
    state.subscribe(Event.PROGRESS_CHANGED, lambda role, what: heard.append((role, what)))
    state.subscribe(Event.CANCEL_REQUESTED, lambda role, what: heard.append(("cancel", role, what)))
    state.set_progress("cat", ATTRIBUTION, 0.25)
    state.set_progress("cat", ATTRIBUTION, 0.25)
    assert state.progress == {("cat", ATTRIBUTION): 0.25} and heard == [("cat", ATTRIBUTION)]
    state.request_cancel("cat")
    state.set_progress("cat", ATTRIBUTION, None)
    assert state.progress == {} and heard[1:] == [("cancel", "cat", ATTRIBUTION), ("cat", ATTRIBUTION)]


def test_label_mode_top_prediction_or_a_fixed_label():
    state = AppState()
    paths = [Path("a.png"), Path("b.png")]
    state.add_images(paths)
    state.set_model("cat", fake_model())
    state.set_result(paths[0], "cat", fake_result([0.9, 0.1, 0.2]))
    state.set_result(paths[1], "cat", fake_result([0.1, 0.2, 0.8]))
    assert state.settings.label_mode == "top" and state.shown_label() == "x"
    state.update_settings(label="y")  # a clicked label holds for this image ...
    assert state.shown_label() == "y"
    state.select(1)  # ... and the next image shows its own top prediction
    assert state.shown_label() == "z"
    state.update_settings(label_mode="fixed", label="y")
    state.select(0)
    assert state.shown_label() == "y"


def test_display_copies_are_an_lru_cache_by_bytes_that_keeps_the_current_image(monkeypatch):
    image = np.zeros((100, 100, 3), np.uint8)  # 30 000 bytes
    monkeypatch.setattr(state_module, "MAX_IMAGE_BYTES", 3 * image.nbytes)
    state = AppState()
    paths = [Path(f"{i}.png") for i in range(5)]
    state.add_images(paths)
    for path in paths:
        state.set_image_data(path, image.copy(), None)
    kept = [e.path.name for e in state.images if e.image is not None]
    assert state.decoded_bytes <= 3 * image.nbytes
    assert "0.png" in kept and len(kept) == 3  # the image on screen stays, the oldest others go
    assert kept[1:] == ["3.png", "4.png"]
    state.select(1)  # dropped: the controller decodes it again
    assert state.current_entry.image is None


def test_result_cache_is_bounded_and_keeps_the_newest(monkeypatch):
    monkeypatch.setattr(state_module, "MAX_CACHED_RESULTS", 3)
    state = AppState()
    for i in range(5):
        state.set_result(Path(f"{i}.png"), "cat", object())
    assert [p.name for p, _ in state.results] == ["2.png", "3.png", "4.png"]
    state.set_result(Path("2.png"), "cat", np.zeros(1))  # refreshed: now the newest
    state.set_result(Path("5.png"), "cat", object())
    assert [p.name for p, _ in state.results] == ["4.png", "2.png", "5.png"]


def test_result_cache_is_bounded_by_bytes_too(monkeypatch):
    monkeypatch.setattr(state_module, "MAX_RESULT_BYTES", 2500)
    state = AppState()
    for i in range(4):
        state.set_result(Path(f"{i}.png"), "cat", SimpleNamespace(nbytes=1000))
    assert [p.name for p, _ in state.results] == ["2.png", "3.png"]
