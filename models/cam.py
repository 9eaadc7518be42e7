"""Class activation maps for catviz models, as CPU numpy arrays (no Qt here).

Three kinds:

* :func:`class_activation_maps` — complete CAMs: every label, every level, from one
  forward pass, each level's logit split exactly into contributions of the positions
  that reach it plus a position-free offset (see :data:`EXPLANATION_MARKDOWN`).

  - A level whose classifier is ``logit = W · mean_xy F(x, y) + b`` (the baseline's S5,
    CAT's P5 level, the FPN levels of ``fpn``/``cat_no_clf``) gets ``M(x, y) = W · F(x, y)``
    (Zhou et al., the paper's ref. [20]) and offset ``b``.
  - A fusion level (PMA or MHA) is linear once the attention weights, each LayerNorm's
    1/σ, the FFN's ReLU gates and PMA's max-pool routing are held at their actual values.
    One frozen (L × C) map per query token is composed backwards from the classifier
    through the blocks (never pushing per-position vectors through the FFN), then read
    against the upper tokens (routed channel by channel to the position each max came
    from) and against each attended level's values. Biases inside the blocks, pushed
    through the same maps, make the offset.

  ``maps[level]`` lies on the level's explanation grid (its finest source, stride
  ``model.spec.level(level).stride``): ``mean(maps[level]) + offsets[level] ==
  level_logits[level]``. ``combined`` adds the levels on the finest grid:
  ``mean(combined) + sum(offsets) == logits``. ``layer_share`` keeps each level's
  logit split by source layer (and the offset).

* :func:`gradient_maps` — Grad-CAM for every label of one image at once: one forward,
  then ``torch.autograd.grad(..., is_grads_batched=True)`` (vmap over the vector-Jacobian
  product) instead of one backward pass per label.

* :func:`grad_cam` — the grad-cam package's methods (GradCAM, GradCAM++, XGradCAM,
  EigenCAM, ScoreCAM, ...) on a level's target layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AttentionBlock
from .outputs import ModelOutput, ModelSpec

EXPLANATION_MARKDOWN = """\
### How are these maps computed?

**Complete CAMs.** Every map is in logit units and adds up exactly: the mean of a
level's map plus its *offset* is that level's logit, and the mean of the combined map
plus all offsets is the final logit. Positive values are evidence for the label,
negative values evidence against it.

**Plain levels** (the baseline, CAT's P5 level, and the levels of the ablations without
fusion) average a feature map and apply one linear layer. Their map is that linear layer
applied at each position (the classic CAM of Zhou et al.); the offset is the
classifier's bias.

