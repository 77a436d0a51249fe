"""The attention kernel shared by cuboid self- and cross-attention.

All cuboid attention ends in the same computation: queries attend, within their
cuboid, to the cuboid's keys (plus a relative-position bias and, with shifted or
masked cuboids, a mask) and optionally to a few global keys that share the same
softmax. It is done with :func:`torch.nn.functional.scaled_dot_product_attention`,
which takes fused kernels on CPU and GPU and never materialises a mask that is all
true.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dropout import random_keep_mask

_MASK_FILL = {torch.float16: -1e4}


def mask_fill_value(dtype: torch.dtype) -> float:
    """The score given to masked positions (the official ``-1e18``, ``-1e4`` in fp16)."""
    return _MASK_FILL.get(dtype, -1e18)


def additive_mask(bias: torch.Tensor | None, mask: torch.Tensor | None, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor | None:
    """Combine a relative-position ``bias`` "heads v s" and a boolean ``mask`` "n v s".

    Returns a float tensor broadcastable to "n heads v s" ("1 heads v s" when there is no
    mask), or ``None`` when there is neither.
    """
    if mask is None:
        # 4-D "1 heads v s": the shape the fused CPU kernel accepts (a 3-D mask falls back to maths)
        return None if bias is None else bias.to(dtype)[None]
    mask = mask.to(device)
    fill = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, mask_fill_value(dtype))
    fill = fill[:, None]  # n 1 v s
    return fill if bias is None else fill + bias.to(dtype)


class _DropoutAttention(torch.autograd.Function):
    """Attention with dropout on the probabilities, saving little for backward.

    ``scaled_dot_product_attention`` with ``dropout_p > 0`` has no fused CPU kernel: its
    maths fallback draws a float Bernoulli tensor and keeps the scores, the probabilities,
    the dropped probabilities and the float mask alive for backward. Here the forward keeps
    only q, k, v, the row log-sum-exp and a ``bool`` keep-mask (drawn with
    :func:`~xearthformer.nn.dropout.random_keep_mask`); the backward, written out,
    recomputes the probabilities from them (as flash attention does).
    Same maths as ``softmax(q k^T * scale + mask) * keep / (1 - p) @ v``.
    """

    @staticmethod
    def forward(ctx, q, k, v, attn_mask, scale: float, p: float):  # noqa: D102
        probs, lse = _probabilities(q, k, attn_mask, scale)
        keep = random_keep_mask(probs.shape, p, device=probs.device)
        out = torch.matmul(probs.masked_fill_(~keep, 0.0).mul_(1.0 / (1.0 - p)), v)
        del probs
        ctx.save_for_backward(q, k, v, attn_mask, lse, keep)
        ctx.scale, ctx.p = scale, p
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        q, k, v, attn_mask, lse, keep = ctx.saved_tensors
        c = 1.0 / (1.0 - ctx.p)
        drop = ~keep
        probs, _ = _probabilities(q, k, attn_mask, ctx.scale, lse=lse)
        grad_v = torch.matmul(probs.masked_fill(drop, 0.0).mul_(c).transpose(-2, -1), grad_out)
        grad_probs = torch.matmul(grad_out, v.transpose(-2, -1)).masked_fill_(drop, 0.0).mul_(c)
        # softmax backward: dS = P * (dP - sum(dP * P))
        row = (grad_probs * probs).sum(dim=-1, keepdim=True)
        grad_scores = grad_probs.sub_(row).mul_(probs)
        del probs
        grad_mask = None
        if attn_mask is not None and ctx.needs_input_grad[3]:
            grad_mask = _sum_to_shape(grad_scores, attn_mask.shape)
        grad_q = torch.matmul(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), q).mul_(ctx.scale)
        return grad_q, grad_k, grad_v, grad_mask, None, None


def _probabilities(q, k, attn_mask, scale: float, lse: torch.Tensor | None = None):
    """Softmax probabilities and their log-sum-exp; with ``lse`` given, recomputed from it."""
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)
    if attn_mask is not None:
        scores.add_(attn_mask)
    if lse is None:
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    return scores.sub_(lse).exp_(), lse


def _sum_to_shape(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast result back to ``shape`` (right-aligned, as broadcasting does)."""
    lead = t.dim() - len(shape)
    if lead:
        t = t.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and t.shape[i] != 1)
    return t.sum(dim=dims, keepdim=True) if dims else t


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, attn_mask: torch.Tensor | None,
              scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """``scaled_dot_product_attention``, with a lean written-out path when dropout is on.

    Without dropout (evaluation, or ``dropout_p=0``) and on GPUs (whose fused kernels
    support dropout) this is SDPA itself. With dropout on CPU it is
    :class:`_DropoutAttention`, which saves less memory and avoids the float Bernoulli draw
    of SDPA's maths fallback.
    """
    if dropout_p > 0.0 and q.device.type == "cpu":
        return _DropoutAttention.apply(q, k, v, attn_mask, scale, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


def cuboid_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, batch: int,
                     attn_mask: torch.Tensor | None, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """Attention inside cuboids.

    Parameters
    ----------
    q, k, v
        "(b n) heads v d", "(b n) heads s d", "(b n) heads s e": cuboid n of sample b.
    batch
        b, so that a per-cuboid mask "n heads v s" can be broadcast over samples.
    attn_mask
        None, a float "1 heads v s" (same for every cuboid) or a float "n heads v s".
    """
    if attn_mask is not None and attn_mask.dim() == 4 and attn_mask.shape[0] > 1:
        n = attn_mask.shape[0]
        shape5 = lambda t: t.view(batch, n, *t.shape[1:])  # noqa: E731
        out = attention(shape5(q), shape5(k), shape5(v), attn_mask=attn_mask, dropout_p=dropout_p,
                        scale=scale)
        return out.flatten(0, 1)
    return attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)


def gather_bias(table: torch.Tensor, index: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Relative-position bias "heads rows cols" from the table and the (sliced) index buffer."""
    idx = index[:rows, :cols].reshape(-1)
    return table[idx].view(rows, cols, -1).permute(2, 0, 1)
