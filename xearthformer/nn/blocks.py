"""Stacks of cuboid attention layers with their FFNs (official ``StackCuboid*Block``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._validation import ConfigError
from .cross_attention import CuboidCrossAttentionLayer
from .layers import PositionwiseFFN
from .self_attention import CuboidSelfAttentionLayer


def _ffns(n: int, dim: int, ffn_drop: float, gated: bool, activation: str, norm: str) -> nn.ModuleList:
    return nn.ModuleList(
        PositionwiseFFN(dim, 4 * dim, dropout=ffn_drop, activation_dropout=ffn_drop, gated_proj=gated,
                        activation=activation, normalization=norm, pre_norm=True)
        for _ in range(n)
    )


def _residual(x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """``x + update``; without autograd, added into ``update`` (a fresh tensor the caller owns).

    Saves a large fresh allocation per layer in inference (the same sum, bit for bit).
    """
    if not torch.is_grad_enabled() or not (x.requires_grad or update.requires_grad):
        if update.shape == x.shape and update.dtype == x.dtype:
            return update.add_(x)
    return x + update


def _same_length(name: str, *lists: Sequence) -> int:
    lengths = {len(v) for v in lists}
    if len(lengths) != 1 or 0 in lengths:
        raise ConfigError(f"{name}: the per-layer lists must be non-empty and of equal length, "
                          f"got lengths {[len(v) for v in lists]}")
    return lengths.pop()


class StackCuboidSelfAttentionBlock(nn.Module):
    """Cuboid self-attention layers ``attn_l`` with FFNs ``ffn_l`` (and ``global_ffn_l``).

    With ``use_inter_ffn`` each layer is ``x = ffn_k(x + attn_k(x))``; otherwise all
    attentions run (each with its residual) and one FFN follows. Global vectors are updated
    residually alongside (``g = g + g_out``), with their own FFN if ``use_global_vector_ffn``.
    """

    def __init__(self, dim: int, num_heads: int, block_cuboid_size: Sequence, block_shift_size: Sequence,
                 block_strategy: Sequence, padding_type: str = "ignore", qkv_bias: bool = False,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 ffn_drop: float = 0.0, activation: str = "leaky", gated_ffn: bool = False,
                 norm_layer: str = "layer_norm", use_inter_ffn: bool = False, use_global_vector: bool = False,
                 use_global_vector_ffn: bool = True, use_global_self_attn: bool = False,
                 separate_global_qkv: bool = False, global_dim_ratio: int = 1, checkpoint_level: int = 0,
                 use_relative_pos: bool = True, use_final_proj: bool = True, **init_modes: str) -> None:
        super().__init__()
        n = _same_length("StackCuboidSelfAttentionBlock", block_cuboid_size, block_shift_size, block_strategy)
        self.use_inter_ffn = use_inter_ffn
        self.use_global_vector = use_global_vector
        self.use_global_vector_ffn = use_global_vector_ffn and use_global_vector
        self.checkpoint_level = int(checkpoint_level)
        n_ffn = n if use_inter_ffn else 1
        self.ffn_l = _ffns(n_ffn, dim, ffn_drop, gated_ffn, activation, norm_layer)
        if self.use_global_vector_ffn:
            self.global_ffn_l = _ffns(n_ffn, global_dim_ratio * dim, ffn_drop, gated_ffn, activation, norm_layer)
        self.attn_l = nn.ModuleList(
            CuboidSelfAttentionLayer(
                dim, num_heads, cuboid_size=size, shift_size=shift, strategy=strategy,
                padding_type=padding_type, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                proj_drop=proj_drop, norm_layer=norm_layer, use_global_vector=use_global_vector,
                use_global_self_attn=use_global_self_attn, separate_global_qkv=separate_global_qkv,
                global_dim_ratio=global_dim_ratio, use_relative_pos=use_relative_pos, use_final_proj=use_final_proj)
            for size, shift, strategy in zip(block_cuboid_size, block_shift_size, block_strategy)
        )

    def _run(self, module: nn.Module, level: int, *args, **kwargs):
        if self.training and self.checkpoint_level >= level:
            return checkpoint(module, *args, use_reentrant=False, **kwargs)
        return module(*args, **kwargs)

    def forward(self, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
        g = global_vectors
        for idx, attn in enumerate(self.attn_l):
            if self.use_global_vector:
                x_out, g_out = self._run(attn, 2, x, g)
                x, g = x + x_out, g + g_out
            else:
                x = _residual(x, self._run(attn, 2, x))
            if self.use_inter_ffn:
                x = self._run(self.ffn_l[idx], 1, x, overwrite_input=True)  # x: our fresh residual sum
                if self.use_global_vector_ffn:
                    g = self._run(self.global_ffn_l[idx], 1, g)
        if not self.use_inter_ffn:
            x = self._run(self.ffn_l[0], 1, x, overwrite_input=True)
            if self.use_global_vector_ffn:
                g = self._run(self.global_ffn_l[0], 1, g)
        return (x, g) if self.use_global_vector else x


class StackCuboidCrossAttentionBlock(nn.Module):
    """Cuboid cross-attention layers ``attn_l`` with FFNs ``ffn_l`` (no global FFN)."""

    def __init__(self, dim: int, num_heads: int, block_cuboid_hw: Sequence, block_shift_hw: Sequence,
                 block_n_temporal: Sequence, block_strategy: Sequence, padding_type: str = "ignore",
                 cross_last_n_frames: int | None = None, qkv_bias: bool = False, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, ffn_drop: float = 0.0,
                 activation: str = "leaky", gated_ffn: bool = False, norm_layer: str = "layer_norm",
                 use_inter_ffn: bool = True, max_temporal_relative: int = 50, checkpoint_level: int = 1,
                 use_relative_pos: bool = True, use_global_vector: bool = False,
                 separate_global_qkv: bool = False, global_dim_ratio: int = 1, **init_modes: str) -> None:
        super().__init__()
        n = _same_length("StackCuboidCrossAttentionBlock", block_cuboid_hw, block_shift_hw, block_strategy,
                         block_n_temporal)
        self.use_inter_ffn = use_inter_ffn
        self.checkpoint_level = int(checkpoint_level)
        self.ffn_l = _ffns(n if use_inter_ffn else 1, dim, ffn_drop, gated_ffn, activation, norm_layer)
        self.attn_l = nn.ModuleList(
            CuboidCrossAttentionLayer(
                dim, num_heads, n_temporal=n_t, cuboid_hw=hw, shift_hw=shift, strategy=strategy,
                padding_type=padding_type, cross_last_n_frames=cross_last_n_frames, qkv_bias=qkv_bias,
                qk_scale=qk_scale, attn_drop=attn_drop, proj_drop=proj_drop,
                max_temporal_relative=max_temporal_relative, norm_layer=norm_layer,
                use_global_vector=use_global_vector, separate_global_qkv=separate_global_qkv,
                global_dim_ratio=global_dim_ratio, use_relative_pos=use_relative_pos)
            for hw, shift, strategy, n_t in zip(block_cuboid_hw, block_shift_hw, block_strategy, block_n_temporal)
        )

    def _run(self, module: nn.Module, level: int, *args, **kwargs):
        if self.training and self.checkpoint_level >= level:
            return checkpoint(module, *args, use_reentrant=False, **kwargs)
        return module(*args, **kwargs)

    def forward(self, x: torch.Tensor, mem: torch.Tensor, mem_global_vector: torch.Tensor | None = None):
        for idx, attn in enumerate(self.attn_l):
            x = _residual(x, self._run(attn, 2, x, mem, mem_global_vector))
            if self.use_inter_ffn:
                x = self._run(self.ffn_l[idx], 1, x, overwrite_input=True)  # x: our fresh residual sum
        if not self.use_inter_ffn:
            x = self._run(self.ffn_l[0], 1, x, overwrite_input=True)
        return x
