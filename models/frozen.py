"""The frozen point: a model made affine in its input, for complete maps below the tokens.

Inside :class:`FrozenPoint` every non-linear part of the model is held at its value for
the images being explained, so the network is an affine function of the input (and of
any intermediate feature map that cuts it):

* ``nn.MultiheadAttention``: the softmax weights are detached (positional encodings,
  which only reach the queries and keys, then carry no credit);
* ``nn.LayerNorm``: 1/σ is detached (the mean subtraction stays: it is linear);
* ``nn.GELU`` / ``nn.SiLU``: the gate (Φ(x), sigmoid(x)) is detached, ``y = x · gate``;
* ReLU and max-pooling are piecewise linear already: autograd's derivative *is* the
  frozen gate or routing. ``torch.amax`` (PMA's pooling over positions) splits the
  derivative evenly among tied maxima; ``nn.MaxPool2d`` (the backbone stem) would give
  a tie to the first position of its window (torch's scan order), so here each window's
  output is re-expressed as the mean of its tied positions (the same value; the
  derivative split evenly among them, as PMA's);
* BatchNorm in eval mode is affine: ``x · w/√(v+ε) + (b − m·w/√(v+ε))``.

Every bias met (conv, linear and BatchNorm shifts, LayerNorm shifts, the attention's
value and output biases) gets a *probe*: a zero tensor, one value per position, added as
``probe · bias``. The forward's values do not change (the probe is zero), and the
gradient of a logit with respect to a probe is the bias's credit at each position where
it is added (the bias-gradient terms of FullGrad, Srinivas & Fleuret 2019). With the
gates frozen, ``logit = Σ cut · ∂logit/∂cut + Σ_{sites above the cut} credit + b_cls``
for any feature map (or the input) that cuts the network; :mod:`models.cam` builds the
deeper depths on this.

Outside the context the model is untouched: the hooks are removed on exit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

#: Normalisations the frozen point cannot make affine (refused, naming the module).
_UNSUPPORTED = ("GroupNorm", "LayerNorm2d", "InstanceNorm", "BatchNormAct", "LocalResponseNorm")


@dataclass
class BiasSite:
    """One bias added in the forward pass: its probe, the order it was met in, its module.

    ``probe``: (B, 1, h, w) for a feature map, (B, N, 1) for N tokens. ``order``: the
    forward's count of hooks fired when it was added (a cut met later lies above it).
    ``module``: the name of the module that adds it (``"clf.P4.attn"``, ...).
    """

    probe: Tensor
    order: int
    module: str = ""


class TapReached(Exception):
    """Raised by the tap named in ``FrozenPoint(stop_at=...)``: the forward pass is not needed past it."""


class FrozenPoint:
    """Hooks that freeze ``model``'s gates and probe its biases; a context manager.

    ``skip``: modules whose bias is not probed (the level classifiers: their bias is the
    offset). ``cuts``: name → module whose output becomes the depth's leaves
    (``cut_outputs``): the output (a tensor, or a list of tensors) is passed on detached,
    so a logit's gradient there is its partial derivative in each tensor (S4 is computed
    from S3, but the FPN reads both) and backward passes stop at the cut. ``sites`` lists
    every probed bias. ``taps``: name → module whose output (a list of tensors) is kept as
    it is, graph attached (``tap_outputs``, ``tap_order``); with ``stop_at`` naming one, the
    forward ends there by raising :class:`TapReached`. ``tangent``: inside
    ``torch.autograd.forward_ad.dual_level``, cut tensor number ``tangent`` carries itself
    as its tangent and the others zero, so a tap's tangent is the part of it that is linear
    in that tensor (the frozen map applied to it, no bias).
    """

    def __init__(self, model: nn.Module, skip: tuple[nn.Module, ...] = (), cuts: dict[str, nn.Module] | None = None,
                 taps: dict[str, nn.Module] | None = None, stop_at: str | None = None, tangent: int | None = None):
        self.sites: list[BiasSite] = []
        self.cut_outputs: dict[str, list[Tensor]] = {}
        self.cut_order: dict[str, int] = {}
        self.tap_outputs: dict[str, list[Tensor]] = {}
        self.tap_order: dict[str, int] = {}
        self._handles = []
        self._count = 0
        self._tangent = tangent
        self._names = {id(module): name for name, module in model.named_modules()}
        skipped = {id(m) for m in skip}
        for name, module in model.named_modules():
            kind = type(module).__name__
            if any(bad in kind for bad in _UNSUPPORTED):
                self.release()
                raise ValueError(f"maps below the tokens cannot freeze {name or 'the model'} ({kind}): "
                                 "supported are Conv2d, Linear, BatchNorm2d, LayerNorm, ReLU/GELU/SiLU, max-pooling "
                                 "and nn.MultiheadAttention")
            if id(module) in skipped:
                continue
            hook = self._hook_for(module)
            if hook is not None:
                self._handles.append(module.register_forward_hook(hook, with_kwargs=True))
        for name, module in (cuts or {}).items():
            self._handles.append(module.register_forward_hook(self._cut_hook(name)))
        for name, module in (taps or {}).items():
            self._handles.append(module.register_forward_hook(self._tap_hook(name, name == stop_at)))

    # -- hooks ---------------------------------------------------------------------------
    def _hook_for(self, module: nn.Module):
        if isinstance(module, nn.MultiheadAttention):
            return self._attention
        if isinstance(module, nn.LayerNorm):
            return self._layer_norm
        if isinstance(module, nn.GELU | nn.SiLU):
            return self._gate
        if type(module) in (nn.BatchNorm2d, nn.BatchNorm1d):
            return self._batch_norm
        if isinstance(module, nn.MaxPool2d):
            return self._max_pool
        if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
            return self._linear
        return None

    def _probe(self, output: Tensor, bias: Tensor, channel_dim: int, module: nn.Module) -> Tensor:
        """``output + probe · bias``, the probe zero with one value per position."""
        shape = list(output.shape)
        shape[channel_dim] = 1
        probe = torch.zeros(shape, device=output.device, dtype=output.dtype, requires_grad=True)
        self._count += 1
        self.sites.append(BiasSite(probe, self._count, self._names.get(id(module), "")))
        view = [1] * output.ndim
        view[channel_dim] = -1
        return output + probe * bias.view(view)

    def _linear(self, module, args, kwargs, output):
        return self._probe(output, module.bias, 1 if isinstance(module, nn.Conv2d) else -1, module)

    def _batch_norm(self, module, args, kwargs, output):
        if module.training:
            raise ValueError("the frozen point needs BatchNorm in eval mode: call model.eval() first")
        scale = module.weight / torch.sqrt(module.running_var + module.eps)
        return self._probe(output, module.bias - module.running_mean * scale, 1, module)

    def _layer_norm(self, module, args, kwargs, output):
        x = args[0]
        dims = tuple(range(-len(module.normalized_shape), 0))
        centred = x - x.mean(dims, keepdim=True)
        inv_sigma = torch.rsqrt(x.var(dims, unbiased=False, keepdim=True) + module.eps).detach()
        y = centred * inv_sigma
        if module.weight is not None:
            y = y * module.weight
        if module.bias is not None:
            y = self._probe(y + module.bias, module.bias, -1, module)
        return y

    def _max_pool(self, module: nn.MaxPool2d, args, kwargs, output):
        """The pooled value again, as the mean of each window's tied maxima (weights held):
        the forward's value exactly, the derivative split evenly among the tied positions."""
        if module.return_indices or module.ceil_mode:
            raise ValueError("the frozen point handles nn.MaxPool2d without return_indices or ceil_mode")
        x = args[0]
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        padding, dilation = _pair(module.padding), _pair(module.dilation)
        padded = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=-math.inf)
        windows = F.unfold(padded, kernel, dilation=dilation, stride=stride)  # (B, C·kh·kw, L)
        windows = windows.unflatten(1, (x.shape[1], -1))  # (B, C, kh·kw, L)
        tied = windows == output.flatten(2)[:, :, None]
        weights = (tied / tied.sum(2, keepdim=True)).detach()
        mean = (torch.where(tied, windows, 0.0) * weights).sum(2).view_as(output)
        return output.detach() + (mean - mean.detach())  # exactly the value; the tie-split derivative

    def _gate(self, module, args, kwargs, output):
        x = args[0]
        gate = torch.sigmoid(x) if isinstance(module, nn.SiLU) else 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        return x * gate.detach()

    def _attention(self, module: nn.MultiheadAttention, args, kwargs, output):
        """The attention again with its weights detached and its biases probed."""
        names = ("query", "key", "value")
        query, key, value = (args[i] if i < len(args) else kwargs[n] for i, n in enumerate(names))
        if not module.batch_first or module.bias_k is not None or module.in_proj_weight is None:
            raise ValueError("the frozen point handles batch-first nn.MultiheadAttention with packed projections")
        heads = module.num_heads
        w_q, w_k, w_v = module.in_proj_weight.chunk(3)
        b_q, b_k, b_v = module.in_proj_bias.chunk(3)
        q = F.linear(query, w_q, b_q).unflatten(-1, (heads, -1)).transpose(1, 2)
        k = F.linear(key, w_k, b_k).unflatten(-1, (heads, -1)).transpose(1, 2)
        weights = torch.softmax((q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1), dim=-1).detach()
        v = self._probe(F.linear(value, w_v, b_v), b_v, -1, module).unflatten(-1, (heads, -1)).transpose(1, 2)
        mixed = (weights @ v).transpose(1, 2).flatten(2)
        out = self._probe(F.linear(mixed, module.out_proj.weight, module.out_proj.bias), module.out_proj.bias, -1,
                          module)
        need_weights = kwargs.get("need_weights", True)
        return out, (weights if need_weights else None)

    def _cut_hook(self, name: str):
        def hook(module, args, output):
            self._count += 1
            self.cut_order[name] = self._count
            tensors = list(output) if isinstance(output, list | tuple) else [output]
            leaves = [t.detach().requires_grad_() for t in tensors]
            self.cut_outputs[name] = leaves
            if self._tangent is not None:  # forward mode: the part linear in one cut tensor
                leaves = [fwAD.make_dual(t, t.detach() if k == self._tangent else torch.zeros_like(t))
                          for k, t in enumerate(leaves)]
            return leaves if isinstance(output, list | tuple) else leaves[0]

        return hook

    def _tap_hook(self, name: str, stop: bool):
        def hook(module, args, output):
            self._count += 1
            self.tap_order[name] = self._count
            self.tap_outputs[name] = list(output) if isinstance(output, list | tuple) else [output]
            if stop:
                raise TapReached(name)

        return hook

    def sites_above(self, name: str | None) -> list[BiasSite]:
        """The sites added after cut ``name`` was met (all of them for the input: None)."""
        order = 0 if name is None else self.cut_order[name]
        return [site for site in self.sites if site.order > order]

    # -- lifetime ------------------------------------------------------------------------
    def release(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FrozenPoint:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
