"""Memory-lean training paths: LayerNorm fused with what follows it.

Two autograd functions that save less for backward than the modules they replace, used only
in training (evaluation takes the plain modules):

* :class:`LeanFFNFunction` for the pre-norm GELU feed-forward block;
* :class:`NormLinearFunction` for ``linear(layer_norm(x), weight)``, the attention layers'
  projection (the LayerNorm output is not kept: it is recomputed from the input).

The feed-forward block:

Autograd through ``ffn_2(dropout(gelu(ffn_1(layer_norm(x)))))`` keeps five tensors per
token alive until backward: the LayerNorm input and output, the GELU input and output, and
the dropout mask (10 floats per hidden-width quarter). :class:`LeanFFNFunction` keeps only
the input, the LayerNorm statistics, the hidden pre-activation and a ``bool`` dropout mask,
and recomputes the cheap element-wise parts (normalisation, GELU, mask scaling) in backward.
No matrix product is recomputed, so the time cost is a few element-wise passes while the
memory saved is about 40% of the block's activations.

The maths is exactly the module's: the same ATen kernels (``native_layer_norm``, ``addmm``,
exact ``gelu``) in the same order, so outputs agree to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dropout import random_drop_mask
from .fast_linear import linear

__all__ = ["lean_ffn", "norm_linear"]


class LeanFFNFunction(torch.autograd.Function):
    """``ffn_2(drop(gelu(ffn_1(layer_norm(x)))))`` on "n c" rows, saving little for backward."""

    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, w1, b1, w2, b2, eps: float, p: float):  # noqa: D102
        normed, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, eps)
        hidden = linear(normed, w1, b1, need_grad=False)
        del normed
        act = F.gelu(hidden)
        drop = None
        if p > 0.0:  # the 1 / (1 - p) of the kept activations goes into the (small) weight
            drop = random_drop_mask(act.shape, p, device=act.device)
            act.masked_fill_(drop, 0.0)
        out = linear(act, _scaled(w2, p), b2, need_grad=False)
        ctx.save_for_backward(x, mean, rstd, ln_weight, ln_bias, w1, w2, hidden,
                              drop if drop is not None else torch.empty(0, dtype=torch.bool))
        ctx.eps, ctx.p = eps, p
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        x, mean, rstd, ln_weight, ln_bias, w1, w2, hidden, drop = ctx.saved_tensors
        p = ctx.p
        act = F.gelu(hidden)
        if p > 0.0:
            act.masked_fill_(drop, 0.0)
        grad_w2 = grad_out.t().mm(act)
        if p > 0.0:
            grad_w2.mul_(1.0 / (1.0 - p))
        grad_b2 = grad_out.sum(0)
        del act
        grad_act = linear(grad_out, _scaled(w2, p).t().contiguous(), need_grad=False)
        if p > 0.0:
            grad_act.masked_fill_(drop, 0.0)
        grad_hidden = torch.ops.aten.gelu_backward(grad_act, hidden)
        del grad_act
        normed = (x - mean) * rstd
        if ln_weight is not None:
            normed = torch.addcmul(ln_bias, normed, ln_weight) if ln_bias is not None else normed * ln_weight
        grad_w1 = grad_hidden.t().mm(normed)
        grad_b1 = grad_hidden.sum(0)
        del normed
        grad_normed = linear(grad_hidden, w1.t().contiguous(), need_grad=False)
        grad_x, grad_ln_w, grad_ln_b = torch.ops.aten.native_layer_norm_backward(
            grad_normed, x, (x.shape[-1],), mean, rstd, ln_weight, ln_bias,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return grad_x, grad_ln_w, grad_ln_b, grad_w1, grad_b1, grad_w2, grad_b2, None, None


def _scaled(weight: torch.Tensor, p: float) -> torch.Tensor:
    """``weight / (1 - p)``: dropout's rescaling, applied to the weight after the mask."""
    return weight if p == 0.0 else weight * (1.0 / (1.0 - p))


def lean_ffn(x: torch.Tensor, norm: torch.nn.LayerNorm, ffn_1: torch.nn.Linear, ffn_2: torch.nn.Linear,
             p: float) -> torch.Tensor:
    """``ffn_2(dropout_p(gelu(ffn_1(norm(x)))))`` for "... c" input, through :class:`LeanFFNFunction`.

    Examples
    --------
    >>> norm, f1, f2 = torch.nn.LayerNorm(4), torch.nn.Linear(4, 8), torch.nn.Linear(8, 4)
    >>> x = torch.randn(2, 3, 4, requires_grad=True)
    >>> expected = f2(F.gelu(f1(norm(x))))
    >>> torch.allclose(lean_ffn(x, norm, f1, f2, p=0.0), expected, atol=1e-6)
    True
    """
    rows = x.reshape(-1, x.shape[-1])
    out = LeanFFNFunction.apply(rows, norm.weight, norm.bias, ffn_1.weight, ffn_1.bias, ffn_2.weight,
                                ffn_2.bias, norm.eps, p)
    return out.view(*x.shape[:-1], out.shape[-1])


class NormLinearFunction(torch.autograd.Function):
    """``layer_norm(x) @ weight.T`` on "n c" rows, keeping only ``x`` and the statistics."""

    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, weight, eps: float):  # noqa: D102
        normed, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, eps)
        out = linear(normed, weight, need_grad=False)
        ctx.save_for_backward(x, mean, rstd, ln_weight, ln_bias, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        x, mean, rstd, ln_weight, ln_bias, weight = ctx.saved_tensors
        normed = (x - mean) * rstd
        if ln_weight is not None:
            normed = torch.addcmul(ln_bias, normed, ln_weight) if ln_bias is not None else normed * ln_weight
        grad_weight = grad_out.t().mm(normed)
        del normed
        grad_normed = linear(grad_out, weight.t().contiguous(), need_grad=False)
        grad_x, grad_ln_w, grad_ln_b = torch.ops.aten.native_layer_norm_backward(
            grad_normed, x, (x.shape[-1],), mean, rstd, ln_weight, ln_bias,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return grad_x, grad_ln_w, grad_ln_b, grad_weight, None


def norm_linear(x: torch.Tensor, norm: torch.nn.LayerNorm, weight: torch.Tensor) -> torch.Tensor:
    """``F.linear(norm(x), weight)`` for "... c" input, through :class:`NormLinearFunction`.

    Examples
    --------
    >>> norm, w = torch.nn.LayerNorm(4), torch.randn(6, 4)
    >>> x = torch.randn(2, 3, 4)
    >>> torch.allclose(norm_linear(x, norm, w), F.linear(norm(x), w), atol=1e-6)
    True
    """
    rows = x.reshape(-1, x.shape[-1])
    out = NormLinearFunction.apply(rows, norm.weight, norm.bias, weight, norm.eps)
    return out.view(*x.shape[:-1], out.shape[-1])


def lean_path_ok(norm: torch.nn.Module, device_type: str) -> bool:
    """Whether the lean functions apply: training with autograd, a LayerNorm, no autocast."""
    return (norm.training and torch.is_grad_enabled() and type(norm) is torch.nn.LayerNorm
            and not torch.is_autocast_enabled(device_type))
