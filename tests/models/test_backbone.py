import pytest
import timm
import torch

from catviz import models
from catviz.models.backbone import create_backbone


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown timm backbone 'no_such_net'"):
        models.create_model("cat_tiny", 3, backbone="no_such_net")


def test_backbone_whose_feature_extraction_fails_is_a_clear_error(monkeypatch):
    def no_features(name, **kwargs):
        assert kwargs["features_only"]
        raise RuntimeError(f"features_only not implemented for {name}")

    monkeypatch.setattr(timm, "create_model", no_features)
    with pytest.raises(ValueError, match="backbone 'resnet18' does not give 3 feature stages"):
        models.create_model("cat", 3, backbone="resnet18")


def test_backbone_without_a_pyramid_is_a_clear_error_for_cat():
    # A plain ViT gives every feature at stride 16: there is no pyramid to fuse.
    with pytest.raises(ValueError, match="three backbone stages of rising stride"):
        models.create_model("cat", 3, backbone="test_vit")


def test_any_timm_feature_backbone_works_channels_read_from_feature_info():
    model = models.create_model("cat", 4, backbone="resnet18", fpn_channels=32).eval()
    assert [c.in_channels for c in model.fpn.lateral] == [128, 256, 512]
    assert model(torch.randn(1, 3, 64, 64)).logits.shape == (1, 4)


def test_pretrained_weights_load_offline_from_a_local_file(tmp_path):
    """The timm path used online (``pretrained=True``), fed a file the test writes."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = timm.create_model("test_resnet", num_classes=10)
    weights = tmp_path / "test_resnet.safetensors"
    save_file(source.state_dict(), str(weights))

    model = models.create_model("cat_tiny", 3, pretrained_file=str(weights))
    loaded = dict(model.backbone.named_parameters())
    assert torch.equal(loaded["conv1.0.weight"], source.conv1[0].weight)
    assert torch.equal(loaded["layer4.0.conv1.weight"], source.layer4[0].conv1.weight)

    fresh = models.create_model("cat_tiny", 3)
    assert not torch.equal(dict(fresh.backbone.named_parameters())["conv1.0.weight"], source.conv1[0].weight)


def test_a_backbone_is_logged_once_when_a_checkpoint_loads(tmp_path, caplog):
    """load_checkpoint builds a shape-only skeleton on the meta device first: it is not logged."""
    from catviz.models.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint

    path = tmp_path / "cat.safetensors"
    save_checkpoint(path, models.create_model("cat_tiny", 2), CheckpointMeta(
        model="cat_tiny", class_names=["a", "b"], mean=(0.5,) * 3, std=(0.2,) * 3, input_size=96))
    with caplog.at_level("INFO", logger="catviz.models.backbone"):
        load_checkpoint(path)
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "catviz.models.backbone"] == [
        "backbone test_resnet (pretrained=False)"]


def test_missing_pretrained_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="pretrained weights file not found"):
        create_backbone("test_resnet", 3, pretrained_file=tmp_path / "nope.safetensors")


@pytest.mark.parametrize(
    "shape, message",
    [((1, 1, 64, 64), "expected images of shape"), ((1, 4, 64, 64), "expected images of shape"),
     ((3, 64, 64), "expected images of shape"), ((1, 3, 16, 64), "smaller than the backbone's total stride 32")],
)
@pytest.mark.parametrize("name", ["cat_tiny", "baseline_tiny"])
def test_bad_input_shapes_are_clear_errors(name, shape, message):
    model = models.create_model(name, 3)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))
