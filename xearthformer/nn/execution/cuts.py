"""Cutting projected q, k, v into the cuboid layout that the attention kernels want.

The SDPA path's cut is one einops ``rearrange`` (:func:`~xearthformer.nn.cuboid.reorder_pattern`
with the heads split). The functions here do that cut with less memory traffic:

* :func:`cut_stacked` (training): a one-pass backward, written straight into the input's
  gradient (autograd's own stacks and then permutes: two copies, one strided);
* :func:`cut_qkv_padded`, :func:`cut_scaled`, :func:`cut_kv_padded` (CPU inference with
  short cuboids, for :func:`~xearthformer.nn.attention.small_attention`): q scaled and k, v
  zero-padded to a multiple of 8 keys in the same pass as the cut, one write per tensor
  instead of up to three (cuboids along time make the cut a copy).
"""

from __future__ import annotations

import torch
from einops import rearrange


class _CutStacked(torch.autograd.Function):
    """``rearrange(x, pattern)`` unbound along its first axis, with a one-pass backward.

    Autograd's own backward of ``unbind(rearrange(x))`` stacks the gradients (a copy) and
    then permutes the stack back (a second copy, a slow strided one). Here each gradient is
    written straight into the gradient of ``x`` through the unmerged cut, which is always a
    view ("k b nt nh nw heads bt bh bw d"): one pass, whether the forward cut was a view
    (cuboids along h or w) or a copy (cuboids along time).
    """

    @staticmethod
    def forward(ctx, x, pattern: str, axes: dict):  # noqa: D102
        ctx.pattern, ctx.axes, ctx.shape = pattern, axes, x.shape
        return tuple(rearrange(x, pattern, **axes).unbind(0))

    @staticmethod
    def backward(ctx, *grads):  # noqa: D102
        like = next(g for g in grads if g is not None)
        out = like.new_empty(ctx.shape)
        axes = {name: size for name, size in ctx.axes.items() if name != "k"}
        views = _unmerged_cut(out, ctx.pattern, len(grads), axes)
        for view, g in zip(views.unbind(0), grads):
            if g is None:
                view.zero_()
            else:
                view.copy_(g.reshape(view.shape))
        return out, None, None


def cut_stacked(x: torch.Tensor, pattern: str, **axes: int) -> tuple[torch.Tensor, ...]:
    """``tuple(rearrange(x, pattern, **axes))``, with a one-pass backward under autograd.

    ``pattern`` must put the stacked axis ("k") first in its output.

    >>> x = torch.arange(24.).reshape(1, 2, 2, 1, 6)
    >>> from xearthformer.nn.cuboid import reorder_pattern
    >>> q, k, v = cut_stacked(x, reorder_pattern(("l", "l", "l"), True), k=3, heads=1, bt=1, bh=2, bw=1)
    >>> q.shape
    torch.Size([2, 1, 2, 2])
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _CutStacked.apply(x, pattern, axes)
    return tuple(rearrange(x, pattern, **axes).unbind(0))


def _unmerged_cut(x: torch.Tensor, pattern: str, k: int, axes: dict) -> torch.Tensor:
    """The cut as a view of ``x``: "k b nt nh nw heads bt bh bw d" (no axis merged, no copy)."""
    src, dst = (side.strip() for side in pattern.split("->"))
    unmerged = dst.replace("(", "").replace(")", "")
    return rearrange(x, f"{src} -> {unmerged}", k=k, **axes)


def _scaled_copy(view: torch.Tensor, scale: float) -> torch.Tensor:
    """"b nt nh nw heads bt bh bw d" view -> contiguous "(b nt nh nw) heads (bt bh bw) d" * scale."""
    b, nt, nh, nw, heads, bt, bh, bw, d = view.shape
    out = view.new_empty(b * nt * nh * nw, heads, bt * bh * bw, d)
    torch.mul(view, scale, out=out.view(view.shape))
    return out


def _padded_keys_copy(view: torch.Tensor, zero_keys: int, multiple: int) -> torch.Tensor:
    """"k b nt nh nw heads bt bh bw d" view -> "k (b nt nh nw) heads padded d" with zero keys after."""
    k, b, nt, nh, nw, heads, bt, bh, bw, d = view.shape
    volume = bt * bh * bw
    padded = -(-(volume + zero_keys) // multiple) * multiple
    out = view.new_empty(k, b * nt * nh * nw, heads, padded, d)
    out[..., volume:, :].zero_()
    out[..., :volume, :].view(view.shape).copy_(view)
    return out


def cut_qkv_padded(x: torch.Tensor, pattern: str, *, q_scale: float, zero_keys: int = 0, multiple: int = 8,
                   **axes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut stacked q, k, v into cuboids for inference: q scaled, k and v with zero keys appended.

    The same q, k, v as ``cut_stacked(x, pattern, k=3, **axes)``, except that q is multiplied
    by ``q_scale`` and k and v get at least ``zero_keys`` keys of zeros at the end of each
    cuboid, then more up to a multiple of ``multiple`` (what :func:`~xearthformer.nn.attention.
    pad_keys` and the scaling inside ``small_attention`` would do later, each with its own
    copy). Every tensor is written once, straight from the strided view of ``x``: one pass
    instead of up to three, which matters for cuboids along time, whose cut is a copy.
    No autograd: for inference only.

    >>> from xearthformer.nn.cuboid import reorder_pattern
    >>> x = torch.randn(1, 12, 2, 2, 3 * 8)
    >>> pattern = reorder_pattern(("l", "l", "l"), True)
    >>> q, k, v = cut_qkv_padded(x, pattern, q_scale=0.5, zero_keys=1, heads=2, bt=12, bh=1, bw=1)
    >>> q.shape, k.shape
    (torch.Size([4, 2, 12, 4]), torch.Size([4, 2, 16, 4]))
    >>> q0, k0, _ = cut_stacked(x, pattern, k=3, heads=2, bt=12, bh=1, bw=1)
    >>> bool(torch.equal(q, q0 * 0.5) and torch.equal(k[:, :, :12], k0) and not k[:, :, 12:].any())
    True
    """
    view = _unmerged_cut(x, pattern, 3, axes)
    kv = _padded_keys_copy(view[1:], zero_keys, multiple)
    return _scaled_copy(view[0], q_scale), kv[0], kv[1]


def cut_scaled(x: torch.Tensor, pattern: str, *, scale: float, **axes: int) -> torch.Tensor:
    """``rearrange(x, pattern, k=1, **axes)[0] * scale`` in one pass (inference only)."""
    return _scaled_copy(_unmerged_cut(x, pattern, 1, axes)[0], scale)


def cut_kv_padded(x: torch.Tensor, pattern: str, *, multiple: int = 8,
                  **axes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``cut_stacked(x, pattern, k=2, **axes)`` with zero keys up to a multiple of ``multiple``.

    One pass from the strided view of ``x`` (inference only), as in :func:`cut_qkv_padded`.
    """
    kv = _padded_keys_copy(_unmerged_cut(x, pattern, 2, axes), 0, multiple)
    return kv[0], kv[1]
