import pickle

import pytest
import torch

import models
from models.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)


def _saved(tmp_path, name="cat_tiny", classes=("a", "b", "c")):
    torch.manual_seed(0)
    model = models.create_model(name, len(classes)).eval()
    meta = CheckpointMeta(model=name, class_names=list(classes), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2),
                          input_size=96, dataset="demo", epoch=3, metrics={"mAP": 50.0})
    path = tmp_path / f"{name}.safetensors"
    save_checkpoint(path, model, meta)
    return path, model, meta


def test_round_trip_rebuilds_the_model_with_its_metadata(tmp_path):
    path, model, meta = _saved(tmp_path)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta
    images = torch.randn(1, 3, 96, 96)
    torch.testing.assert_close(loaded.eval()(images).logits, model(images).logits)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temporary file


def test_a_pickle_is_refused_without_being_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="evil.pt: not a catviz checkpoint.*pickled"):
        load_checkpoint(path)


def test_foreign_safetensors_and_truncated_files_are_clear_errors(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a catviz checkpoint"):
        read_meta(foreign)
    path, _, _ = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path.name)):
        load_checkpoint(path)


def test_weights_of_another_model_or_class_count_never_load_partially(tmp_path):
    path, _, meta = _saved(tmp_path)
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["classifiers.P5.weight"] = torch.zeros(7, 64)
    save_file(state, str(path), metadata={"format": "catviz/1", "catviz": __import__("json").dumps(
        {**meta.__dict__, "mean": list(meta.mean), "std": list(meta.std)})})
    with pytest.raises(CheckpointError, match="shape differs: classifiers.P5.weight"):
        load_checkpoint(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "none.safetensors")
