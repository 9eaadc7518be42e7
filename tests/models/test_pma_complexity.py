"""PMA's claim (paper Eq. 6-7): attention cost linear in the lower level's size.

Counted with torch's FLOP counter on the inspection path (explicit attention matmuls;
the counter does not see inside CPU fused attention). Doubling the image width doubles
every level's positions: PMA's CLF attention FLOPs double, MHA's quadruple.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from catviz import models


def _clf_attention_flops(name: str, size: tuple[int, int]) -> int:
    torch.manual_seed(0)
    model = models.create_model(name, 3).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, *size), return_attention=True)
    counts = counter.get_flop_counts()
    return sum(
        flops
        for module, ops in counts.items()
        if module.endswith(("clf.P4.attn", "clf.P3.attn"))
        for op, flops in ops.items()
        if "bmm" in str(op)
    )


@pytest.mark.parametrize("name, factor", [("cat_tiny", 2), ("cat_mha_tiny", 4)])
def test_doubling_positions_scales_clf_attention_cost(name, factor):
    small = _clf_attention_flops(name, (128, 128))
    large = _clf_attention_flops(name, (128, 256))
    assert small > 0
    assert large == factor * small


def test_pma_attention_is_cheaper_than_mha_by_the_upper_levels_size():
    pma = _clf_attention_flops("cat_tiny", (128, 128))
    mha = _clf_attention_flops("cat_mha_tiny", (128, 128))
    assert mha == (128 // 32) ** 2 * pma  # h*w times lower, as Eq. 6-7 state