**Fusion levels** (CAT's P4 and P3) pass a query through attention blocks. We hold fixed,
at this image, everything that makes a block non-linear: the attention weights, each
LayerNorm's scale and the FFN's ReLU on/off pattern. The block is then a sum of linear
maps, so the level's logit splits exactly into one share per position:

- the positions of the attended levels (P4, and P3 for the P3 level), through attention;
- the upper positions (R5, the P5 map after LRD) that feed the query: PMA's max-pool
  takes each channel from one position, and that channel's share goes to that position;
- an *offset* that belongs to no position: the biases inside the blocks and the
  LayerNorm shifts, plus the classifier's bias. It is reported apart, never spread over
  the map.

A level's map lives on its finest source grid; a coarser source's share is spread
evenly over the fine cells it covers. The **layer share** says how much of each level's
logit comes from each source layer and from the offset. When most of a fusion level's
logit comes from R5, its map shows the coarse P5 grid as blocks: the model decided from
the upper positions, and the map says so rather than smoothing it away.

This is exact for this image only: other images freeze other weights, scales and gates
(the same idea as DecompX and ALTI for language transformers).
"""


@dataclass
class CAMResult:
    """Complete CAMs: per-level maps (B, L, h, w) in logit units, their offsets and sum.

    Attributes:
        maps: level → (B, L, h, w) on the level's explanation grid.
        exact: level → True when ``mean(maps) + offsets == level_logits`` (always, now).
        combined: (B, L, H, W) sum of the levels' maps on the finest grid.
        logits, level_logits: the forward pass's, (B, L) each.
        offsets: level → (B, L), the part of the level logit no position carries.
        layer_share: level → source layer (``"R5"``, ``"P4"``, ...) or ``"offset"`` →
            (B, L); the entries of a level sum to its logit.
    """

    maps: dict[str, np.ndarray]
    exact: dict[str, bool]
    combined: np.ndarray
    logits: np.ndarray
    level_logits: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    layer_share: dict[str, dict[str, np.ndarray]]


def _require_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError("CAMs need a model in eval mode (dropout off): call model.eval() first")


@dataclass
class _FrozenBlock:
    """An attention block's non-linear parts, fixed at the actual input.

    With these held, output token i is ``F_i u_i + const_i`` where ``u_i`` is query token
    i plus its attention output, and ``F_i = LN2' (I + W2 G_i W1) LN1'`` with
    ``LN' = diag(γ/σ)(I - 11ᵀ/C)`` and ``G_i`` the ReLU gates.
    """

    scale1: Tensor  # (B, Nq, C): γ1 / σ1
    scale2: Tensor  # (B, Nq, C): γ2 / σ2
    gate: Tensor  # (B, Nq, hidden): 1 where the ReLU passes
    const: Tensor  # (B, Nq, C): the output for u = 0 (biases, LayerNorm shifts)

    @classmethod
    def at(cls, block: AttentionBlock, query: Tensor, attn_out: Tensor) -> _FrozenBlock:
        norm1, norm2, (fc1, _, _, fc2) = block.norm1, block.norm2, block.ffn
        u = query + attn_out
        x = norm1(u)
        pre = fc1(x)
        v = x + fc2(F.relu(pre))
        gate = (pre > 0).to(u.dtype)
        scale1 = norm1.weight / torch.sqrt(u.var(-1, unbiased=False, keepdim=True) + norm1.eps)
        scale2 = norm2.weight / torch.sqrt(v.var(-1, unbiased=False, keepdim=True) + norm2.eps)
        v0 = norm1.bias + fc2.bias + (gate * (fc1.weight @ norm1.bias + fc1.bias)) @ fc2.weight.T
        const = scale2 * (v0 - v0.mean(-1, keepdim=True)) + norm2.bias
        return cls(scale1, scale2, gate, const)

    def pull_back(self, block: AttentionBlock, maps: Tensor) -> Tensor:
        """(B, Nq, R, C) linear maps from each output token → the same from each ``u_i``."""
        maps = _through_norm(maps, self.scale2)
        fc1, fc2 = block.ffn[0], block.ffn[3]
        maps = maps + ((maps @ fc2.weight) * self.gate[:, :, None]) @ fc1.weight
        return _through_norm(maps, self.scale1)


def _through_norm(maps: Tensor, scale: Tensor) -> Tensor:
    """``maps · diag(scale) · (I - 11ᵀ/C)``: a frozen LayerNorm, composed on the right."""
    maps = maps * scale[:, :, None]
    return maps - maps.mean(-1, keepdim=True)


def _value_bias(block: AttentionBlock) -> Tensor:
    """What the attention adds whatever it attends to: ``W_o b_v + b_o`` (rows sum to 1)."""
    dim = block.attn.embed_dim
    return block.attn.out_proj.weight @ block.attn.in_proj_bias[2 * dim :] + block.attn.out_proj.bias


def _context_contributions(block: AttentionBlock, maps: Tensor, weights: Tensor, values: Tensor) -> Tensor:
    """Each attended position's share: ``Σ_i Σ_h a_hij (maps_i W_o,h) W_v,h x_j`` → (B, R, Nk).

    ``maps`` (B, Nq, R, C) act on the block's ``u_i``; ``weights`` (B, H, Nq, Nk);
    ``values`` (B, H, Nk, d), the forward pass's ``W_v,h x_j + b_v,h`` (the bias is
    taken out here: it belongs to the offset). Head by head, to bound memory with MHA.
    """
    heads = block.num_heads
    per_head = (maps @ block.attn.out_proj.weight).unflatten(-1, (heads, -1))  # (B, Nq, R, H, d)
    values = values - block.attn.in_proj_bias.chunk(3)[2].view(heads, 1, -1)
    out = values.new_zeros(maps.shape[0], maps.shape[2], values.shape[2])
    for h in range(heads):
        scores = per_head[:, :, :, h] @ values[:, h, None].transpose(-1, -2)  # (B, Nq, R, Nk)
        out += (scores * weights[:, h, :, None]).sum(1)
    return out


def _fusion_level(
    model: nn.Module, spec: ModelSpec, level: str, features: dict[str, Tensor], frozen: dict[str, _FrozenBlock]
) -> tuple[dict[str, Tensor], Tensor]:
    """A fusion level's logit split: source → (B, L, N_source) shares, and the offset (B, L).

    Composes the frozen linear maps backwards from the classifier through this level's
    block and the fusion blocks above it (the P3 query is the P4 block's output), then
    reads them against each block's attended positions and, at the top, the upper tokens.
    """
    sources = spec.level(level).sources  # (upper, first fused level, ..., this level)
    classifier = model.classifiers[level]
    query = features[f"{level}.query"]
    batch, nq = query.shape[:2]
    maps = (classifier.weight / nq).expand(batch, nq, *classifier.weight.shape)
    offset = classifier.bias.expand(batch, -1).clone()
    shares: dict[str, Tensor] = {}
    for name in reversed(sources[1:]):
        block = model.clf[name]
        pulled = frozen[name].pull_back(block, maps)
        offset += torch.einsum("bqrc,bqc->br", maps, frozen[name].const)
        offset += torch.einsum("bqrc,c->br", pulled, _value_bias(block))
        shares[name] = _context_contributions(block, pulled, features[f"{name}.weights"], features[f"{name}.values"])
        maps = pulled  # the block's query is the output of the block above (max over one token with PMA)
    query = features[f"{sources[1]}.query"]  # the first fusion block's query, from the upper tokens
    upper = features[spec.levels[0].name].flatten(2)  # (B, C, N5): R5 (or P5 without LRD)
    if spec.clf == "pma":  # route each channel's share to the position its max came from
        where = upper.argmax(-1)[:, None].expand(-1, maps.shape[2], -1)  # (B, R, C)
        routed = maps[:, 0] * query[:, 0, None]
        shares[sources[0]] = upper.new_zeros(batch, maps.shape[2], upper.shape[-1]).scatter_add_(2, where, routed)
    else:  # MHA: query token i is upper position i
        shares[sources[0]] = torch.einsum("bqrc,bqc->brq", maps, query)
    return shares, offset


def _coarse_index(fine: int, coarse: int, ratio: int) -> Tensor:
    """For each fine row (or column), the coarse cell containing it."""
    index = (torch.arange(fine) // max(ratio, 1)).clamp(max=coarse - 1)
    if len(index.unique()) < coarse:  # a grid that is not the ceil of the finer one
        index = torch.arange(fine) * coarse // fine
    return index


def _spread(shares: Tensor, grid: tuple[int, int], ratio: int) -> Tensor:
    """(B, L, h, w) shares of coarse cells → (B, L, *grid) map whose mean is their sum.

    Each coarse cell's share is spread evenly over the fine cells it covers, scaled by
    ``N_fine``: exact also when the fine grid is not an integer multiple of the coarse.
    """
    (h, w), (fh, fw) = shares.shape[-2:], grid
    rows, cols = _coarse_index(fh, h, ratio), _coarse_index(fw, w, ratio)
    counts = torch.bincount(rows, minlength=h)[:, None] * torch.bincount(cols, minlength=w)[None, :]
    dense = shares * (fh * fw) / counts.to(shares)
    return dense[..., rows.to(shares.device), :][..., cols.to(shares.device)]


@torch.no_grad()
def class_activation_maps(model: nn.Module, images: Tensor, output: ModelOutput | None = None) -> CAMResult:
    """Complete CAMs of every label at every level, from one forward pass (module docstring).

    ``output``: that pass's result when the caller already ran it with
    ``return_features=True``, so the CAMs cost no second forward.
    """
    _require_eval(model)
    out = output if output is not None and output.features else model(images, return_features=True)
    spec: ModelSpec = model.spec
    features = out.features
    frozen = {
        lvl.name: _FrozenBlock.at(model.clf[lvl.name], features[f"{lvl.name}.query"], features[f"{lvl.name}.attn_out"])
        for lvl in spec.levels
        if lvl.kind != "gap"
    }
    strides = {lvl.sources[-1]: lvl.stride for lvl in spec.levels}  # each source's grid
    maps: dict[str, Tensor] = {}
    offsets: dict[str, Tensor] = {}
    layer_share: dict[str, dict[str, Tensor]] = {}
    for lvl in spec.levels:
        classifier = model.classifiers[lvl.name]
        if lvl.kind == "gap":
            fmap = features[lvl.name]
            grids = {lvl.sources[0]: fmap.shape[-2:]}
            shares = {lvl.sources[0]: torch.einsum("lc,bchw->blhw", classifier.weight, fmap).flatten(2)}
            shares[lvl.sources[0]] /= grids[lvl.sources[0]].numel()
            offset = classifier.bias.expand(fmap.shape[0], -1)
        else:
            shares, offset = _fusion_level(model, spec, lvl.name, features, frozen)
            grids = {lvl.sources[0]: features[spec.levels[0].name].shape[-2:]}
            grids |= {name: features[f"{name}.context"].shape[-2:] for name in lvl.sources[1:]}
        grid = tuple(grids[lvl.sources[-1]])
        maps[lvl.name] = sum(
            _spread(shares[name].unflatten(-1, tuple(grids[name])), grid, strides[name] // lvl.stride)
            for name in lvl.sources
        )
        offsets[lvl.name] = offset
        layer_share[lvl.name] = {name: shares[name].sum(-1) for name in lvl.sources} | {"offset": offset}
    finest = min(spec.levels, key=lambda lvl: lvl.stride)
    fine_grid = tuple(maps[finest.name].shape[-2:])
    combined = sum(
        _spread(maps[lvl.name] / maps[lvl.name][0, 0].numel(), fine_grid, lvl.stride // finest.stride)
        for lvl in spec.levels
    )
    return CAMResult(
        maps={k: _numpy(v) for k, v in maps.items()},
        exact={lvl.name: True for lvl in spec.levels},
        combined=_numpy(combined),
        logits=_numpy(out.logits),
        level_logits={k: _numpy(v) for k, v in out.level_logits.items()},
        offsets={k: _numpy(v) for k, v in offsets.items()},
        layer_share={k: {s: _numpy(v) for s, v in d.items()} for k, d in layer_share.items()},
    )


def _numpy(tensor: Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()


class ActivationCapture:
    """Keeps a module's forward output (with its graph); a context manager that unhooks."""

    def __init__(self, module: nn.Module):
        self.activation: Tensor | None = None
        self._handle = module.register_forward_hook(self._store)

    def _store(self, module: nn.Module, inputs, output: Tensor) -> None:
        self.activation = output

    def release(self) -> None:
        self._handle.remove()
        self.activation = None

    def __enter__(self) -> ActivationCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def gradient_maps(model: nn.Module, image: Tensor, layer: nn.Module) -> np.ndarray:
    """Grad-CAM of every label for one (1, 3, H, W) image: (L, h, w), unscaled, ReLU'd.

    One forward and one batched backward: ``is_grads_batched`` vmaps the vector-Jacobian
    product over the L one-hot output directions.
    """
    _require_eval(model)
    if image.shape[0] != 1:
        raise ValueError(f"gradient_maps takes one image, got a batch of {image.shape[0]}")
    with torch.enable_grad(), ActivationCapture(layer) as capture:
        # The inspection path (explicit softmax) is the one vmap can batch backward through.
        logits = model(image, return_attention=True).logits[0]
        activation = capture.activation
        eye = torch.eye(logits.numel(), device=logits.device, dtype=logits.dtype)
        (grads,) = torch.autograd.grad(logits, activation, eye, is_grads_batched=True)
    weights = grads[:, 0].mean(dim=(-2, -1), keepdim=True)  # (L, C, 1, 1)
    cams = F.relu((weights * activation[0].detach()).sum(1))
    return _numpy(cams)


class LogitsOnly(nn.Module):
    """Adapter for grad-cam, which expects ``model(x)`` to return a logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images, return_attention=True).logits


def grad_cam(
    model: nn.Module,
    images: Tensor,
    label: int,
    level: str,
    method: Callable | None = None,
) -> np.ndarray:
    """A grad-cam package method's map for ``label`` at ``level``: (B, H, W) in [0, 1].

    ``method`` is a grad-cam class (``pytorch_grad_cam.GradCAM`` by default). The model
    must be in eval mode already (grad-cam would silently switch it), and the hooks are
    released whatever happens (grad-cam's own ``__exit__`` would swallow an IndexError).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _require_eval(model)
    check_label(model, label)
    layers = model.target_layers()
    if level not in layers:
        raise ValueError(f"no level {level!r}; this model has {', '.join(layers)}")
    cam = (method or GradCAM)(model=LogitsOnly(model), target_layers=[layers[level]])
    try:
        return cam(input_tensor=images, targets=[ClassifierOutputTarget(label)] * images.shape[0])
    finally:
        cam.activations_and_grads.release()


def check_label(model: nn.Module, label: int) -> None:
    """Raise ``ValueError`` unless ``label`` indexes one of the model's labels."""
    count = model.num_classes
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise ValueError(f"label index must be an integer, got {label!r}")
    if not 0 <= label < count:
        raise ValueError(f"label index {label} is out of range: this model has {count} labels (0..{count - 1})")
