"""Cuboid cross-attention (Earthformer decoder): the layer and its parameters.

Query and memory are cut into the same number of cuboids: (H, W) into ``cuboid_hw``
windows, time into ``n_temporal`` groups (memory padded in time at the start, queries
at the end), and each query cuboid attends to its memory cuboid (plus, optionally, the
memory's global vectors in the same softmax). Names match the official
``CuboidCrossAttentionLayer``. The maths is written out in
:mod:`xearthformer.nn.reference.cross_attention`; how a call is computed is chosen by
:func:`xearthformer.nn.execution.select_cross_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._validation import ConfigError, int_pair, one_of, strategy_triple
from .cuboid import relative_position_index
from .execution import select_cross_attention
from .layers import PADDINGS, make_dropout, make_norm


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

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mem_global_vectors: torch.Tensor | None = None):
        """x: "b t_x h w c"; mem: "b t_mem h w c"; mem_global_vectors: "b g (r c)"."""
        if x.dim() != 5 or mem.dim() != 5:
            raise ConfigError(f"expected 'b t h w c' query and memory, got shapes {tuple(x.shape)} "
                              f"and {tuple(mem.shape)}")
        b, t_x, h, w, c = x.shape
        _, t_mem, h_mem, w_mem, c_mem = mem.shape
        if self.cross_last_n_frames is not None:
            t_mem = min(self.cross_last_n_frames, t_mem)
        if (mem.shape[0], h_mem, w_mem, c_mem) != (b, h, w, c):
            raise ConfigError(f"memory {tuple(mem.shape)} does not match the query {tuple(x.shape)} "
                              "in batch, height, width or channels")
        if not (t_x < self.max_temporal_relative and t_mem < self.max_temporal_relative):
            raise ConfigError(f"query ({t_x}) and memory ({t_mem}) frames must both be fewer than "
                              f"max_temporal_relative={self.max_temporal_relative}")
        if self.use_global_vector and mem_global_vectors is None:
            raise ConfigError("this layer uses global vectors: pass mem_global_vectors")
        return select_cross_attention(self, x, mem)(self, x, mem, mem_global_vectors)
