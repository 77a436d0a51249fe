"""Cuboid self-attention with global vectors, written as the paper describes it.

This is the reference path (Gao et al., *Earthformer*, NeurIPS 2022, section 3; the
official ``CuboidSelfAttentionLayer``): plain torch + einops, every step in the order of
the official code, nothing fused. The faster ways of computing the same thing live in
:mod:`xearthformer.nn.execution` and are tested against this one.

For an input ``x`` "b t h w c" the layer

1. normalises ``x`` (pre-norm) and pads the grid to whole cuboids (``'zeros'`` and
   ``'ignore'`` pad at the end of each axis; ``'nearest'`` resizes the grid instead);
2. rolls the grid back by the shift (Swin-style shifted cuboids);
3. **decomposes** it into cuboids: "b (nt bt) (nh bh) (nw bw) c -> b (nt nh nw) (bt bh bw) c"
   on local axes; a dilated axis takes every ``n``-th cell, "(bt nt)" instead of "(nt bt)";
4. projects every token to a query, key and value per head;
5. scores each query against the keys of its own cuboid, ``q k^T / sqrt(d)``, plus a
   learned relative-position bias, and masks the pairs that a shift puts in different
   regions (and padded tokens with ``'ignore'``);
6. with **global vectors**, each token also scores against the ``G`` global keys, in the
   same softmax; the global vectors in turn attend to every token (and to each other);
7. takes the softmax-weighted sum of the values, merges the heads, and undoes 3, 2 and 1;
8. projects the result (``proj``) and returns it: the caller adds the residual.

Parameters are read from the layer (:class:`~xearthformer.nn.CuboidSelfAttentionLayer`),
whose names match the official checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from ..cuboid import (adjust_cuboid_and_shift, cuboid_reorder, cuboid_reorder_reverse, pad_amounts, pad_thw,
                      self_attention_mask, unpad_thw)

__all__ = ["cuboid_self_attention", "masked_softmax", "relative_position_bias"]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis where ``mask`` is True (official ``masked_softmax``).

    Masked scores are filled with ``-1e18`` (``-1e4`` in float16) and their weights set to
    zero afterwards, so a row with every key masked gives zeros.

    >>> masked_softmax(torch.zeros(1, 3), torch.tensor([[True, True, False]]))
    tensor([[0.5000, 0.5000, 0.0000]])
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    fill = -1e4 if scores.dtype == torch.float16 else -1e18
    return torch.softmax(scores.masked_fill(~mask, fill), dim=-1) * mask


def relative_position_bias(table: torch.Tensor, index: torch.Tensor, queries: int, keys: int) -> torch.Tensor:
    """The learned bias "heads queries keys": ``table[index]`` over the first query/key positions.

    A cuboid shrunk to the data uses the top-left corner of the index of the constructed
    cuboid, as the official code does.
    """
    return rearrange(table[index[:queries, :keys]], "v s heads -> heads v s")


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    return rearrange(t, "b n v (heads d) -> b n heads v d", heads=heads)


def cuboid_self_attention(layer, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
    """The update of ``layer`` for ``x`` "b t h w c" (and ``global_vectors`` "b g (r c)").

    Returns the update "b t h w c", or ``(update, global update)`` with global vectors.

    Examples
    --------
    >>> from xearthformer.nn import CuboidSelfAttentionLayer
    >>> layer = CuboidSelfAttentionLayer(8, 2, cuboid_size=(2, 2, 2), shift_size=(1, 1, 1),
    ...                                  use_global_vector=True).eval()
    >>> out, g = cuboid_self_attention(layer, torch.randn(1, 3, 4, 4, 8), torch.randn(1, 2, 8))
    >>> out.shape, g.shape
    (torch.Size([1, 3, 4, 4, 8]), torch.Size([1, 2, 8]))
    """
    b, t, h, w, _ = x.shape
    heads, scale, strategy = layer.num_heads, layer.scale, layer.strategy
    attn_drop = layer.attn_drop_p if layer.training else 0.0
    cuboid, shift = adjust_cuboid_and_shift((t, h, w), layer.cuboid_size, layer.shift_size, strategy)
    pads = pad_amounts((t, h, w), cuboid)
    padded = (t + pads[0], h + pads[1], w + pads[2])
    volume = math.prod(cuboid)

    # 1-3: normalise, pad, shift, cut into cuboids: "b n v c", n cuboids of v tokens
    x = pad_thw(layer.norm(x), pads, layer.padding_type)
    x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    tokens = cuboid_reorder(x, cuboid, strategy)

    # 4-5: queries, keys, values per head; scores inside each cuboid, bias, mask
    q, k, v = (_heads(p, heads) for p in layer.qkv(tokens).chunk(3, dim=-1))  # "b n heads v d"
    scores = torch.einsum("bnhvd,bnhsd->bnhvs", q * scale, k)
    if layer.use_relative_pos:
        scores = scores + relative_position_bias(layer.relative_position_bias_table, layer.relative_position_index,
                                                 volume, volume)
    mask = self_attention_mask((t, h, w), cuboid, shift, strategy, layer.padding_type)  # "n v s" or None
    mask = None if mask is None else mask.to(x.device)[:, None]  # "n 1 v s": same for every sample, head
    values = v

    # 6: local -> global: the G global keys join every cuboid's keys, in the same softmax
    if layer.use_global_vector:
        g = layer.global_vec_norm(global_vectors)
        split_g = lambda t: rearrange(t, "b g (heads d) -> b heads g d", heads=heads)  # noqa: E731
        if layer.separate_global_qkv:
            l2g_q = _heads(layer.l2g_q_net(tokens), heads)
            g_k, g_v = (split_g(p) for p in layer.l2g_global_kv_net(g).chunk(2, dim=-1))
        else:
            g_q, g_k, g_v = (split_g(p) for p in layer.global_qkv(g).chunk(3, dim=-1))
            l2g_q = q
        global_scores = torch.einsum("bnhvd,bhgd->bnhvg", l2g_q * scale, g_k)
        scores = torch.cat((scores, global_scores), dim=-1)
        n = tokens.shape[1]
        values = torch.cat((v, g_v[:, None].expand(b, n, *g_v.shape[1:])), dim=-2)
        if mask is not None:  # global keys are never masked
            mask = F.pad(mask, (0, g.shape[1]), value=True)

    # 7-8: weights, weighted values, heads merged, cuboids glued back, shift and padding undone
    weights = F.dropout(masked_softmax(scores, mask), attn_drop, layer.training)
    out = rearrange(weights @ values, "b n heads v d -> b n v (heads d)")
    out = cuboid_reorder_reverse(out, cuboid, strategy, padded)
    out = unpad_thw(torch.roll(out, shifts=shift, dims=(1, 2, 3)), pads, layer.padding_type)
    proj_drop = getattr(layer.proj_drop, "p", 0.0) if layer.use_final_proj else 0.0
    if layer.use_final_proj:
        out = F.dropout(layer.proj(out), proj_drop, layer.training)
    if not layer.use_global_vector:
        return out

    # 6 (continued): global -> every token of the padded grid (and, optionally, -> globals)
    flat = rearrange(tokens, "b n v c -> b (n v) c")  # tokens in cuboid order
    split_t = lambda t: rearrange(t, "b s (heads d) -> b heads s d", heads=heads)  # noqa: E731
    if layer.separate_global_qkv:
        g2l_q = split_g(layer.g2l_global_q_net(g))
        g2l_k, g2l_v = split_t(layer.g2l_k_net(flat)), split_t(layer.g2l_v_net(flat))
    else:
        g2l_q = g_q
        g2l_k, g2l_v = (rearrange(t, "b n heads v d -> b heads (n v) d") for t in (k, v))
    scores = torch.einsum("bhgd,bhsd->bhgs", g2l_q * scale, g2l_k)
    values = g2l_v
    key_mask = None
    if layer.padding_type == "ignore" and any(pads):
        # padded tokens are masked. The official code builds this mask in grid order and
        # applies it to the keys in cuboid order, as is: reproduced.
        valid = torch.zeros(padded, dtype=torch.bool, device=x.device)
        valid[:t, :h, :w] = True
        key_mask = torch.roll(valid, shifts=tuple(-s for s in shift), dims=(0, 1, 2)).flatten()
    if layer.use_global_self_attn:
        if layer.separate_global_qkv:
            g2g_q, g2g_k, g2g_v = (split_g(p) for p in layer.g2g_global_qkv_net(g).chunk(3, dim=-1))
        else:
            g2g_q, g2g_k, g2g_v = g_q, g_k, g_v
        scores = torch.cat((scores, torch.einsum("bhgd,bhsd->bhgs", g2g_q * scale, g2g_k)), dim=-1)
        values = torch.cat((values, g2g_v), dim=-2)
        if key_mask is not None:
            key_mask = F.pad(key_mask, (0, g.shape[1]), value=True)
    weights = F.dropout(masked_softmax(scores, key_mask), attn_drop, layer.training)
    new_global = rearrange(weights @ values, "b heads g e -> b g (heads e)")
    if layer.use_final_proj:
        new_global = F.dropout(layer.global_proj(new_global), proj_drop, layer.training)
    return out, new_global
