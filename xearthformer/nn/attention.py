"""The attention kernel shared by cuboid self- and cross-attention.

All cuboid attention ends in the same computation: queries attend, within their
cuboid, to the cuboid's keys (plus a relative-position bias and, with shifted or
masked cuboids, a mask) and optionally to a few global keys that share the same
softmax. It is done with :func:`torch.nn.functional.scaled_dot_product_attention`,
which takes fused kernels on CPU and GPU and never materialises a mask that is all
true.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._compile import compiling
from .backend import fast_paths_enabled
from .dropout import apply_drop_, random_drop_mask
from .lean import row_slices

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


#: Probabilities per block of the attention-with-dropout (CPU training): a few MiB, reused.
DROPOUT_ATTENTION_BLOCK_BYTES = 4 << 20


class _DropoutAttention(torch.autograd.Function):
    """Attention with dropout on the probabilities, saving little for backward.

    ``scaled_dot_product_attention`` with ``dropout_p > 0`` has no fused CPU kernel: its
    maths fallback draws a float Bernoulli tensor and keeps the scores, the probabilities,
    the dropped probabilities and the float mask alive for backward. Here the forward keeps
    only contiguous copies of q, k, v (keys and values zero-padded to ``padded_keys`` in the
    same pass; ``attn_mask`` must give the added keys ``-inf``) and a ``bool`` drop-mask (drawn with
    :func:`~xearthformer.nn.dropout.random_drop_mask`); the backward, written out,
    recomputes the probabilities from them (as flash attention does).
    Same maths as ``softmax(q k^T * scale + mask) * keep / (1 - p) @ v``.

    Both run over blocks of the leading (cuboid) axis of about
    :data:`DROPOUT_ATTENTION_BLOCK_BYTES` of probabilities, when the mask is the same for
    every block: the scores, probabilities and their gradients are then small tensors that
    the allocator reuses, and the outputs and gradients are written into their places.
    """

    @staticmethod
    def forward(ctx, q, k, v, attn_mask, scale: float, p: float, padded_keys: int):  # noqa: D102
        c = 1.0 / (1.0 - p)
        # contiguous copies, the keys and values zero-padded to ``padded_keys`` in the same pass
        # (``attn_mask`` already covers them with -inf): one copy each instead of F.pad's fill
        # and copy plus ``contiguous``, and no pad/slice pair in the autograd graph
        ctx.keys = k.shape[-2]
        q = q.contiguous()
        k = _padded_copy(k, padded_keys) if padded_keys != ctx.keys else k.contiguous()
        v = _padded_copy(v, padded_keys) if padded_keys != ctx.keys else v.contiguous()
        drop = random_drop_mask(torch.Size((*q.shape[:-1], k.shape[-2])), p, device=q.device)
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        for rows in _attention_blocks(q, k, attn_mask):
            probs = _probabilities(q[rows], k[rows], attn_mask, scale)
            torch.matmul(apply_drop_(probs, drop[rows]), v[rows], out=out[rows])
        out.mul_(c)
        ctx.save_for_backward(q, k, v, attn_mask, drop)
        ctx.scale, ctx.p = scale, p
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        q, k, v, attn_mask, drop = ctx.saved_tensors
        c = 1.0 / (1.0 - ctx.p)
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        want_mask = attn_mask is not None and ctx.needs_input_grad[3]
        grad_mask = torch.zeros_like(attn_mask) if want_mask else None
        for rows in _attention_blocks(q, k, attn_mask):
            q_b, k_b, v_b, g_b, drop_b = q[rows], k[rows], v[rows], grad_out[rows], drop[rows]
            probs = _probabilities(q_b, k_b, attn_mask, ctx.scale)  # recomputed, as flash attention does
            grad_probs = apply_drop_(torch.matmul(g_b, v_b.transpose(-2, -1)), drop_b).mul_(c)
            # softmax backward, fused: dS = P * (dP - sum(dP * P))
            grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
            del grad_probs
            # the probabilities are not needed any more: drop them in place (no second copy)
            torch.matmul(apply_drop_(probs, drop_b).transpose(-2, -1), g_b, out=grad_v[rows])
            del probs
            if want_mask:
                grad_mask += _sum_to_shape(grad_scores, attn_mask.shape)
            torch.matmul(grad_scores, k_b, out=grad_q[rows])
            torch.matmul(grad_scores.transpose(-2, -1), q_b, out=grad_k[rows])
        grad_v.mul_(c)
        grad_q.mul_(ctx.scale)
        grad_k.mul_(ctx.scale)
        keys = ctx.keys  # the padded keys' gradients are dropped (views, no copy)
        return grad_q, grad_k[..., :keys, :], grad_v[..., :keys, :], grad_mask, None, None, None


def _attention_blocks(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None) -> list[slice]:
    """Slices of the leading axis for :class:`_DropoutAttention` (one slice for all if the
    mask varies along that axis or the shapes broadcast)."""
    n = q.shape[0]
    same_lead = k.shape[:-2] == q.shape[:-2]
    mask_shared = attn_mask is None or attn_mask.dim() < q.dim() or attn_mask.shape[0] == 1
    if not (same_lead and mask_shared) or n <= 1:
        return [slice(0, n)]
    row_bytes = math.prod(q.shape[1:-1]) * k.shape[-2] * q.element_size()
    return row_slices(n, DROPOUT_ATTENTION_BLOCK_BYTES // max(1, row_bytes))


def _probabilities(q, k, attn_mask, scale: float) -> torch.Tensor:
    """``softmax(q k^T * scale + attn_mask)`` over the keys (one fused softmax pass)."""
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)
    if attn_mask is not None:
        scores.add_(attn_mask)
    return torch.softmax(scores, dim=-1)


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
    if dropout_p > 0.0 and q.device.type == "cpu" and fast_paths_enabled():
        keys = k.shape[-2]
        padded = keys + (-keys % 8)  # BLAS is slow on other key counts (see pad_keys)
        if padded != keys:
            attn_mask = pad_mask_keys(attn_mask, keys, padded, dtype=q.dtype, device=q.device)
        return _DropoutAttention.apply(q, k, v, attn_mask, scale, dropout_p, padded)
    if _small_cpu_case(q, k, v):
        return small_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)


#: Longest key sequence that :func:`small_attention` handles (longer ones go to SDPA's kernel).
SMALL_KEYS = 32
# score block per matmul: a few cache-sized blocks per call. Smaller blocks ran a little faster
# on a quiet machine, but each block costs a handful of small parallel ops, and on a loaded
# machine every parallel op can wait a scheduler time slice for its second thread.
_CHUNK_BYTES = 8 << 20


def small_attention_applies(x: torch.Tensor, keys: int) -> bool:
    """Whether attention with ``keys`` keys on tensors like ``x`` takes :func:`small_attention`.

    CPU inference (no autograd through ``x``, not under ``torch.compile``, backend
    ``"auto"``) in float32/float64 with at most :data:`SMALL_KEYS` keys: where it beats SDPA.
    """
    return (fast_paths_enabled() and x.device.type == "cpu" and keys <= SMALL_KEYS
            and x.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and x.requires_grad) and not compiling())


def _small_cpu_case(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Inference on CPU with short cuboids: where :func:`small_attention` beats SDPA."""
    return all(small_attention_applies(t, k.shape[-2]) for t in (q, k, v))


