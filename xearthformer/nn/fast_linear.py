"""Linear layers through oneDNN on CPU (inference): about twice as fast as ``F.linear`` here.

``F.linear`` on CPU calls a BLAS GEMM. For the tall, narrow products of a transformer over
many tokens (tens of thousands of rows, 64-256 columns) oneDNN's ``_linear_pointwise``
(the kernel ``torch.compile`` uses on CPU) ran about twice as fast on this machine, and it
fuses the exact GELU of the feed-forward block for free. Outputs agree with ``F.linear`` to
float32 rounding (the GELU-fused form matched bit for bit in our checks).

Used only where it is safe: CPU, float32, no autocast, not under ``torch.compile`` (which
takes ``F.linear``), and when the op exists in this torch build; in training through a
small autograd function whose backward products are oneDNN ones for the input gradient
(BLAS ``mm`` took 1.3-2.2x longer for it) and a BLAS ``mm`` for the weight gradient (there
oneDNN copies the transposed operands first): ``benchmarks/bench_kernels.py``. Everything
else takes ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._compile import compiling
from .backend import fast_paths_enabled
from .dropout import apply_drop_, random_drop_mask

__all__ = ["linear", "linear_dropout", "onednn_available", "weight_grad"]


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's fused linear op."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN = onednn_available()


def _eligible(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_ONEDNN and fast_paths_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.numel() > 0
            and not torch.is_autocast_enabled("cpu") and not compiling())


def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none"):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [],
                                              "none" if activation == "gelu" else "")


def weight_grad(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``grad_out.T @ x`` for "n o" and "n i" rows: the weight gradient of a linear layer.

    A BLAS ``mm`` with the transpose passed as a flag: no copy of either operand. (oneDNN's
    linear, given the transposed views, first copies them into its own layout: for the
    256x64 weight gradient over 55,296 rows it took 67 ms against 16 ms for the ``mm``,
    ``benchmarks/bench_kernels.py``.)

    Examples
    --------
    >>> g, x = torch.randn(50, 3), torch.randn(50, 4)
    >>> torch.allclose(weight_grad(g, x), g.t() @ x, atol=1e-5)
    True
    """
    return grad_out.t().mm(x)


class _OneDNNLinear(torch.autograd.Function):
    """``F.linear`` with oneDNN forward and backward products (CPU float32 training)."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # noqa: D102
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _pointwise(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        x, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x = _pointwise(grad_out, weight.t().contiguous(), None) if ctx.needs_input_grad[0] else None
        grad_w = weight_grad(grad_out, x) if ctx.needs_input_grad[1] else None
        grad_b = grad_out.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
           activation: str = "none", need_grad: bool = True) -> torch.Tensor:
    """``F.linear`` (optionally followed by exact ``"gelu"``), on oneDNN when eligible.

    With autograd recording (training) the plain product goes through an autograd function
    whose backward products are oneDNN ones too. ``need_grad=False`` is for callers that
    write their own backward (the lean autograd functions), so the autograd state of ``x``
    does not matter.

    Examples
    --------
    >>> x, w, b = torch.randn(5, 4), torch.randn(3, 4), torch.randn(3)
    >>> with torch.no_grad():
    ...     torch.allclose(linear(x, w, b, activation="gelu"), F.gelu(F.linear(x, w, b)), atol=1e-6)
    True
    """
    if activation not in ("none", "gelu"):
        raise ValueError(f"activation must be 'none' or 'gelu', got {activation!r}")
    recording = need_grad and torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
    if not _eligible(x, weight) or (recording and activation != "none"):
        out = F.linear(x, weight, bias)
        return F.gelu(out) if activation == "gelu" else out
    rows = x.reshape(-1, x.shape[-1])
    if not rows.is_contiguous():
        rows = rows.contiguous()
    if recording:
        out = _OneDNNLinear.apply(rows, weight, bias)
    else:
        out = _pointwise(rows, weight, bias, activation)
    return out.view(*x.shape[:-1], weight.shape[0])


def linear_dropout(x: torch.Tensor, proj: torch.nn.Linear, dropout: torch.nn.Module) -> torch.Tensor:
    """``dropout(proj(x))`` in one pass over the output (:func:`linear` for the product).

    When the dropout is active, its ``1 / (1 - p)`` goes into the weight and bias (small)
    and the mask is applied in place to the linear's output (which autograd does not keep).

    Examples
    --------
    >>> from xearthformer.nn import FastDropout
    >>> lin, drop = torch.nn.Linear(4, 3), FastDropout(0.5)
    >>> x = torch.randn(2, 4)
    >>> _ = torch.manual_seed(0)
    >>> a = linear_dropout(x, lin, drop)
    >>> _ = torch.manual_seed(0)
    >>> b = drop(lin(x))
    >>> torch.allclose(a, b, atol=1e-6)
    True
    """
    p = getattr(dropout, "p", 0.0)
    if not (dropout.training and p > 0.0 and fast_paths_enabled()):
        return dropout(linear(x, proj.weight, proj.bias))
    scale = 1.0 / (1.0 - p)
    bias = None if proj.bias is None else proj.bias * scale
    out = linear(x, proj.weight * scale, bias)
    return apply_drop_(out, random_drop_mask(out.shape, p, device=out.device))
