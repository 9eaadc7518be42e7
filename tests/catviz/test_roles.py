"""The two model slots, stated once: a checkpoint's slot follows from its model name, and
the views, the state and the report use the same slots and titles."""

from types import SimpleNamespace

from catviz import roles, state
from catviz.models import list_models
from catviz.models.checkpoint import read_meta
from catviz.train_cli.demo_models import ROLES as DEMO_MODELS

from .conftest import make_checkpoint


def test_a_checkpoints_role_comes_from_its_model_name(tmp_path):
    assert roles.role_of(read_meta(make_checkpoint(tmp_path / "b.safetensors", "baseline_tiny"))) == "baseline"
    assert roles.role_of(read_meta(make_checkpoint(tmp_path / "c.safetensors", "cat_no_lrd_tiny"))) == "cat"
    for name in list_models():  # every registered model lands in one of the two slots
        assert roles.role_of(SimpleNamespace(model=name)) == ("baseline" if "baseline" in name else "cat")


def test_the_slots_and_titles_are_one_definition():
    assert roles.ROLES == ("baseline", "cat") and roles.ROLE_TITLES == {"baseline": "Baseline", "cat": "CAT"}
    assert state.ROLES is roles.ROLES
    assert set(DEMO_MODELS) == set(roles.ROLES)  # the demo ships one model per slot
