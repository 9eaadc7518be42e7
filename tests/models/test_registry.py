import pytest
import torch

from catviz import models

TINY = [n for n in models.list_models() if n.endswith("_tiny")]
FULL = [n for n in models.list_models() if not n.endswith("_tiny")]


def test_registry_has_the_papers_variants():
    for name in ["baseline", "cat", "cat_no_lrd", "cat_mha", "cat_no_clf", "fpn"]:
        assert name in models.list_models()
        assert f"{name}_tiny" in models.list_models()


@pytest.mark.parametrize("name", FULL)
@pytest.mark.parametrize("size", [(448, 448), (384, 512), (224, 224)])
def test_full_size_models_give_logits_at_paper_and_other_sizes(name, size):
    torch.manual_seed(0)
    model = models.create_model(name, num_classes=20).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.logits.shape == (1, 20)
    assert torch.isfinite(out.logits).all()


def test_default_backbone_is_the_papers_resnext50_swsl_with_1024_fpn_channels():
    model = models.create_model("cat", num_classes=80)
    assert models.DEFAULT_BACKBONE == "resnext50_32x4d.fb_swsl_ig1b_ft_in1k"
    assert model.backbone.feature_info.channels() == [512, 1024, 2048]
    assert model.backbone.feature_info.reduction() == [8, 16, 32]
    assert all(conv.out_channels == 1024 for conv in model.fpn.lateral)
    assert len(model.lrd) == 2 and all(layer.num_heads == 8 for layer in model.lrd)
    assert all(block.num_heads == 8 for block in model.clf.values())


def test_unknown_model_name_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown model 'catt'.*cat_tiny"):
        models.create_model("catt", num_classes=3)


@pytest.mark.parametrize("num_classes", [0, -2])
def test_num_classes_below_one_is_rejected(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        models.create_model("cat_tiny", num_classes=num_classes)


def test_fpn_out_conv_choice_is_validated_and_changes_parameters():
    counts = {
        kind: sum(p.numel() for p in models.create_model("fpn_tiny", 3, fpn_out_conv=kind).parameters())
        for kind in ["3x3", "1x1", "none"]
    }
    assert counts["3x3"] > counts["1x1"] > counts["none"]
    with pytest.raises(ValueError, match="fpn_out_conv must be"):
        models.create_model("cat_tiny", 3, fpn_out_conv="5x5")
