"""Cuboid cross-attention (the Earthformer decoder's), written as the paper describes it.

The reference path of :class:`~xearthformer.nn.CuboidCrossAttentionLayer` (official
``CuboidCrossAttentionLayer``); see :mod:`.self_attention` for the shared steps. Queries
``x`` "b t_x h w c" and memory "b t_mem h w c" are cut into the *same number* of cuboids:
(H, W) into ``cuboid_hw`` windows and time into ``n_temporal`` groups (the memory padded in
time at the start, the queries at the end). Query cuboid ``i`` attends to memory cuboid
``i`` (plus, optionally, the memory's global vectors in the same softmax), with a relative
position bias whose time offset counts both frame indices from 0.

Only the queries are normalised (the memory comes normalised from the encoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from ..cuboid import cross_attention_mask, cuboid_reorder, cuboid_reorder_reverse, pad_thw, unpad_thw
from .self_attention import masked_softmax, relative_position_bias

__all__ = ["cuboid_cross_attention"]


def cuboid_cross_attention(layer, x: torch.Tensor, mem: torch.Tensor,
                           mem_global_vectors: torch.Tensor | None = None) -> torch.Tensor:
    """The update of ``layer`` for queries ``x`` and memory ``mem`` (both "b t h w c").

    Examples
    --------
    >>> from xearthformer.nn import CuboidCrossAttentionLayer
    >>> layer = CuboidCrossAttentionLayer(8, 2, cuboid_hw=(2, 2), strategy=("l", "l", "l"),
    ...                                   max_temporal_relative=10, use_global_vector=False).eval()
    >>> cuboid_cross_attention(layer, torch.randn(1, 4, 4, 4, 8), torch.randn(1, 3, 4, 4, 8)).shape
    torch.Size([1, 4, 4, 4, 8])
    """
    if layer.cross_last_n_frames is not None:
        mem = mem[:, -min(layer.cross_last_n_frames, mem.shape[1]):]
    heads, scale, strategy, n_t = layer.num_heads, layer.scale, layer.strategy, layer.n_temporal
    (bh, bw), shift = layer.cuboid_hw, layer.shift_hw
    b, t_x, h, w, _ = x.shape
    t_mem = mem.shape[1]
    pad_h, pad_w = -h % bh, -w % bw
    x_pads, mem_pads = (-t_x % n_t, pad_h, pad_w), (-t_mem % n_t, pad_h, pad_w)
    tx_p, tm_p, hp, wp = t_x + x_pads[0], t_mem + mem_pads[0], h + pad_h, w + pad_w

    # normalise the queries; pad both; shift both; cut both into n_temporal x windows cuboids
    x = pad_thw(layer.norm(x), x_pads, layer.padding_type)
    mem = pad_thw(mem, mem_pads, layer.padding_type, t_pad_left=True)
    back = (-shift[0], -shift[1])
    x, mem = torch.roll(x, shifts=back, dims=(2, 3)), torch.roll(mem, shifts=back, dims=(2, 3))
    x_cuboid, mem_cuboid = (tx_p // n_t, bh, bw), (tm_p // n_t, bh, bw)
    queries, memory = cuboid_reorder(x, x_cuboid, strategy), cuboid_reorder(mem, mem_cuboid, strategy)

    split = lambda t: rearrange(t, "b n v (heads d) -> b n heads v d", heads=heads)  # noqa: E731
    q = split(layer.q_proj(queries))
    k, v = (split(p) for p in layer.kv_proj(memory).chunk(2, dim=-1))
    scores = torch.einsum("bnhvd,bnhsd->bnhvs", q * scale, k)
    if layer.use_relative_pos:
        scores = scores + relative_position_bias(layer.relative_position_bias_table, layer.relative_position_index,
                                                 scores.shape[-2], scores.shape[-1])
    mask = cross_attention_mask(t_x, t_mem, h, w, n_t, layer.cuboid_hw, shift, strategy, layer.padding_type)
    mask = None if mask is None else mask.to(x.device)[:, None]  # "n 1 v s"
    values = v
    if layer.use_global_vector:  # the memory's global keys join every cuboid's keys
        split_g = lambda t: rearrange(t, "b g (heads d) -> b heads g d", heads=heads)  # noqa: E731
        if layer.separate_global_qkv:
            l2g_q = split(layer.l2g_q_net(queries))
            g_kv = layer.l2g_global_kv_net(mem_global_vectors)
        else:
            l2g_q, g_kv = q, layer.kv_proj(mem_global_vectors)
        g_k, g_v = (split_g(p) for p in g_kv.chunk(2, dim=-1))
        scores = torch.cat((scores, torch.einsum("bnhvd,bhgd->bnhvg", l2g_q * scale, g_k)), dim=-1)
        values = torch.cat((v, g_v[:, None].expand(b, q.shape[1], *g_v.shape[1:])), dim=-2)
        if mask is not None:
            mask = F.pad(mask, (0, g_k.shape[-2]), value=True)

    weights = F.dropout(masked_softmax(scores, mask), layer.attn_drop_p if layer.training else 0.0, layer.training)
    out = rearrange(weights @ values, "b n heads v d -> b n v (heads d)")
    out = cuboid_reorder_reverse(out, x_cuboid, strategy, (tx_p, hp, wp))
    out = unpad_thw(torch.roll(out, shifts=shift, dims=(2, 3)), x_pads, layer.padding_type)
    return F.dropout(layer.proj(out), getattr(layer.proj_drop, "p", 0.0), layer.training)
