"""Cuboid self-attention (Earthformer), with global vectors: the layer and its parameters.

Parameter and buffer names match the official ``CuboidSelfAttentionLayer`` so official
checkpoints load with ``strict=True``. The maths is written out in
:mod:`xearthformer.nn.reference.self_attention`; how a call is computed (reference, fused
SDPA, CPU fast paths) is chosen by :func:`xearthformer.nn.execution.select_self_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._validation import ConfigError, int_triple, one_of, strategy_triple
from .cuboid import relative_position_index
from .execution import select_self_attention
from .layers import PADDINGS, make_dropout, make_norm


class CuboidSelfAttentionLayer(nn.Module):
    """Self-attention inside cuboids of a "b t h w c" tensor, optionally with global vectors.

    Parameters
    ----------
    dim, num_heads
        Channels and heads (``dim`` divisible by ``num_heads``).
    cuboid_size, shift_size, strategy
        Cuboid extent (T, H, W), Swin-style cyclic shift, and per-axis ``'l'`` local /
        ``'d'`` dilated decomposition. Extents longer than the data shrink at run time.
    padding_type
        ``'ignore'`` (pad with zeros and mask), ``'zeros'`` (pad, no mask: the padded tokens
        take part in the softmax, as in every released config) or ``'nearest'`` (resize).
    use_global_vector, use_global_self_attn, separate_global_qkv, global_dim_ratio
        Global vectors: tokens also attend to them, they attend to every token (and to each
        other with ``use_global_self_attn``), through the shared ``global_qkv`` or the six
        separate projections.

    Returns the update (no residual); the caller adds it. The input is LayerNorm-ed first.

    Examples
    --------
    >>> layer = CuboidSelfAttentionLayer(16, 4, cuboid_size=(2, 4, 4), shift_size=(1, 2, 2),
    ...                                  strategy=("l", "l", "l"), padding_type="zeros")
    >>> layer(torch.randn(2, 5, 8, 10, 16)).shape
    torch.Size([2, 5, 8, 10, 16])
    """

    def __init__(self, dim: int, num_heads: int, cuboid_size: Sequence[int] = (2, 7, 7),
                 shift_size: Sequence[int] = (0, 0, 0), strategy: Sequence[str] = ("l", "l", "l"),
                 padding_type: str = "ignore", qkv_bias: bool = False, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, use_final_proj: bool = True,
                 norm_layer: str = "layer_norm", use_global_vector: bool = False,
                 use_global_self_attn: bool = False, separate_global_qkv: bool = False,
                 global_dim_ratio: int = 1, checkpoint_level: int | bool = 0,
                 use_relative_pos: bool = True, **init_modes: str) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if global_dim_ratio != 1 and not separate_global_qkv:
            raise ConfigError("global_dim_ratio != 1 requires separate_global_qkv=True")
        self.dim, self.num_heads = dim, num_heads
        self.cuboid_size = int_triple(tuple(cuboid_size), "cuboid_size")
        self.shift_size = int_triple(tuple(shift_size), "shift_size", allow_zero=True)
        self.strategy = strategy_triple(tuple(strategy))
        self.padding_type = one_of(padding_type, "padding_type", PADDINGS)
        self.use_final_proj = use_final_proj
        self.use_relative_pos = use_relative_pos
        self.use_global_vector = use_global_vector
        self.use_global_self_attn = use_global_self_attn
        self.separate_global_qkv = separate_global_qkv
        self.global_dim_ratio = global_dim_ratio
        self.attn_drop_p = attn_drop
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5

        if use_relative_pos:
            bt, bh, bw = self.cuboid_size
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * bt - 1) * (2 * bh - 1) * (2 * bw - 1), num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(self.cuboid_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        global_dim = global_dim_ratio * dim
        if use_global_vector:
            if separate_global_qkv:
                self.l2g_q_net = nn.Linear(dim, dim, bias=qkv_bias)
                self.l2g_global_kv_net = nn.Linear(global_dim, 2 * dim, bias=qkv_bias)
                self.g2l_global_q_net = nn.Linear(global_dim, dim, bias=qkv_bias)
                self.g2l_k_net = nn.Linear(dim, dim, bias=qkv_bias)
                self.g2l_v_net = nn.Linear(dim, global_dim, bias=qkv_bias)
                if use_global_self_attn:
                    self.g2g_global_qkv_net = nn.Linear(global_dim, 3 * global_dim, bias=qkv_bias)
            else:
                self.global_qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if use_final_proj:
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = make_dropout(proj_drop)
            if use_global_vector:
                self.global_proj = nn.Linear(global_dim, global_dim)
        self.norm = make_norm(norm_layer, dim)
        if use_global_vector:
            self.global_vec_norm = make_norm(norm_layer, global_dim)

    def forward(self, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
        """x: "b t h w c"; global_vectors: "b g (r c)". Returns the update(s), without residual."""
        if x.dim() != 5 or x.shape[-1] != self.dim:
            raise ConfigError(f"expected a 'b t h w c' tensor with {self.dim} channels, got shape {tuple(x.shape)}")
        if self.use_global_vector and global_vectors is None:
            raise ConfigError("this layer uses global vectors: call it as layer(x, global_vectors)")
        return select_self_attention(self, x, global_vectors)(self, x, global_vectors)
