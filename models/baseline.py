"""The paper's baseline: the plain backbone, global average pooling, one linear layer."""

from __future__ import annotations

from torch import Tensor, nn

from .backbone import DEFAULT_BACKBONE, check_input, create_backbone, stage_module
from .outputs import LevelSpec, ModelOutput, ModelSpec


class Baseline(nn.Module):
    """Backbone → GAP over the last stage (S5) → linear. Its CAM is exact (Zhou et al.)."""

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.min_input_size = backbone.feature_info.reduction()[-1]
        self.classifiers = nn.ModuleDict(
            {"S5": nn.Linear(backbone.feature_info.channels()[-1], num_classes)}
        )
        self.num_classes = num_classes

    @property
    def spec(self) -> ModelSpec:
        """One GAP + linear level on the last stage (see :class:`ModelSpec`)."""
        stride = self.backbone.feature_info.reduction()[-1]
        return ModelSpec(role="baseline", levels=(LevelSpec("S5", stride, "gap", ("S5",)),),
                         num_heads=0, lrd_layers=0, clf=None, attention_keys=(),
                         depths=("tokens", *self.depth_cuts()))

    def depth_cuts(self) -> dict[str, nn.Module | None]:
        """Below the S5 tokens: depth → the module whose output cuts the network there
        (None: the input). ``"s3"``: backbone stage 3 (stride 8), as for CAT."""
        return {"s3": stage_module(self.backbone, 3), "input": None}

    def route_taps(self) -> tuple[nn.Module, tuple[str, ...]]:
        """The module whose output the level reads, and its source: the backbone's S5 (one route)."""
        return self.backbone, ("S5",)

    def target_layers(self) -> dict[str, nn.Module]:
        """The last stage's module, whose (B, C, h, w) output a gradient CAM explains."""
        trunk = self.backbone
        return {"S5": trunk.get_submodule(trunk.feature_info.module_name()[-1].replace(".", "_"))}

    def forward(
        self, images: Tensor, return_attention: bool = False, return_features: bool = False
    ) -> ModelOutput:
        check_input(images, self.min_input_size)
        s5 = self.backbone(images)[-1]
        logits = self.classifiers["S5"](s5.mean((2, 3)))
        return ModelOutput(
            logits=logits,
            level_logits={"S5": logits},
            attention={} if return_attention else None,
            features={"S5": s5} if return_features else None,
        )


def build_baseline(
    num_classes: int,
    backbone: str = DEFAULT_BACKBONE,
    pretrained: bool = False,
    pretrained_file: str | None = None,
) -> Baseline:
    trunk = create_backbone(backbone, 1, pretrained=pretrained, pretrained_file=pretrained_file)
    return Baseline(trunk, num_classes)
