"""CPU strategies of cuboid self-attention: slabs, folded zero padding, short cuboids.

Each is exact (the same sums, up to float rounding) and is tested against the ``"sdpa"``
path in ``tests/nn/test_fast_paths.py``; each is taken under the ``"auto"`` backend only,
when its condition holds. The measured gains are from ``benchmarks/bench_fast_paths.py``
(fast path on vs off, same run) and ``benchmarks/bench_kernels.py``, on the project's
2-core CPUs (figures in ``benchmarks/RESULTS.md``).

:func:`slabs` / :func:`by_slabs`
    *When:* CPU inference (no autograd, eval mode), no global vectors, more than
    2 x :data:`ATTENTION_SLAB_TOKENS` tokens, and an axis that is local, unshifted and
    unpadded. *What:* the layer runs over slabs of whole cuboids along that axis (about
    8,192 tokens each): the projections, cut copies and attention temporaries of a slab
    are a few MiB that the allocator reuses, instead of fresh tensors of the grid's size.
    *Gain:* fewer minor page faults; on virtual machines where they are dear, filling fresh
    memory cost as much as the matrix products. Switched off, ENSO inference took 1.10x
    (batch 8) and 1.15x (96x192 grid) the time (``bench_fast_paths.py``, ``attention_slabs``).
:func:`zero_tail_applies` / :func:`zero_tail`
    *When:* ``'zeros'`` padding of the time axis only, local in time, no shift, no qkv
    bias, no global vectors (the official ENSO decoder: 14 frames padded to 24). *What:*
    padded tokens have q = k = v = 0, so the padded keys of the last time cuboid fold into
    one key whose score is the log-sum-exp of their biases: the same softmax without the
    padded grid (10 of 24 frames of the decoder's time-axis attention saved), in training too.
:func:`attend_small`
    *When:* CPU inference in float32/float64 with at most
    :data:`~xearthformer.nn.attention.SMALL_KEYS` keys (axial layers, time cuboids), not
    under ``torch.compile``. *What:* q scaled and k, v zero-padded to a multiple of 8 keys
    in the cut (one pass each), then :func:`~xearthformer.nn.attention.small_attention`
    (batched matmuls over cache-sized blocks). *Gain:* BLAS ran about 3x slower for 12 or
    14 keys than for 16, and SDPA's fused CPU kernel pays a fixed cost per tiny problem.
    Switched off, ENSO inference at batch 8 took 1.10-1.12x the time (``one_pass_cut``); no
    gain at 96x192 (0.97-1.00x).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange

from ..attention import additive_mask, cuboid_attention, gather_bias, pad_mask_keys, small_attention_applies
from ..backend import fast_paths_enabled
from ..cuboid import adjust_cuboid_and_shift, pad_amounts, reorder_pattern
from ..fast_linear import linear_dropout
from ..lean import row_slices
from ._projection import normed_projection
from .cuts import cut_qkv_padded, cut_stacked

__all__ = ["ATTENTION_SLAB_TOKENS", "attend_small", "by_slabs", "slabs", "zero_tail", "zero_tail_applies"]

#: Tokens per slab of the CPU-inference self-attention (a 6 MiB qkv block at 64 channels).
ATTENTION_SLAB_TOKENS = 8192


# -- slabs of whole cuboids -------------------------------------------------------------------
def slabs(layer, x: torch.Tensor, global_vectors: torch.Tensor | None) -> tuple[int, int] | None:
    """(axis of x, slab length) to run CPU inference by slabs, or None to run it whole.

    A slab is a run of whole cuboids along one axis that is local (``'l'``), not shifted
    and not padded: its cuboids, their bias and their mask are those of the whole grid.
    Slabs hold about :data:`ATTENTION_SLAB_TOKENS` tokens.
    """
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or layer.qkv.weight.requires_grad)
    tokens = x.numel() // max(1, x.shape[-1])
    if (not fast_paths_enabled() or x.device.type != "cpu" or layer.training or needs_grad
            or layer.use_global_vector or global_vectors is not None or x.dim() != 5
            or tokens <= 2 * ATTENTION_SLAB_TOKENS):
        return None
    thw = tuple(x.shape[1:4])
    cuboid, shift = adjust_cuboid_and_shift(thw, layer.cuboid_size, layer.shift_size, layer.strategy)
    pads = pad_amounts(thw, cuboid)
    best = None
    for i in range(3):
        if layer.strategy[i] != "l" or shift[i] or pads[i] or cuboid[i] >= thw[i]:
            continue
        slab_tokens = tokens // (thw[i] // cuboid[i])  # tokens of one cuboid-thick slab
        step = cuboid[i] * max(1, ATTENTION_SLAB_TOKENS // slab_tokens)
        if step < thw[i] and (best is None or slab_tokens < best[2]):
            best = (i + 1, step, slab_tokens)
    return None if best is None else best[:2]


def by_slabs(run, layer, x: torch.Tensor, axis: int, step: int) -> torch.Tensor:
    """``run(layer, slab)`` over slabs of ``step`` cells along ``axis``, into one output."""
    out = x.new_empty(*x.shape[:-1], layer.dim)
    index = [slice(None)] * 5
    for slab in row_slices(x.shape[axis], step):
        index[axis] = slab
        out[tuple(index)] = run(layer, x[tuple(index)])
    return out


# -- short cuboids: the one-pass cut and small attention --------------------------------------
def attend_small(layer, qkv: torch.Tensor, cut: str, cuboid, attn_mask: torch.Tensor | None, *, batch: int,
                 zero_keys: int = 0) -> torch.Tensor:
    """Inference with short cuboids: q, k, v cut, scaled and key-padded in one pass each.

    ``zero_keys`` keys with ``k = v = 0`` are appended to every cuboid; ``attn_mask``
    covers the cuboid's keys and those. The keys added beyond them (up to a multiple of 8,
    for :func:`~xearthformer.nn.attention.small_attention`) get a mask of ``-inf``.
    """
    bt, bh, bw = cuboid
    q, k, v = cut_qkv_padded(qkv, cut, q_scale=layer.scale, zero_keys=zero_keys, heads=layer.num_heads,
                             bt=bt, bh=bh, bw=bw)
    keys = bt * bh * bw + zero_keys
    attn_mask = pad_mask_keys(attn_mask, keys, k.shape[-2], dtype=q.dtype, device=q.device)
    return cuboid_attention(q, k, v, batch=batch, attn_mask=attn_mask, scale=1.0)


# -- zero padding in time only: attend without building the padded grid -----------------------
def zero_tail_applies(layer, x: torch.Tensor, global_vectors: torch.Tensor | None = None) -> bool:
    """Zero-padded frames at the end of time, nothing else padded or shifted, no globals.

    Then a padded token's query, key and value are exactly zero (bias-free projection of
    zeros), so only the last cuboid along time sees padding, and there a padded key adds
    ``exp(bias)`` to the softmax denominator and nothing to the numerator.
    """
    if not (fast_paths_enabled() and not layer.use_global_vector and layer.padding_type == "zeros"
            and layer.qkv.bias is None and layer.strategy[0] == "l"):
        return False
    thw = tuple(x.shape[1:4])
    cuboid, shift = adjust_cuboid_and_shift(thw, layer.cuboid_size, layer.shift_size, layer.strategy)
    pads = pad_amounts(thw, cuboid)
    return pads[0] > 0 and pads[1] == 0 and pads[2] == 0 and not any(shift)


def zero_tail(layer, x: torch.Tensor, global_vectors: torch.Tensor | None = None) -> torch.Tensor:
    """The zero-padded computation, exactly, on the real frames only.

    Full cuboids along time attend as usual. In the last, partial cuboid (``r`` real
    frames) the padded keys are folded into one extra key with ``k = v = 0`` whose
    additive score is ``logsumexp`` of their biases: the same softmax, without the
    padded queries (their outputs are discarded) and without the padded copy.
    """
    proj = normed_projection(layer, x)
    b, t, h, w, _ = proj.shape
    cuboid, _ = adjust_cuboid_and_shift((t, h, w), layer.cuboid_size, layer.shift_size, layer.strategy)
    bt, bh, bw = cuboid
    t_full = (t // bt) * bt
    real = (t - t_full) * bh * bw  # real tokens of a tail cuboid: the first ones (t slowest)
    volume = bt * bh * bw
    cut = reorder_pattern(layer.strategy, True)
    glue = reorder_pattern(layer.strategy, True, reverse=True)
    dropout_p = layer.attn_drop_p if layer.training else 0.0
    rel_bias = (gather_bias(layer.relative_position_bias_table, layer.relative_position_index, volume, volume)
                if layer.use_relative_pos else None)
    small = small_attention_applies(proj, volume + 1)
    # split and cat, not slices and slice assignment: under autograd their backwards are
    # views and one copy, where a slice's backward zero-fills a tensor of proj's size
    qkv = proj if proj.shape[-1] == 3 * layer.dim else proj[..., :3 * layer.dim]
    qkv_full, qkv_tail = qkv.split([t_full, t - t_full], dim=1)
    pieces = []
    if t_full:
        attn_mask = additive_mask(rel_bias, None, proj.dtype, proj.device)
        if small:
            part = attend_small(layer, qkv_full, cut, cuboid, attn_mask, batch=b)
        else:
            q, k, v = cut_stacked(qkv_full, cut, k=3, heads=layer.num_heads, bt=bt, bh=bh, bw=bw)
            part = cuboid_attention(q, k, v, batch=b, attn_mask=attn_mask, scale=layer.scale, dropout_p=dropout_p)
        pieces.append(rearrange(part[None], glue, k=1, b=b, bt=bt, bh=bh, bw=bw, nt=t_full // bt,
                                nh=h // bh, nw=w // bw))
    r = t - t_full
    if rel_bias is None:
        heads_bias = proj.new_zeros(layer.num_heads, real, real)
        folded = proj.new_full((layer.num_heads, real, 1), math.log(volume - real))
    else:
        heads_bias = rel_bias[:, :real, :real].to(proj.dtype)
        folded = torch.logsumexp(rel_bias[:, :real, real:].to(proj.dtype), dim=-1, keepdim=True)
    tail_mask = torch.cat((heads_bias, folded), dim=-1)[None]
    if small:  # the folded padded key (k = v = 0) is one of the zero keys of the cut
        part = attend_small(layer, qkv_tail, cut, (r, bh, bw), tail_mask, batch=b, zero_keys=1)
    else:
        q, k, v = cut_stacked(qkv_tail, cut, k=3, heads=layer.num_heads, bt=r, bh=bh, bw=bw)
        k = torch.nn.functional.pad(k, (0, 0, 0, 1))  # the folded padded key: k = v = 0
        v = torch.nn.functional.pad(v, (0, 0, 0, 1))
        part = cuboid_attention(q, k, v, batch=b, attn_mask=tail_mask, scale=layer.scale, dropout_p=dropout_p)
    pieces.append(rearrange(part[None], glue, k=1, b=b, bt=r, bh=bh, bw=bw, nt=1, nh=h // bh, nw=w // bw))
    out = torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
    if layer.use_final_proj:
        out = linear_dropout(out, layer.proj, layer.proj_drop)
    return out
