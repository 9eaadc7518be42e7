"""Transformer blocks of CAT: the LRD encoder layer and the CLF fusion block.

Both are the same post-norm transformer block (Vaswani et al.): multi-head attention,
residual + LayerNorm, a two-layer ReLU FFN, residual + LayerNorm. In LRD the query and
the context are the same P5 tokens (self-attention); in CLF the query comes from the
upper level and the context is the lower level's tokens (cross-attention).

Attention runs through ``nn.MultiheadAttention``: with ``need_weights=False`` it takes
torch's fused scaled-dot-product path (no attention matrix is stored), which training
uses; with ``need_weights=True`` it materialises per-head weights for inspection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionBlock(nn.Module):
    """Post-norm transformer block: ``x = LN(q + MHA(q, kv)); x = LN(x + FFN(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"channels ({dim}) must be divisible by num_heads ({num_heads})")
        # No dropout on the attention weights: the weights shown are the weights used.
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.ffn = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    @property
    def num_heads(self) -> int:
        return self.attn.num_heads

    def forward(
        self,
        query: Tensor,
        context: Tensor,
        pos_query: Tensor | None = None,
        pos_context: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(B, Nq, C) query over (B, Nk, C) context → (B, Nq, C), weights (B, H, Nq, Nk) or None.

        Positional encodings, when given, are added to queries and keys only (as in
        DETR), so values, and everything the classifiers and CAMs see, stay pure content.
        """
        attn_out, weights = self.attend(query, context, pos_query, pos_context, need_weights)
        return self.post_attention(query, attn_out), weights

    def attend(
        self,
        query: Tensor,
        context: Tensor,
        pos_query: Tensor | None = None,
        pos_context: Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """The attention alone: its output (B, Nq, C) before the residual, and the weights."""
        q = query if pos_query is None else query + pos_query
        k = context if pos_context is None else context + pos_context
        return self.attn(q, k, context, need_weights=need_weights, average_attn_weights=False)

    def attend_explained(self, query: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The attention step by step, keeping what explaining it needs.

        Returns the output (B, Nq, C) before the residual, the weights (B, H, Nq, Nk)
        and the per-head values (B, H, Nk, C/H), bias included: the same arithmetic as
        ``nn.MultiheadAttention``'s non-fused path, which does not hand the values out.
        """
        heads = self.num_heads
        w_q, w_k, w_v = self.attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.attn.in_proj_bias.chunk(3)
        q, k, v = (
            F.linear(x, w, b).unflatten(-1, (heads, -1)).transpose(1, 2)
            for x, w, b in ((query, w_q, b_q), (context, w_k, b_k), (context, w_v, b_v))
        )
        weights = torch.softmax((q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1), dim=-1)
        return self.attn.out_proj((weights @ v).transpose(1, 2).flatten(2)), weights, v

    def post_attention(self, query: Tensor, attn_out: Tensor) -> Tensor:
        """Everything after the attention: residual + norm, FFN, residual + norm."""
        x = self.norm1(query + self.drop(attn_out))
        return self.norm2(x + self.drop(self.ffn(x)))


def sine_position_encoding(height: int, width: int, dim: int, device=None, dtype=None) -> Tensor:
    """Fixed 2-D sinusoidal encoding (DETR), (H*W, dim), row-major like ``flatten(2)``.

    Chosen for LRD because it has no parameters and is defined at any grid size: the
    same model runs at 448², 384×512 and 224² with no interpolation of learnt tables.
    Half the channels encode y, half x, each as sin/cos pairs over a geometric range
    of frequencies.
    """
    if dim % 4:
        raise ValueError(f"positional encoding needs channels divisible by 4, got {dim}")
    quarter = dim // 4
    freqs = torch.exp(
        torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(10000.0) / quarter)
    )
    ys = torch.arange(height, device=device, dtype=torch.float32)[:, None] * freqs
    xs = torch.arange(width, device=device, dtype=torch.float32)[:, None] * freqs
    pos_y = torch.cat([ys.sin(), ys.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    pos_x = torch.cat([xs.sin(), xs.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([pos_y, pos_x], dim=-1).reshape(height * width, dim).to(dtype)
