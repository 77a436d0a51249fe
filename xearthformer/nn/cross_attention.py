"""Cuboid cross-attention (Earthformer decoder), on ``scaled_dot_product_attention``.

Query and memory are cut into the same number of cuboids: (H, W) into ``cuboid_hw``
windows, time into ``n_temporal`` groups (memory padded in time at the start, queries
at the end), and each query cuboid attends to its memory cuboid (plus, optionally, the
memory's global vectors in the same softmax). Names match the official
``CuboidCrossAttentionLayer``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ._validation import ConfigError, int_pair, one_of, strategy_triple
from .attention import additive_mask, cuboid_attention, gather_bias, pad_mask_keys, small_attention_applies
from .cuboid import (cross_attention_mask, cut_kv_padded, cut_scaled, cut_stacked, pad_thw, relative_position_index,
                     reorder_pattern, unpad_thw)
from .fast_linear import linear as fast_linear
from .layers import PADDINGS, linear_dropout, make_dropout, make_norm


class CuboidCrossAttentionLayer(nn.Module):
    """Cross-attention from "b t_x h w c" queries to a "b t_mem h w c" memory.

    Parameters
    ----------
    dim, num_heads
        Channels and heads.
    n_temporal, cuboid_hw, shift_hw, strategy
        Temporal groups, spatial window, spatial shift and per-axis strategy (T, H, W).
    max_temporal_relative
        Size of the temporal relative-position range (the model passes ``T_in + T_out``);
        both time axes must be shorter.
    cross_last_n_frames
        Attend only to the last n memory frames.
    use_global_vector, separate_global_qkv, global_dim_ratio
        Queries also attend to the memory's global vectors (through ``kv_proj``, or the
        separate ``l2g_q_net`` / ``l2g_global_kv_net``).

    Examples
    --------
    >>> layer = CuboidCrossAttentionLayer(16, 4, cuboid_hw=(1, 1), strategy=("l", "l", "l"),
    ...                                   padding_type="zeros", max_temporal_relative=10,
    ...                                   use_global_vector=False)
    >>> layer(torch.randn(2, 4, 6, 8, 16), torch.randn(2, 5, 6, 8, 16)).shape
    torch.Size([2, 4, 6, 8, 16])
    """

    def __init__(self, dim: int, num_heads: int, n_temporal: int = 1, cuboid_hw: Sequence[int] = (7, 7),
                 shift_hw: Sequence[int] = (0, 0), strategy: Sequence[str] = ("d", "l", "l"),
                 padding_type: str = "ignore", cross_last_n_frames: int | None = None, qkv_bias: bool = False,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 max_temporal_relative: int = 50, norm_layer: str = "layer_norm", use_global_vector: bool = True,
                 separate_global_qkv: bool = False, global_dim_ratio: int = 1, checkpoint_level: int | bool = 1,
                 use_relative_pos: bool = True, **init_modes: str) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if not isinstance(n_temporal, int) or n_temporal < 1:
            raise ConfigError(f"n_temporal must be a positive int, got {n_temporal!r}")
        if global_dim_ratio != 1 and not separate_global_qkv:
            raise ConfigError("global_dim_ratio != 1 requires separate_global_qkv=True")
        self.dim, self.num_heads, self.n_temporal = dim, num_heads, n_temporal
        self.cuboid_hw = int_pair(tuple(cuboid_hw), "cuboid_hw")
        self.strategy = strategy_triple(tuple(strategy))
        shift = list(int_pair(tuple(shift_hw), "shift_hw", allow_zero=True))
        for axis in (0, 1):
            if self.strategy[axis + 1] == "d":
                shift[axis] = 0
        self.shift_hw = tuple(shift)
        self.padding_type = one_of(padding_type, "padding_type", PADDINGS)
        self.max_temporal_relative = max_temporal_relative
        self.cross_last_n_frames = cross_last_n_frames
        self.use_relative_pos = use_relative_pos
        self.use_global_vector = use_global_vector
        self.separate_global_qkv = separate_global_qkv
        self.global_dim_ratio = global_dim_ratio
        self.attn_drop_p = attn_drop
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        if use_relative_pos:
            bh, bw = self.cuboid_hw
            m = max_temporal_relative
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * m - 1) * (2 * bh - 1) * (2 * bw - 1), num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index((m, bh, bw)))
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = make_dropout(proj_drop)
        if use_global_vector and separate_global_qkv:
            self.l2g_q_net = nn.Linear(dim, dim, bias=qkv_bias)
            self.l2g_global_kv_net = nn.Linear(global_dim_ratio * dim, 2 * dim, bias=qkv_bias)
        self.norm = make_norm(norm_layer, dim)

    def _project(self, x: torch.Tensor, linear: nn.Module | torch.Tensor, pads, left: bool) -> torch.Tensor:
        weight = linear if isinstance(linear, torch.Tensor) else linear.weight
        bias = None if isinstance(linear, torch.Tensor) else linear.bias
        if bias is None:
            return pad_thw(fast_linear(x, weight), pads, self.padding_type, t_pad_left=left)
        return fast_linear(pad_thw(x, pads, self.padding_type, t_pad_left=left), weight, bias)

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mem_global_vectors: torch.Tensor | None = None):
        """x: "b t_x h w c"; mem: "b t_mem h w c"; mem_global_vectors: "b g (r c)"."""
        if self.cross_last_n_frames is not None:
            mem = mem[:, -min(self.cross_last_n_frames, mem.shape[1]):]
        x = self.norm(x)
        b, t_x, h, w, c = x.shape
        _, t_mem, h_mem, w_mem, c_mem = mem.shape
        if (mem.shape[0], h_mem, w_mem, c_mem) != (b, h, w, c):
            raise ConfigError(f"memory {tuple(mem.shape)} does not match the query {tuple(x.shape)} "
                              "in batch, height, width or channels")
        if not (t_x < self.max_temporal_relative and t_mem < self.max_temporal_relative):
            raise ConfigError(f"query ({t_x}) and memory ({t_mem}) frames must both be fewer than "
                              f"max_temporal_relative={self.max_temporal_relative}")
        if self.use_global_vector and mem_global_vectors is None:
            raise ConfigError("this layer uses global vectors: pass mem_global_vectors")
        n_t, (bh, bw), heads = self.n_temporal, self.cuboid_hw, self.num_heads
        pad_t_mem = (n_t - t_mem % n_t) % n_t
        pad_t_x = (n_t - t_x % n_t) % n_t
        pad_h, pad_w = (bh - h % bh) % bh, (bw - w % bw) % bw
        x_pads, mem_pads = (pad_t_x, pad_h, pad_w), (pad_t_mem, pad_h, pad_w)

        sep = self.use_global_vector and self.separate_global_qkv
        q_weight = torch.cat((self.q_proj.weight, self.l2g_q_net.weight)) if sep else self.q_proj.weight
        q_all = self._project(x, q_weight if self.q_proj.bias is None else self.q_proj, x_pads, left=False)
        kv = self._project(mem, self.kv_proj, mem_pads, left=True)
        shifted = any(s > 0 for s in self.shift_hw)
        if shifted:
            back = (-self.shift_hw[0], -self.shift_hw[1])
            q_all = torch.roll(q_all, shifts=back, dims=(2, 3))
            kv = torch.roll(kv, shifts=back, dims=(2, 3))
        tx_p, tm_p = t_x + pad_t_x, t_mem + pad_t_mem
        cut = reorder_pattern(self.strategy, True)
        x_cuboid = (tx_p // n_t, bh, bw)
        vol_x, vol_mem = x_cuboid[0] * bh * bw, (tm_p // n_t) * bh * bw
        # CPU inference with short cuboids: q scaled and k, v key-padded in the cut, one pass each
        small = not self.use_global_vector and small_attention_applies(kv, vol_mem)
        if small:
            k, v = cut_kv_padded(kv, cut, heads=heads, bt=tm_p // n_t, bh=bh, bw=bw)
            q = cut_scaled(q_all, cut, scale=self.scale, heads=heads, bt=x_cuboid[0], bh=bh, bw=bw)
        else:
            k, v = cut_stacked(kv, cut, k=2, heads=heads, bt=tm_p // n_t, bh=bh, bw=bw)
            q_parts = rearrange(q_all, cut, k=2 if sep else 1, heads=heads, bt=x_cuboid[0], bh=bh, bw=bw)
            q = q_parts[0]

        rel_bias = (gather_bias(self.relative_position_bias_table, self.relative_position_index, vol_x, vol_mem)
                    if self.use_relative_pos else None)
        mask = cross_attention_mask(t_x, t_mem, h, w, n_t, self.cuboid_hw, self.shift_hw, self.strategy,
                                    self.padding_type)
        if self.use_global_vector:
            num_cuboids = q.shape[0] // b
            n_glob = mem_global_vectors.shape[1]
            if sep:
                g_kv = self.l2g_global_kv_net(mem_global_vectors)
            else:
                g_kv = F.linear(mem_global_vectors, self.kv_proj.weight, self.kv_proj.bias)
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
        out = cuboid_attention(q, k, v, batch=b, attn_mask=attn_mask, scale=1.0 if small else self.scale,
                               dropout_p=self.attn_drop_p if self.training else 0.0)
        out = rearrange(out[None], reorder_pattern(self.strategy, True, reverse=True), k=1, b=b,
                        bt=x_cuboid[0], bh=bh, bw=bw, nt=n_t, nh=(h + pad_h) // bh, nw=(w + pad_w) // bw)
        if shifted:
            out = torch.roll(out, shifts=self.shift_hw, dims=(2, 3))
        out = unpad_thw(out, x_pads, self.padding_type)
        return linear_dropout(out, self.proj, self.proj_drop)
