"""Linear layers through oneDNN on CPU (inference): about twice as fast as ``F.linear`` here.

``F.linear`` on CPU calls a BLAS GEMM. For the tall, narrow products of a transformer over
many tokens (tens of thousands of rows, 64-256 columns) oneDNN's ``_linear_pointwise``
(the kernel ``torch.compile`` uses on CPU) ran about twice as fast on this machine, and it
fuses the exact GELU of the feed-forward block for free. Outputs agree with ``F.linear`` to
float32 rounding (the GELU-fused form matched bit for bit in our checks).

Used only where it is safe: CPU, float32, no autograd (``torch.no_grad`` / inference mode, or
inside our own autograd functions), no autocast, and when the op exists in this torch build.
Everything else takes ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["linear", "onednn_available"]


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's fused linear op."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):
        return False


_ONEDNN = onednn_available()


def _eligible(x: torch.Tensor, weight: torch.Tensor, need_grad: bool) -> bool:
    return (_ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and x.numel() > 0
            and not (need_grad and torch.is_grad_enabled()
                     and (x.requires_grad or weight.requires_grad))
            and not torch.is_autocast_enabled("cpu"))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
           activation: str = "none", need_grad: bool = True) -> torch.Tensor:
    """``F.linear`` (optionally followed by exact ``"gelu"``), on oneDNN when eligible.

    ``need_grad=False`` is for callers that write their own backward (the lean autograd
    functions), so the autograd state of ``x`` does not matter.

    Examples
    --------
    >>> x, w, b = torch.randn(5, 4), torch.randn(3, 4), torch.randn(3)
    >>> with torch.no_grad():
    ...     torch.allclose(linear(x, w, b, activation="gelu"), F.gelu(F.linear(x, w, b)), atol=1e-6)
    True
    """
    if activation not in ("none", "gelu"):
        raise ValueError(f"activation must be 'none' or 'gelu', got {activation!r}")
    if not _eligible(x, weight, need_grad):
        out = F.linear(x, weight, bias)
        return F.gelu(out) if activation == "gelu" else out
    rows = x.reshape(-1, x.shape[-1])
    if not rows.is_contiguous():
        rows = rows.contiguous()
    out = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, activation, [], "none" if activation == "gelu" else "")
    return out.view(*x.shape[:-1], weight.shape[0])
