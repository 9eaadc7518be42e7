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

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AttentionBlock
from .attribution import Cancelled
from .frozen import FrozenPoint, TapReached
from .outputs import ModelOutput, ModelSpec

# torch loads its forward-mode decompositions on the first dual tensor and scripts them with
# torch.jit.script, which warns on every first use (torch's own code, nothing to change here):
# kept off the user's terminal.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

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

**Depth.** The same frozen point carries the split further down, to any feature map
that cuts the network: the FPN outputs (P5 before LRD, P4, P3), the backbone stages
S3–S5, stage 3 alone, or the **input pixels** (the default in the app). A feature map's
share at a position is its value times the logit's derivative there (held at this
image). Every bias met above the chosen depth — convolution and BatchNorm shifts,
LayerNorm shifts, the attention's and the FFN's biases — is credited to the positions
where it is added (FullGrad's bias terms, Srinivas & Fleuret 2019) and spread evenly
over the input pixels (or the finer cells) of each position's stride block; the
pooled PMA query belongs to the whole image and is spread over all of it. Positional
encodings only steer the (frozen) attention weights, so they carry no share. Below the
tokens the only offset left is the level classifier's own bias. A tied maximum (PMA's
max over positions, the backbone stem's 3×3 max-pool on a flat region) splits its
share evenly among the tied positions, so the place never depends on a scan order.

**Path share.** Below the tokens the layer-share chart becomes a *path share*: each level's
logit reaches it through routes — CAT's P3 level through R5 (P5 after LRD, feeding the
query), through P4 and through P3 (the attended positions); the baseline's through S5 —
and each route's part is split by where it comes from at the chosen depth (the backbone
stages S3–S5, or the input pixels) and the biases met on the way. A route's total is the
same at every depth (its layer share at the tokens); the fusion blocks' own biases form a
row of their own, and with the offset the rows sum to the level logit.
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
            (B, L); the entries of a level sum to its logit. Below the tokens: the cut's
            tensors (``"S3"`` ... or ``"input"``), ``"biases"`` and ``"offset"``.
        path_share: level → route → part → (B, L): how much of the level's logit reaches it
            through each route (the level's sources: ``"R5"``, ``"P4"``, ``"P3"``; the
            baseline's one ``"S5"``) from each of the depth's tensors (``"S3"``, ``"S4"``,
            ``"S5"`` at ``"stages"``, ``"input"`` at the pixels ...) and from the biases met
            on the way (``"biases"``); the fusion blocks' own biases, on no route, are route
            ``"fusion"``. At the tokens a route's one part is its layer share. A part that
            cannot reach a route (S3 for R5) is left out. With ``offsets``, the parts sum to
            the level logit.
    """

    maps: dict[str, np.ndarray]
    exact: dict[str, bool]
    combined: np.ndarray
    logits: np.ndarray
    level_logits: dict[str, np.ndarray]
    offsets: dict[str, np.ndarray]
    layer_share: dict[str, dict[str, np.ndarray]]
    depth: str = "tokens"
    labels: tuple[int, ...] | None = None  # the labels on axis 1 (None: all, in order)
    path_share: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)


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
    if spec.clf == "pma":  # route each channel's share to the position(s) its max came from
        shares[sources[0]] = route_max(upper, maps[:, 0] * query[:, 0, None])
    else:  # MHA: query token i is upper position i
        shares[sources[0]] = torch.einsum("bqrc,bqc->brq", maps, query)
    return shares, offset


def route_max(upper: Tensor, credit: Tensor) -> Tensor:
    """Each channel's credit given to the position its max over positions came from.

    ``upper`` (B, C, N), ``credit`` (B, R, C) → (B, R, N). A max reached at several
    positions (a tie) is split evenly among them, so the place never depends on the scan
    order (the rule ``torch.amax``'s derivative follows too).
    """
    tied = (upper == upper.amax(-1, keepdim=True)).to(credit.dtype)
    return credit @ (tied / tied.sum(-1, keepdim=True))


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


def class_activation_maps(
    model: nn.Module,
    images: Tensor,
    output: ModelOutput | None = None,
    *,
    depth: str | None = None,
    labels: Sequence[int] | None = None,
    levels: Sequence[str] | None = None,
    split_levels: bool = True,
    path_share: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> CAMResult:
    """Complete CAMs at every level, at ``depth`` (module docstring).

    ``depth``: one of ``model.spec.depths`` (default: the first, ``"tokens"``). At the
    token depth one forward pass explains every label and level, and the options below
    change nothing. Below it the cost follows what is asked, so ask for what is shown:

    * ``labels``: the labels explained (default: all); the result's label axis holds them
      in the order given (``CAMResult.labels``);
    * ``levels``: the levels explained (default: all); ``combined`` is their sum;
    * ``split_levels=False``: one backward pass per label for the sum of the levels'
      logits instead of one per level and label — the same ``combined`` (the maps are
      linear in the logit's gradient at the frozen point), with no per-level ``maps``,
      ``layer_share`` or ``path_share`` (``exact`` then has the one key ``"combined"``);
    * ``path_share=False``: no path share (it costs a forward-mode pass where a level has
      several routes);
    * ``should_stop()``: polled before each backward pass; True raises :class:`Cancelled`.

    ``level_logits`` and ``logits`` always hold every level's (the forward pass's).

    ``output``: a forward pass's result run with ``return_features=True``, reused at the
    token depth so the CAMs cost no second forward.
    """
    _require_eval(model)
    depths = model.spec.depths
    depth = depths[0] if depth is None else depth
    if depth not in depths:
        raise ValueError(f"no depth {depth!r}; this model is explained at {', '.join(depths)}")
    chosen = tuple(range(model.num_classes)) if labels is None else tuple(int(i) for i in labels)
    for label in chosen:
        check_label(model, label)
    if isinstance(levels, str) or (levels is not None and not len(levels)):
        raise ValueError(f"levels must be a non-empty sequence of level names, not {levels!r}")
    chosen_levels = model.spec.level_names if levels is None else tuple(dict.fromkeys(levels))  # once each
    for level in chosen_levels:
        model.spec.level(level)  # an unknown level is a KeyError naming the levels
    if depth == depths[0]:
        result = _token_maps(model, images, output)
        return result if labels is None else _select(result, list(chosen))
    return _deep_maps(model, images, depth, chosen, chosen_levels, split_levels, path_share, should_stop)


def _select(result: CAMResult, labels: list[int]) -> CAMResult:
    """The result restricted to ``labels`` (the label axis, axis 1, of every array)."""
    pick = lambda a: a[:, labels]  # noqa: E731
    return CAMResult(
        maps={k: pick(v) for k, v in result.maps.items()}, exact=result.exact, combined=pick(result.combined),
        logits=pick(result.logits), level_logits={k: pick(v) for k, v in result.level_logits.items()},
        offsets={k: pick(v) for k, v in result.offsets.items()},
        layer_share={k: {s: pick(v) for s, v in d.items()} for k, d in result.layer_share.items()},
        depth=result.depth, labels=tuple(labels),
        path_share={k: {r: {s: pick(v) for s, v in parts.items()} for r, parts in d.items()}
                    for k, d in result.path_share.items()})


def _stride(size: tuple[int, int], grid: tuple[int, int]) -> int:
    """Input pixels per cell of a (ceil-divided) grid: the power of two nearest the ratio."""
    return 2 ** round(math.log2(max(size[0] / grid[0], 1.0)))


def _carry(totals: Tensor, grid: tuple[int, int], ratio: int) -> Tensor:
    """(B, R, h, w) per-cell totals → (B, R, *grid) totals, each cell's spread evenly over
    the cells of ``grid`` it covers (its stride block); the sum is kept."""
    if tuple(totals.shape[-2:]) == tuple(grid):
        return totals
    return _spread(totals, grid, ratio) / (grid[0] * grid[1])


def _site_totals(grad: Tensor, token_grids: dict[int, tuple[int, int]]) -> Tensor:
    """A bias probe's gradient → (B, 1, h, w) credit per position (tokens: on their grid;
    one token, e.g. PMA's pooled query, belongs to the whole image: a 1 x 1 grid)."""
    if grad.ndim == 4:
        return grad if grad.shape[1] == 1 else grad.movedim(-1, 1)  # (B,1,h,w) or channels-last
    tokens = grad.shape[1]
    grid = (1, 1) if tokens == 1 else token_grids[tokens]
    return grad[..., 0].unflatten(1, grid)[:, None]


#: Bias sites in modules whose names start so are the fusion blocks' (CAT's ``clf``): on no route.
FUSION_PREFIX = "clf."


def _route_tangents(model: nn.Module, images: Tensor, depth: str, module: nn.Module | None,
                    tap: nn.Module) -> list[list[Tensor | None]]:
    """[cut tensor t][route r]: the part of route tensor r (``model.route_taps()``) that is
    linear in cut tensor t, by forward-mode differentiation at the frozen point (one pass
    per cut tensor, stopped at the routes). None where t does not reach r."""
    skip = tuple(model.classifiers.values())
    tangents: list[list[Tensor | None]] = []
    t, count = 0, 1
    while t < count:
        cuts = {} if module is None else {depth: module}
        with torch.no_grad(), fwAD.dual_level(), FrozenPoint(model, skip=skip, cuts=cuts, taps={"routes": tap},
                                                              stop_at="routes", tangent=t) as point:
            try:
                model(fwAD.make_dual(images, images) if module is None else images)
            except TapReached:
                pass
            count = 1 if module is None else len(point.cut_outputs[depth])
            found = [fwAD.unpack_dual(r).tangent for r in point.tap_outputs["routes"]]
            tangents.append([None if g is None or not g.any() else g.clone() for g in found])
        t += 1
    return tangents


def _dot(a: Tensor | None, b: Tensor | None) -> Tensor | float:
    """Σ a · b over every axis but the batch (0 where either is missing)."""
    return 0.0 if a is None or b is None else (a * b).flatten(1).sum(1)


@torch.no_grad()
def _deep_maps(model: nn.Module, images: Tensor, depth: str, labels: tuple[int, ...], levels: tuple[str, ...],
               split_levels: bool, with_paths: bool, should_stop: Callable[[], bool] | None = None) -> CAMResult:
    """Complete CAMs below the tokens, at the frozen point (:mod:`models.frozen`).

    For each target (a level, or with ``split_levels=False`` the sum of ``levels``) and
    label: one backward pass from the target's logit to the depth's cut (its feature maps,
    or the input), to every bias probe above it and, for the path share, to the route
    tensors. A cut tensor's credit at a position is ``Σ_c F · ∂logit/∂F``; a bias's credit
    is spread evenly over the cut grid's cells its own cell covers (a feature cell over its
    stride block; PMA's pooled query over the whole image); coarser cut tensors are spread
    the same way onto the finest. The level classifier's bias is the only offset.

    Path share: a route's total is ``Σ route · ∂logit/∂route`` (its layer share at the
    tokens); the part of it from cut tensor t is ``Σ ∂logit/∂route · J t``, with ``J t`` the
    frozen map's linear part applied to t (forward mode, :func:`_route_tangents`; needed
    only where a level has several routes); the rest of the total is the biases met below
    the route, to which the biases above it on its way (LRD's, for R5) are added.
    """
    spec: ModelSpec = model.spec
    module = model.depth_cuts()[depth]
    tap, route_names = model.route_taps()
    tap_is_cut = tap is module  # the cut is the routes themselves (CAT's "fpn")
    with_paths = with_paths and split_levels
    size = tuple(images.shape[-2:])
    token_grids = {h * w: (h, w) for h, w in (lvl.grid(*size) for lvl in spec.levels)}
    batch, count = images.shape[0], len(labels)
    several = any(len(spec.level(name).sources) > 1 for name in levels)
    tangents = _route_tangents(model, images, depth, module, tap) if with_paths and several and not tap_is_cut \
        else None
    targets = [(name, (name,)) for name in levels] if split_levels else [("combined", levels)]
    with torch.enable_grad(), FrozenPoint(model, skip=tuple(model.classifiers.values()),
                                          cuts={} if module is None else {depth: module},
                                          taps={} if tap_is_cut or not with_paths else {"routes": tap}) as point:
        x = images.detach().clone().requires_grad_(module is None)
        out = model(x)
        cut = [x] if module is None else point.cut_outputs[depth]
        sites = point.sites_above(None if module is None else depth)
        names = _cut_names(spec, depth, len(cut))
        routes = cut if tap_is_cut else point.tap_outputs.get("routes", [])
        if with_paths and tap_is_cut:  # the routes are the cut: each is its own linear part
            tangents = [[r if k == t else None for k, r in enumerate(routes)] for t in range(len(routes))]
        tap_order = point.cut_order[depth] if tap_is_cut else point.tap_order.get("routes", -1)
        grid = max((tuple(t.shape[-2:]) for t in cut), key=lambda g: g[0] * g[1])
        grid_stride = _stride(size, grid)
        probes = [site.probe for site in sites]
        maps: dict[str, Tensor] = {}
        layer_share: dict[str, dict[str, Tensor]] = {}
        path_share: dict[str, dict[str, dict[str, Tensor]]] = {}
        for target, members in targets:
            objective = sum(out.level_logits[name] for name in members)
            lvl = spec.level(members[0])
            index = [route_names.index(source) for source in lvl.sources] if with_paths else []
            taps = [] if tap_is_cut else [routes[i] for i in index]
            inputs = [*cut, *probes, *taps]
            totals = x.new_zeros(batch, count, *grid)
            parts = {name: x.new_zeros(batch, count) for name in (*names, "biases")}
            paths = {source: {} for source in lvl.sources}
            for j, label in enumerate(labels):
                if should_stop is not None and should_stop():
                    raise Cancelled("complete CAM cancelled")
                grads = torch.autograd.grad(objective[:, label].sum(), inputs, retain_graph=True, allow_unused=True)
                for name, tensor, grad in zip(names, cut, grads, strict=False):
                    if grad is None:
                        continue
                    credit = (tensor * grad).sum(1, keepdim=True)
                    parts[name][:, j] = credit.sum((1, 2, 3))
                    totals[:, j] += _carry(credit, grid, _stride(size, credit.shape[-2:]) // grid_stride)[:, 0]
                by_grid: dict[tuple[int, int], Tensor] = {}
                above: dict[str, Tensor | float] = {}
                for site, grad in zip(sites, grads[len(cut):len(cut) + len(sites)], strict=True):
                    if grad is not None:
                        credit = _site_totals(grad, token_grids)
                        key = tuple(credit.shape[-2:])
                        by_grid[key] = by_grid[key] + credit if key in by_grid else credit
                        if with_paths and site.order > tap_order:  # above the routes: the fusion's, or LRD's
                            route = "fusion" if site.module.startswith(FUSION_PREFIX) else lvl.sources[0]
                            above[route] = above.get(route, 0.0) + credit.sum((1, 2, 3))
                for key, credit in by_grid.items():
                    parts["biases"][:, j] += credit.sum((1, 2, 3))
                    ratio = _stride(size, key) // grid_stride if key != (1, 1) else max(grid)
                    totals[:, j] += _carry(credit, grid, ratio)[:, 0]
                if not with_paths:
                    continue
                route_grads = [grads[i] for i in index] if tap_is_cut else grads[len(cut) + len(sites):]
                for source, i, a in zip(lvl.sources, index, route_grads, strict=True):
                    total = _dot(a, routes[i])
                    linear = {}
                    if len(index) == 1:  # one route: every cut tensor's credit reaches the logit through it
                        linear = {name: parts[name][:, j] for name, g in zip(names, grads, strict=False)
                                  if g is not None}
                    else:
                        linear = {name: _dot(a, per_route[i]) for name, per_route in zip(names, tangents, strict=True)
                                  if per_route[i] is not None}
                    for name, value in linear.items():
                        paths[source].setdefault(name, x.new_zeros(batch, count))[:, j] = value
                    paths[source].setdefault("biases", x.new_zeros(batch, count))[:, j] = (
                        total - sum(linear.values()) + above.get(source, 0.0))
                if "fusion" in above:
                    paths.setdefault("fusion", {"biases": x.new_zeros(batch, count)})["biases"][:, j] = above["fusion"]
            maps[target] = totals * (grid[0] * grid[1])
            bias = sum(model.classifiers[name].bias[list(labels)] for name in members).expand(batch, -1)
            layer_share[target] = parts | {"offset": bias}
            if with_paths:
                path_share[target] = paths
        logits = out.logits.detach()[:, list(labels)]
        level_logits = {k: v.detach()[:, list(labels)] for k, v in out.level_logits.items()}
    offsets = {name: model.classifiers[name].bias[list(labels)].expand(batch, -1) for name in levels}
    exact = {
        target: bool(torch.allclose(
            maps[target].mean((2, 3)) + layer_share[target]["offset"],
            sum(level_logits[name] for name in members), rtol=1e-3,
            atol=1e-3 * float(sum(p.abs() for p in layer_share[target].values()).max())))
        for target, members in targets
    }
    if not split_levels:
        combined, maps, layer_share = maps.pop("combined"), {}, {}
    else:
        combined = sum(maps.values())
    return CAMResult(
        maps={k: _numpy(v) for k, v in maps.items()},
        exact=exact,
        combined=_numpy(combined),
        logits=_numpy(logits),
        level_logits={k: _numpy(v) for k, v in level_logits.items()},
        offsets={k: _numpy(v) for k, v in offsets.items()},
        layer_share={k: {s: _numpy(v) for s, v in d.items()} for k, d in layer_share.items()},
        depth=depth,
        labels=labels,
        path_share={k: {r: {s: _numpy(v) for s, v in parts.items()} for r, parts in d.items()}
                    for k, d in path_share.items()},
    )


def _cut_names(spec: ModelSpec, depth: str, count: int) -> tuple[str, ...]:
    """The layer names of a cut's tensors, fine first as the modules return them."""
    if depth == "input":
        return ("input",)
    if depth == "fpn":
        return ("P3", "P4", "P5")[-count:]
    if depth == "stages":
        return tuple(f"S{5 - count + 1 + i}" for i in range(count))
    return (depth.upper(),)


@torch.no_grad()
def _token_maps(model: nn.Module, images: Tensor, output: ModelOutput | None = None) -> CAMResult:
    """Complete CAMs of every label at every level at the token depth, from one forward pass."""
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
        path_share={k: {s: {s: _numpy(v)} for s, v in d.items() if s != "offset"} for k, d in layer_share.items()},
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