def pad_mask_keys(attn_mask: torch.Tensor | None, keys: int, padded: int, *, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor:
    """Extend an additive mask over ``keys`` keys to ``padded`` keys that get weight zero (``-inf``)."""
    if attn_mask is None:
        attn_mask = torch.zeros(keys, dtype=dtype, device=device)
    return F.pad(attn_mask, (0, padded - keys), value=float("-inf"))


def pad_keys(k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None, *, multiple: int):
    """Pad the key axis to a multiple of ``multiple`` with keys that get weight exactly zero.

    BLAS takes a slow path for products whose size is not a multiple of 8 (12 and 14 keys
    ran about 3x slower than 16 on this project's CPUs). The added keys and values are zero
    and their additive mask is ``-inf``, so the softmax, the output and the gradients (which
    autograd slices back through the padding) are unchanged.
    """
    keys = k.shape[-2]
    extra = -keys % multiple
    if not extra:
        return k, v, attn_mask
    if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
        k = F.pad(k, (0, 0, 0, extra))
        v = F.pad(v, (0, 0, 0, extra))
    else:  # one copy into a buffer whose padding alone is zeroed (F.pad fills it all first)
        k, v = _padded_copy(k, keys + extra), _padded_copy(v, keys + extra)
    return k, v, pad_mask_keys(attn_mask, keys, keys + extra, dtype=k.dtype, device=k.device)


def _padded_copy(t: torch.Tensor, length: int) -> torch.Tensor:
    """``t`` "... s d" copied into a contiguous "... length d" buffer, zeros after ``s``."""
    out = t.new_empty(*t.shape[:-2], length, t.shape[-1])
    out[..., : t.shape[-2], :].copy_(t)
    out[..., t.shape[-2]:, :].zero_()
    return out


def small_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, attn_mask: torch.Tensor | None,
                    scale: float) -> torch.Tensor:
    """``softmax(q k^T * scale + attn_mask) v`` for many short sequences, for CPU inference.

    Cuboid attention runs tens of thousands of tiny problems (12 to 24 keys). SDPA's fused
    CPU kernel pays a fixed cost per problem, and BLAS takes a slow path when the number of
    keys is not a multiple of 8 (12 and 14 keys ran about 3x slower than 16 here). This
    pads the keys to a multiple of 8 (the added keys get a score of ``-inf``: weight exactly
    zero), and runs plain batched matmuls over a few large blocks of problems.
    Same result as SDPA up to float rounding.

    Parameters
    ----------
    q, k, v
        "... heads v d", "... heads s d", "... heads s e".
    attn_mask
        None or a float additive mask broadcastable to "... heads v s".

    Examples
    --------
    >>> q, k, v = torch.randn(5, 2, 12, 8), torch.randn(5, 2, 12, 8), torch.randn(5, 2, 12, 8)
    >>> bias = torch.randn(1, 2, 12, 12)
    >>> expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    >>> torch.allclose(small_attention(q, k, v, attn_mask=bias, scale=8 ** -0.5), expected, atol=1e-6)
    True
    """
    k, v, attn_mask = pad_keys(k, v, attn_mask, multiple=8)
    padded = k.shape[-2]
    lead = q.shape[0]
    inner = q.shape[1:-2]  # dims between the chunked one and the sequence ("heads", or "n heads")
    lq, d, e = q.shape[-2], q.shape[-1], v.shape[-1]
    # 3-D views for bmm: no copies (the transposed keys go in as a strided operand)
    if scale == 1.0 and q.is_contiguous():  # scaled by the caller (see cut_qkv_padded)
        q3 = q.view(-1, lq, d)
    else:
        q3 = torch.mul(q, scale, out=q.new_empty(q.shape)).view(-1, lq, d)  # scaled once, contiguous
    k3 = k.contiguous().view(-1, padded, d)
    v3 = v.contiguous().view(-1, padded, e)
    per_lead = max(1, q3.shape[0] // lead)
    step = max(1, _CHUNK_BYTES // (per_lead * lq * padded * q.element_size()))
    mask_splits = attn_mask is not None and attn_mask.dim() == q.dim() and attn_mask.shape[0] == lead > 1
    out = q.new_empty(q3.shape[0], lq, e)
    for start in range(0, lead, step):
        stop = min(lead, start + step)
        rows = slice(start * per_lead, stop * per_lead)
        scores = torch.bmm(q3[rows], k3[rows].transpose(1, 2))
        if attn_mask is not None:
            shaped = scores.view(stop - start, *inner, lq, padded)
            shaped.add_(attn_mask[start:stop] if mask_splits else attn_mask)
        torch.bmm(torch.softmax(scores, dim=-1), v3[rows], out=out[rows])
    return out.view(*q.shape[:-1], e)


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
