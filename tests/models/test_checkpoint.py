import pickle

import pytest
import torch

from catviz import models
from catviz.models.checkpoint import (
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
    path.write_bytes(b"\x00" * 64)  # random bytes named .safetensors: corrupt, nothing about pickles
    with pytest.raises(CheckpointError, match=r"corrupt or truncated safetensors file") as error:
        read_meta(path)
    assert "pickle" not in str(error.value)


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


def _with_meta(tmp_path, **changes):
    """The tiny CAT checkpoint with its JSON metadata fields changed (None deletes a field)."""
    import json

    from safetensors.torch import load_file, save_file

    path, _, meta = _saved(tmp_path)
    fields = {**meta.__dict__, "mean": list(meta.mean), "std": list(meta.std)}
    for key, value in changes.items():
        if value is None:
            fields.pop(key)
        else:
            fields[key] = value
    save_file(load_file(str(path)), str(path), metadata={"format": "catviz/1", "catviz": json.dumps(fields)})
    return path


BAD_METADATA = {
    "pretrained": (dict(model_args={"pretrained": True}), "model_args.pretrained is not allowed"),
    "pretrained_file": (dict(model_args={"pretrained_file": "/etc/passwd"}), "model_args.pretrained_file is not allowed"),
    "fpn_channels 40000": (dict(model_args={"fpn_channels": 40000}), r"model_args.fpn_channels must be an integer in \[8, 2048\]"),
    "fpn_channels not divisible by heads": (dict(model_args={"fpn_channels": 36}), "divisible by model_args.num_heads"),
    "num_heads 1000": (dict(model_args={"num_heads": 1000}), r"model_args.num_heads must be an integer in \[1, 64\]"),
    "unknown model arg": (dict(model_args={"exec": "rm -rf /"}), "model_args.exec is not an argument of 'cat_tiny'"),
    "hub backbone": (dict(model_args={"backbone": "hf-hub:someone/model"}), "model_args.backbone must be a timm model name"),
    "dropout 2": (dict(model_args={"dropout": 2}), r"model_args.dropout must be a number in \[0, 1\)"),
    "fpn_out_conv 5x5": (dict(model_args={"fpn_out_conv": "5x5"}), "model_args.fpn_out_conv must be"),
    "input_size -5": (dict(input_size=-5), r"input_size must be an integer in \[32, 4096\], got -5"),
    "input_size 60000": (dict(input_size=60000), r"input_size must be an integer in \[32, 4096\], got 60000"),
    "input_size a string": (dict(input_size="448"), "input_size must be an integer"),
    "mean of length 2": (dict(mean=[0.5, 0.5]), "mean must be three finite numbers"),
    "mean NaN": (dict(mean=[0.5, float("nan"), 0.5]), "mean must be three finite numbers"),
    "std zeros": (dict(std=[0, 0, 0]), "std must be positive"),
    "class names not strings": (dict(class_names=[1, 2, 3]), r"class_names\[0\] must be a non-empty string"),
    "class name empty": (dict(class_names=["a", "", "c"]), r"class_names\[1\] must be a non-empty string"),
    "class names duplicated": (dict(class_names=["a", "a", "c"]), "class_names has duplicates: 'a'"),
    "no class names": (dict(class_names=[]), "class_names must be a non-empty list"),
    "unknown model": (dict(model="resnet_evil"), "model must be one of"),
    "model missing": (dict(model=None), "missing field 'model'"),
    "epoch -1": (dict(epoch=-1), "epoch must be an integer >= 0"),
    "metrics a list": (dict(metrics=[1]), "metrics must be a JSON object"),
    "unknown field": (dict(extra_code="x"), "unknown field"),
}


@pytest.mark.parametrize("case", BAD_METADATA, ids=list(BAD_METADATA))
def test_bad_metadata_is_refused_naming_the_file_and_the_field(tmp_path, case, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("opening a checkpoint tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    changes, message = BAD_METADATA[case]
    path = _with_meta(tmp_path, **changes)
    for read in (read_meta, load_checkpoint):
        with pytest.raises(CheckpointError, match=rf"{path.name}: invalid metadata: .*{message}"):
            read(path)


def test_metadata_that_is_not_json_or_not_an_object_is_refused(tmp_path):
    from safetensors.torch import save_file

    for name, text in (("garbage", "{not json"), ("list", "[1, 2]"), ("huge_int", "{\"epoch\": 1" + "0" * 5000 + "}")):
        path = tmp_path / f"{name}.safetensors"
        save_file({"w": torch.zeros(1)}, str(path), metadata={"format": "catviz/1", "catviz": text})
        with pytest.raises(CheckpointError, match=path.name):
            read_meta(path)


def test_non_finite_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    path, _, _ = _saved(tmp_path)
    with __import__("safetensors").safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(path))
    state["classifiers.P5.weight"][0, 0] = float("nan")
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=rf"{path.name}: weight classifiers.P5.weight holds NaN"):
        load_checkpoint(path)


def test_shapes_are_checked_before_the_model_is_allocated(tmp_path, monkeypatch):
    """Metadata asking for a bigger model than the file's tensors is refused on the meta device."""
    from catviz.models import checkpoint

    path = _with_meta(tmp_path, model_args={"fpn_channels": 2048})
    devices = []
    real = checkpoint.create_model

    def recording(*args, **kwargs):
        model = real(*args, **kwargs)
        devices.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(checkpoint, "create_model", recording)
    with pytest.raises(CheckpointError, match="weights do not fit model.*shape differs: classifiers"):
        load_checkpoint(path)
    assert devices == ["meta"]


def test_checkpoints_are_always_rebuilt_without_pretrained_weights(tmp_path, monkeypatch):
    from catviz.models import checkpoint

    path, _, _ = _saved(tmp_path)
    calls = []
    real = checkpoint.create_model
    monkeypatch.setattr(checkpoint, "create_model", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    load_checkpoint(path)
    assert calls and all(kw["pretrained"] is False and "pretrained_file" not in kw for kw in calls)
