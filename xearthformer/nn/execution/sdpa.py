"""Cuboid self- and cross-attention on ``scaled_dot_product_attention`` (the ``"sdpa"`` path).

The maths of :mod:`xearthformer.nn.reference`, rearranged for fused kernels (GPUs and CPUs):

* the projections are per token, so, without bias, they run *before* padding, shifting and
  cutting into cuboids (on fewer tokens, and without a copy of the input);
* q, k and v are cut into cuboids by one einops ``rearrange`` straight into the layout
  that ``scaled_dot_product_attention`` wants ("(b n) heads v d");
* all-true masks are never built; the bias and mask are one additive tensor;
* with separate global projections the local->global scores use a different query than the
  local->local ones. Both share one softmax, so the two queries are concatenated along the
  head dimension and each key set is padded with zeros on the other half: one SDPA call.

Under the ``"auto"`` backend the same code takes the CPU kernels where they apply (each
checks :func:`~xearthformer.nn.backend.fast_paths_enabled` and its own condition): oneDNN
linears (:mod:`~xearthformer.nn.fast_linear`), the LayerNorm fused into the projection in
training (:mod:`~xearthformer.nn.lean`), short-cuboid attention with a one-pass cut
(:func:`.cpu.attend_small`) and attention with dropout (:mod:`~xearthformer.nn.attention`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from ..attention import additive_mask, attention, cuboid_attention, gather_bias, pad_mask_keys, small_attention_applies
from ..cuboid import (adjust_cuboid_and_shift, cross_attention_mask, pad_amounts, pad_thw, reorder_pattern,
                      self_attention_mask, unpad_thw)
from ..fast_linear import linear as fast_linear
from ..fast_linear import linear_dropout
from . import cpu
from ._projection import local_projection, normed_projection
from .cuts import cut_kv_padded, cut_scaled, cut_stacked

__all__ = ["cross_attention", "self_attention"]


def _zero_pad_last(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    return F.pad(t, (before, after))


def self_attention(layer, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
    """The update of a :class:`~xearthformer.nn.CuboidSelfAttentionLayer` (and of its global vectors)."""
    weight, bias, sizes = local_projection(layer)
    b, t, h, w, _ = x.shape
    if layer.use_global_vector:
        global_vectors = layer.global_vec_norm(global_vectors)
    cuboid, shift = adjust_cuboid_and_shift((t, h, w), layer.cuboid_size, layer.shift_size, layer.strategy)
    pads = pad_amounts((t, h, w), cuboid)
    padded = (t + pads[0], h + pads[1], w + pads[2])
    shifted = any(s > 0 for s in shift)

    if bias is None:  # per-token, bias-free: project first, then pad (zeros stay zeros)
        proj = pad_thw(normed_projection(layer, x), pads, layer.padding_type)
    else:
        proj = fast_linear(pad_thw(layer.norm(x), pads, layer.padding_type), weight, bias)
    if shifted:
        proj = torch.roll(proj, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    # one part (no separate global projections): no split, whose backward would copy
    parts = (proj,) if len(sizes) == 1 else proj.split(sizes, dim=-1)
    bt, bh, bw = cuboid
    cut = reorder_pattern(layer.strategy, True)
    volume = bt * bh * bw
    rel_bias = (gather_bias(layer.relative_position_bias_table, layer.relative_position_index, volume, volume)
                if layer.use_relative_pos else None)
    mask = self_attention_mask((t, h, w), cuboid, shift, layer.strategy, layer.padding_type)
    dropout_p = layer.attn_drop_p if layer.training else 0.0

    new_global = None
    if not layer.use_global_vector and small_attention_applies(proj, volume):
        out = cpu.attend_small(layer, parts[0], cut, cuboid, additive_mask(rel_bias, mask, proj.dtype, proj.device),
                               batch=b)
    else:
        q, k, v = cut_stacked(parts[0], cut, k=3, heads=layer.num_heads, bt=bt, bh=bh, bw=bw)
        if layer.use_global_vector:
            out, new_global = _attend_with_globals(
                layer, q, k, v, parts, global_vectors, cut, cuboid, shift, rel_bias, mask, pads, padded, dropout_p, b)
        else:
            attn_mask = additive_mask(rel_bias, mask, q.dtype, q.device)
            out = cuboid_attention(q, k, v, batch=b, attn_mask=attn_mask, scale=layer.scale, dropout_p=dropout_p)

    out = rearrange(out[None], reorder_pattern(layer.strategy, True, reverse=True), k=1, b=b,
                    bt=bt, bh=bh, bw=bw, nt=padded[0] // bt, nh=padded[1] // bh, nw=padded[2] // bw)
    if shifted:
        out = torch.roll(out, shifts=shift, dims=(1, 2, 3))
    out = unpad_thw(out, pads, layer.padding_type)
    if layer.use_final_proj:
        out = linear_dropout(out, layer.proj, layer.proj_drop)
        if new_global is not None:
            new_global = layer.proj_drop(layer.global_proj(new_global))
    if layer.use_global_vector:
        return out, new_global
    return out


def _attend_with_globals(layer, q, k, v, parts, g, cut, cuboid, shift, rel_bias, mask, pads, padded, dropout_p, b):
    heads = layer.num_heads
    d = layer.dim // heads
    bt, bh, bw = cuboid
    n_glob = g.shape[1]
    num_cuboids = q.shape[0] // b
    if layer.separate_global_qkv:
        (l2g_q,) = rearrange(parts[1], cut, k=1, heads=heads, bt=bt, bh=bh, bw=bw)
        g_k, g_v = rearrange(layer.l2g_global_kv_net(g), "b g (k heads d) -> k b heads g d", k=2, heads=heads)
        g2l_q = rearrange(layer.g2l_global_q_net(g), "b g (heads d) -> b heads g d", heads=heads)
        if layer.use_global_self_attn:
            g2g_q, g2g_k, g2g_v = rearrange(layer.g2g_global_qkv_net(g), "b g (k heads d) -> k b heads g d",
                                            k=3, heads=heads)
    else:
        q_g, k_g, v_g = rearrange(layer.global_qkv(g), "b g (k heads d) -> k b heads g d", k=3, heads=heads)
        l2g_q, g_k, g_v = q, k_g, v_g
        g2l_q = q_g
        g2l_k = rearrange(k, "(b n) heads v d -> b heads (n v) d", b=b)
        g2l_v = rearrange(v, "(b n) heads v d -> b heads (n v) d", b=b)
        g2g_q, g2g_k, g2g_v = q_g, k_g, v_g

    # local -> (own cuboid + globals): one softmax over [cuboid keys, global keys]
    expand = lambda t: t.unsqueeze(1).expand(b, num_cuboids, *t.shape[1:]).flatten(0, 1)  # noqa: E731
    keys_g, values_g = expand(g_k), expand(g_v)
    if layer.separate_global_qkv:
        query = torch.cat((q, l2g_q), dim=-1)
        keys = torch.cat((_zero_pad_last(k, 0, d), _zero_pad_last(keys_g, d, 0)), dim=2)
    else:
        query = q
        keys = torch.cat((k, keys_g), dim=2)
    values = torch.cat((v, values_g), dim=2)
    local_bias = None if rel_bias is None else F.pad(rel_bias, (0, n_glob))
    local_mask = None if mask is None else F.pad(mask, (0, n_glob), value=True)
    if local_bias is None and local_mask is None:
        attn_mask = None
    else:
        attn_mask = additive_mask(local_bias, local_mask, q.dtype, q.device)
    out = cuboid_attention(query, keys, values, batch=b, attn_mask=attn_mask, scale=layer.scale, dropout_p=dropout_p)

    # globals -> every token (+ globals). The keys are in cuboid order; the official code
    # builds the 'ignore' padding mask in grid order and applies it to them as is: reproduced.
    to_tokens = "(b n) heads v d -> b heads (n v) d"
    if layer.separate_global_qkv:
        (g2l_k,) = rearrange(parts[2], cut, k=1, heads=heads, bt=bt, bh=bh, bw=bw)
        (g2l_v,) = rearrange(parts[3], cut, k=1, heads=heads, bt=bt, bh=bh, bw=bw)
        g2l_k = rearrange(g2l_k, to_tokens, b=b)
        g2l_v = rearrange(g2l_v, to_tokens, b=b)
    key_mask = None
    if layer.padding_type == "ignore" and any(p > 0 for p in pads):
        valid = torch.zeros(padded, dtype=torch.bool, device=q.device)
        valid[: padded[0] - pads[0], : padded[1] - pads[1], : padded[2] - pads[2]] = True
        if any(s > 0 for s in shift):
            valid = torch.roll(valid, shifts=tuple(-s for s in shift), dims=(0, 1, 2))
        key_mask = valid.flatten()
    if layer.use_global_self_attn:
        if layer.separate_global_qkv:
            dq, dk = g2l_q.shape[-1], g2g_q.shape[-1]
            query_g = torch.cat((g2l_q, g2g_q), dim=-1)
            keys_all = torch.cat((_zero_pad_last(g2l_k, 0, dk), _zero_pad_last(g2g_k, dq, 0)), dim=2)
        else:
            query_g = g2l_q
            keys_all = torch.cat((g2l_k, g2g_k), dim=2)
        values_all = torch.cat((g2l_v, g2g_v), dim=2)
        if key_mask is not None:
            key_mask = F.pad(key_mask, (0, n_glob), value=True)
    else:
        query_g, keys_all, values_all = g2l_q, g2l_k, g2l_v
    g_mask = None
    if key_mask is not None:
        g_mask = additive_mask(None, key_mask[None, None, :], q.dtype, q.device)
    new_global = attention(query_g, keys_all, values_all, attn_mask=g_mask, dropout_p=dropout_p, scale=layer.scale)
    new_global = rearrange(new_global, "b heads g e -> b g (heads e)")
    return out, new_global


def _project(layer, x: torch.Tensor, linear, pads, left: bool) -> torch.Tensor:
    weight = linear if isinstance(linear, torch.Tensor) else linear.weight
    bias = None if isinstance(linear, torch.Tensor) else linear.bias
    if bias is None:
        return pad_thw(fast_linear(x, weight), pads, layer.padding_type, t_pad_left=left)
    return fast_linear(pad_thw(x, pads, layer.padding_type, t_pad_left=left), weight, bias)


def cross_attention(layer, x: torch.Tensor, mem: torch.Tensor, mem_global_vectors: torch.Tensor | None = None):
    """The update of a :class:`~xearthformer.nn.CuboidCrossAttentionLayer` (inputs checked by the layer)."""
    if layer.cross_last_n_frames is not None:
        mem = mem[:, -min(layer.cross_last_n_frames, mem.shape[1]):]
    x = layer.norm(x)
    b, t_x, h, w, c = x.shape
    t_mem = mem.shape[1]
    n_t, (bh, bw), heads = layer.n_temporal, layer.cuboid_hw, layer.num_heads
    pad_t_mem = (n_t - t_mem % n_t) % n_t
    pad_t_x = (n_t - t_x % n_t) % n_t
    pad_h, pad_w = (bh - h % bh) % bh, (bw - w % bw) % bw
    x_pads, mem_pads = (pad_t_x, pad_h, pad_w), (pad_t_mem, pad_h, pad_w)

    sep = layer.use_global_vector and layer.separate_global_qkv
    q_weight = torch.cat((layer.q_proj.weight, layer.l2g_q_net.weight)) if sep else layer.q_proj.weight
    q_all = _project(layer, x, q_weight if layer.q_proj.bias is None else layer.q_proj, x_pads, left=False)
    kv = _project(layer, mem, layer.kv_proj, mem_pads, left=True)
    shifted = any(s > 0 for s in layer.shift_hw)
    if shifted:
        back = (-layer.shift_hw[0], -layer.shift_hw[1])
        q_all = torch.roll(q_all, shifts=back, dims=(2, 3))
        kv = torch.roll(kv, shifts=back, dims=(2, 3))
    tx_p, tm_p = t_x + pad_t_x, t_mem + pad_t_mem
    cut = reorder_pattern(layer.strategy, True)
    x_cuboid = (tx_p // n_t, bh, bw)
    vol_x, vol_mem = x_cuboid[0] * bh * bw, (tm_p // n_t) * bh * bw
    # CPU inference with short cuboids: q scaled and k, v key-padded in the cut, one pass each
    small = not layer.use_global_vector and small_attention_applies(kv, vol_mem)
    if small:
        k, v = cut_kv_padded(kv, cut, heads=heads, bt=tm_p // n_t, bh=bh, bw=bw)
        q = cut_scaled(q_all, cut, scale=layer.scale, heads=heads, bt=x_cuboid[0], bh=bh, bw=bw)
    else:
        k, v = cut_stacked(kv, cut, k=2, heads=heads, bt=tm_p // n_t, bh=bh, bw=bw)
        q_parts = rearrange(q_all, cut, k=2 if sep else 1, heads=heads, bt=x_cuboid[0], bh=bh, bw=bw)
        q = q_parts[0]

    rel_bias = (gather_bias(layer.relative_position_bias_table, layer.relative_position_index, vol_x, vol_mem)
                if layer.use_relative_pos else None)
    mask = cross_attention_mask(t_x, t_mem, h, w, n_t, layer.cuboid_hw, layer.shift_hw, layer.strategy,
                                layer.padding_type)
    if layer.use_global_vector:
        num_cuboids = q.shape[0] // b
        n_glob = mem_global_vectors.shape[1]
        if sep:
            g_kv = layer.l2g_global_kv_net(mem_global_vectors)
        else:
            g_kv = F.linear(mem_global_vectors, layer.kv_proj.weight, layer.kv_proj.bias)
        g_k, g_v = rearrange(g_kv, "b g (k heads d) -> k b heads g d", k=2, heads=heads)
        expand = lambda t: t.unsqueeze(1).expand(b, num_cuboids, *t.shape[1:]).flatten(0, 1)  # noqa: E731
        d = c // heads
        if sep:
            q = torch.cat((q, q_parts[1]), dim=-1)
            k = torch.cat((F.pad(k, (0, d)), F.pad(expand(g_k), (d, 0))), dim=2)
        else:
            k = torch.cat((k, expand(g_k)), dim=2)
        v = torch.cat((v, expand(g_v)), dim=2)
        rel_bias = None if rel_bias is None else F.pad(rel_bias, (0, n_glob))
        mask = None if mask is None else F.pad(mask, (0, n_glob), value=True)
    attn_mask = additive_mask(rel_bias, mask, q.dtype, q.device)
    if small:
        attn_mask = pad_mask_keys(attn_mask, vol_mem, k.shape[-2], dtype=q.dtype, device=q.device)
    out = cuboid_attention(q, k, v, batch=b, attn_mask=attn_mask, scale=1.0 if small else layer.scale,
                           dropout_p=layer.attn_drop_p if layer.training else 0.0)
    out = rearrange(out[None], reorder_pattern(layer.strategy, True, reverse=True), k=1, b=b,
                    bt=x_cuboid[0], bh=bh, bw=bw, nt=n_t, nh=(h + pad_h) // bh, nw=(w + pad_w) // bw)
    if shifted:
        out = torch.roll(out, shifts=layer.shift_hw, dims=(2, 3))
    out = unpad_thw(out, x_pads, layer.padding_type)
    return linear_dropout(out, layer.proj, layer.proj_drop)
