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

from .backend import fast_paths_enabled
from .dropout import apply_drop_, dropped, random_drop_mask
from .fast_linear import linear, weight_grad

__all__ = ["lean_ffn", "norm_linear"]


#: Rows per block of the FFN (a 4 MiB hidden block at 256 hidden units): the lean training
#: FFN here and the CPU-inference FFN of :class:`~xearthformer.nn.layers.PositionwiseFFN`.
FFN_BLOCK_ROWS = 4096
#: A pre-activation where the exact GELU and its derivative are 0 (erf saturates to -1).
GELU_SILENT = -1e4


class LeanFFNFunction(torch.autograd.Function):
    """``drop_out(ffn_2(drop_act(gelu(ffn_1(layer_norm(x))))))`` on "n c" rows, saving little.

    Both dropouts are fused in. The activation dropout is applied to the GELU *input*: a
    dropped hidden unit is set to :data:`GELU_SILENT` (-1e4), where the exact GELU and its
    derivative are both exactly 0 in float32 and float64. So the activations are those of
    dropping after the GELU, and the saved hidden tensor carries its own mask: backward
    recomputes activations and gradients that are already 0 where dropped, and no mask for
    the hidden layer is kept (1 byte per hidden unit less) or applied again. The
    ``1 / (1 - p)`` rescalings are folded into ``ffn_2``'s weight and bias, and the output
    dropout masks ``ffn_2``'s output in place.

    Everything 4x wide except the saved hidden tensor (the activations in forward; the
    activations, their gradient and the hidden gradient in backward) is made over blocks of
    :data:`FFN_BLOCK_ROWS` rows: a few MiB that the allocator reuses, where whole they were
    three fresh tensors of the hidden's size per call (page faults, and that much more
    memory at the start of backward, when memory peaks). The weight gradients add up over
    the blocks (``addmm_``): the same sums, in another order.
    """

    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, w1, b1, w2, b2, eps: float, p: float,  # noqa: D102
                p_out: float = 0.0):
        normed, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, eps)
        hidden = linear(normed, w1, b1, need_grad=False)
        del normed
        drop = random_drop_mask(hidden.shape, p, device=hidden.device) if p > 0.0 else None
        silent = hidden.new_full((), GELU_SILENT) if drop is not None else None
        w2s, b2s = _scaled(w2, p, p_out), _scaled(b2, 0.0, p_out)
        out = x.new_empty(x.shape[0], w2.shape[0])
        for rows in row_slices(x.shape[0], FFN_BLOCK_ROWS):
            h = hidden[rows]
            if drop is not None:  # while the block is in cache, just before its GELU
                torch.where(drop[rows], silent, h, out=h)
            out[rows] = linear(F.gelu(h), w2s, b2s, need_grad=False)
        del drop
        drop_out = _no_mask(x)
        if p_out > 0.0:
            drop_out = random_drop_mask(out.shape, p_out, device=out.device)
            apply_drop_(out, drop_out)
        ctx.save_for_backward(x, mean, rstd, ln_weight, ln_bias, w1, w2, hidden, drop_out)
        ctx.eps, ctx.p, ctx.p_out = eps, p, p_out
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        x, mean, rstd, ln_weight, ln_bias, w1, w2, hidden, drop_out = ctx.saved_tensors
        p, p_out = ctx.p, ctx.p_out
        if p_out > 0.0:  # grad_out may be shared with the residual branch: not in place
            grad_out = dropped(grad_out, drop_out)
        grad_out = grad_out.contiguous()
        normed = torch.native_layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, ctx.eps)[0]  # as forward
        w2s_t = _scaled(w2, p, p_out).t().contiguous()
        w1_t = w1.t().contiguous()
        grad_w2 = w2.new_zeros(w2.shape)
        grad_w1 = w1.new_zeros(w1.shape)
        grad_b1 = w1.new_zeros(w1.shape[0])
        grad_normed = normed.new_empty(normed.shape)
        for rows in row_slices(x.shape[0], FFN_BLOCK_ROWS):
            h, g = hidden[rows], grad_out[rows]
            act = F.gelu(h)  # 0 where dropped (GELU_SILENT)
            grad_w2.addmm_(g.t(), act)
            grad_act = linear(g, w2s_t, need_grad=False)
            grad_hidden = torch.ops.aten.gelu_backward(grad_act, h)  # 0 where dropped, too
            grad_b1 += grad_hidden.sum(0)
            grad_w1.addmm_(grad_hidden.t(), normed[rows])
            grad_normed[rows] = linear(grad_hidden, w1_t, need_grad=False)
        if p > 0.0 or p_out > 0.0:
            grad_w2.mul_(_scale(p) * _scale(p_out))
        grad_b2 = grad_out.sum(0)
        if p_out > 0.0:
            grad_b2.mul_(_scale(p_out))
        del normed
        grad_x, grad_ln_w, grad_ln_b = torch.ops.aten.native_layer_norm_backward(
            grad_normed, x, (x.shape[-1],), mean, rstd, ln_weight, ln_bias,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]])
        return grad_x, grad_ln_w, grad_ln_b, grad_w1, grad_b1, grad_w2, grad_b2, None, None, None


def row_slices(n: int, step: int) -> list[slice]:
    """Consecutive slices of at most ``step`` items covering ``range(n)`` (the blocks of the
    blocked paths).

    >>> row_slices(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    step = max(1, step)
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _no_mask(like: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=torch.bool, device=like.device)


def _scale(p: float) -> float:
    return 1.0 / (1.0 - p)


def _scaled(t: torch.Tensor | None, p: float, p_out: float = 0.0) -> torch.Tensor | None:
    """``t / ((1 - p)(1 - p_out))``: dropout's rescalings, applied to a (small) parameter."""
    if t is None or (p == 0.0 and p_out == 0.0):
        return t
    return t * (_scale(p) * _scale(p_out))


def lean_ffn(x: torch.Tensor, norm: torch.nn.LayerNorm, ffn_1: torch.nn.Linear, ffn_2: torch.nn.Linear,
             p: float, p_out: float = 0.0) -> torch.Tensor:
    """``dropout_p_out(ffn_2(dropout_p(gelu(ffn_1(norm(x))))))`` for "... c" input, through
    :class:`LeanFFNFunction`.

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
                                ffn_2.bias, norm.eps, p, p_out)
    return out.view(*x.shape[:-1], out.shape[-1])


class NormLinearFunction(torch.autograd.Function):
    """``layer_norm(x) @ weight.T`` on "n c" rows, keeping only ``x`` and the statistics."""

    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, weight, eps: float):  # noqa: D102
        normed, mean, rstd = torch.native_layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, eps)
        out = linear(normed, weight, need_grad=False)
        ctx.save_for_backward(x, mean, rstd, ln_weight, ln_bias, weight)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        x, mean, rstd, ln_weight, ln_bias, weight = ctx.saved_tensors
        normed = torch.native_layer_norm(x, (x.shape[-1],), ln_weight, ln_bias, ctx.eps)[0]  # as forward
        grad_weight = weight_grad(grad_out, normed)
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
    """Whether the lean functions apply: backend ``"auto"``, training with autograd, a
    LayerNorm, no autocast."""
    return (fast_paths_enabled() and norm.training and torch.is_grad_enabled()
            and type(norm) is torch.nn.LayerNorm
            and not torch.is_autocast_enabled(device_type))
