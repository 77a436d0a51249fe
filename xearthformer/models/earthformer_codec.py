"""Hierarchical encoder and decoder of Earthformer (official ``CuboidTransformerEncoder`` /
``CuboidTransformerDecoder``, same module names)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn._validation import ConfigError
from ..nn.blocks import StackCuboidCrossAttentionBlock, StackCuboidSelfAttentionBlock
from ..nn.layers import PatchMerging3D, PosEmbed, Upsample3DLayer
from ..nn.patterns import resolve_cross_pattern, resolve_self_pattern
from .earthformer_config import per_level


def round_to(value: int, multiple: int) -> int:
    """Round up to a multiple (official ``round_to``)."""
    return value + (value - value % multiple) % multiple


def resolve_self_layers(patterns, sizes, strategies, shifts, mem_shapes) -> list[tuple[list, list, list]]:
    """Per level: (cuboid sizes, strategies, shifts) from pattern names or explicit lists."""
    levels = len(mem_shapes)
    if patterns is not None:
        names = [patterns] * levels if isinstance(patterns, str) else list(patterns)
        return [resolve_self_pattern(name, shape) for name, shape in zip(names, mem_shapes)]
    return list(zip(per_level(sizes, levels, "cuboid_size"), per_level(strategies, levels, "cuboid_strategy"),
                    per_level(shifts, levels, "shift_size")))


def resolve_cross_layers(patterns, hws, strategies, shifts, n_temporals, mem_shapes) -> list[tuple]:
    """Per level: (cuboid_hw, shift_hw, strategies, n_temporal)."""
    levels = len(mem_shapes)
    if patterns is not None:
        names = [patterns] * levels if isinstance(patterns, str) else list(patterns)
        out = []
        for name, shape in zip(names, mem_shapes):
            if name == "last_frame_dst":
                raise ConfigError("the 'last_frame_dst' cross pattern is recognised but not implemented "
                                  "officially either; choose a cross_KxK pattern")
            out.append(resolve_cross_pattern(name, shape))
        return out
    n_t = n_temporals if isinstance(n_temporals[0], (tuple, list)) else [n_temporals] * levels
    hw = hws if isinstance(hws[0][0], (tuple, list)) else [hws] * levels
    st = strategies if isinstance(strategies[0][0], (tuple, list)) else [strategies] * levels
    sh = shifts if isinstance(shifts[0][0], (tuple, list)) else [shifts] * levels
    return list(zip(hw, sh, st, n_t))


class CuboidTransformerEncoder(nn.Module):
    """Levels of self-attention stacks ``blocks[i]`` joined by patch merging ``down_layers[i]``."""

    def __init__(self, input_shape: Sequence[int], base_units: int, block_units: Sequence[int] | None,
                 scale_alpha: float, depth: Sequence[int], downsample, block_attn_patterns, block_cuboid_size,
                 block_strategy, block_shift_size, use_global_vector: bool, global_dim_ratio: int,
                 padding_type: str, **block_kwargs) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.num_blocks = len(depth)
        self.use_global_vector = use_global_vector
        downsample = (1, downsample, downsample) if isinstance(downsample, int) else tuple(downsample)
        if block_units is None:
            block_units = [round_to(base_units * int((max(downsample) ** scale_alpha) ** i), 4)
                           for i in range(self.num_blocks)]
        elif len(block_units) != self.num_blocks or block_units[0] != base_units:
            raise ConfigError(f"block_units {list(block_units)} needs one width per level, starting with "
                              f"base_units={base_units}")
        self.block_units = list(block_units)
        if self.num_blocks > 1:
            self.down_layers = nn.ModuleList(
                PatchMerging3D(self.block_units[i], self.block_units[i + 1], downsample, padding_type=padding_type)
                for i in range(self.num_blocks - 1))
            if use_global_vector:
                self.down_layer_global_proj = nn.ModuleList(
                    nn.Linear(global_dim_ratio * self.block_units[i], global_dim_ratio * self.block_units[i + 1])
                    for i in range(self.num_blocks - 1))
        self.mem_shapes = self.get_mem_shapes()
        layers = resolve_self_layers(block_attn_patterns, block_cuboid_size, block_strategy, block_shift_size,
                                     self.mem_shapes)
        self.block_cuboid_size = [layer[0] for layer in layers]
        self.blocks = nn.ModuleList(
            nn.Sequential(*[
                StackCuboidSelfAttentionBlock(
                    self.block_units[i], block_cuboid_size=layers[i][0], block_strategy=layers[i][1],
                    block_shift_size=layers[i][2], padding_type=padding_type, use_global_vector=use_global_vector,
                    global_dim_ratio=global_dim_ratio, **block_kwargs)
                for _ in range(depth[i])])
            for i in range(self.num_blocks))

    def get_mem_shapes(self) -> list[tuple[int, int, int, int]]:
        """(T, H, W, C) of every level's output."""
        shapes = [self.input_shape]
        for down in getattr(self, "down_layers", []):
            shapes.append(down.get_out_shape(shapes[-1]))
        return shapes

    def forward(self, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
        mems, global_mems = [], []
        for i in range(self.num_blocks):
            for stack in self.blocks[i]:
                if self.use_global_vector:
                    x, global_vectors = stack(x, global_vectors)
                else:
                    x = stack(x)
            mems.append(x)
            global_mems.append(global_vectors)
            if i < self.num_blocks - 1:
                x = self.down_layers[i](x)
                if self.use_global_vector:
                    global_vectors = self.down_layer_global_proj[i](global_vectors)
        return (mems, global_mems) if self.use_global_vector else mems


class CuboidTransformerDecoder(nn.Module):
    """From the top level down: cross-attention to the level's memory and self-attention stacks,
    then ``upsample_layers`` to the next level. Patterns are resolved on the *encoder* memory
    shapes (T_in), as in the official code."""

    def __init__(self, target_temporal_length: int, mem_shapes: Sequence[Sequence[int]], cross_start: int,
                 depth: Sequence[int], upsample_kernel_size: int, block_self_attn_patterns, block_self_cuboid_size,
                 block_self_cuboid_strategy, block_self_shift_size, block_cross_attn_patterns, block_cross_cuboid_hw,
                 block_cross_cuboid_strategy, block_cross_shift_hw, block_cross_n_temporal, cross_last_n_frames,
                 hierarchical_pos_embed: bool, pos_embed_type: str, max_temporal_relative: int, padding_type: str,
                 use_first_self_attn: bool, use_self_global: bool, self_update_global: bool, use_cross_global: bool,
                 use_global_vector_ffn: bool, use_global_self_attn: bool, separate_global_qkv: bool,
                 global_dim_ratio: int, **stack_kwargs) -> None:
        super().__init__()
        self.target_temporal_length = target_temporal_length
        self.mem_shapes = [tuple(s) for s in mem_shapes]
        self.num_blocks = len(mem_shapes)
        self.cross_start = cross_start
        self.depth = list(depth)
        self.hierarchical_pos_embed = hierarchical_pos_embed
        self.use_first_self_attn = use_first_self_attn
        self.use_self_global = use_self_global
        self.self_update_global = self_update_global
        ffn_kw = {k: v for k, v in stack_kwargs.items()}
        self_layers = resolve_self_layers(block_self_attn_patterns, block_self_cuboid_size,
                                          block_self_cuboid_strategy, block_self_shift_size, self.mem_shapes)
        self.self_blocks = nn.ModuleList()
        for i in range(self.num_blocks):
            n = self.depth[i] - 1 if (not use_first_self_attn and i == self.num_blocks - 1) else self.depth[i]
            self.self_blocks.append(nn.ModuleList(
                StackCuboidSelfAttentionBlock(
                    self.mem_shapes[i][-1], block_cuboid_size=self_layers[i][0], block_strategy=self_layers[i][1],
                    block_shift_size=self_layers[i][2], padding_type=padding_type,
                    use_global_vector=use_self_global, use_global_vector_ffn=use_global_vector_ffn,
                    use_global_self_attn=use_global_self_attn, separate_global_qkv=separate_global_qkv,
                    global_dim_ratio=global_dim_ratio, **ffn_kw)
                for _ in range(n)))
        cross_layers = resolve_cross_layers(block_cross_attn_patterns, block_cross_cuboid_hw,
                                            block_cross_cuboid_strategy, block_cross_shift_hw,
                                            block_cross_n_temporal, self.mem_shapes)
        cross_kw = {k: v for k, v in stack_kwargs.items() if k != "use_final_proj"}
        self.cross_blocks = nn.ModuleList(
            nn.ModuleList(
                StackCuboidCrossAttentionBlock(
                    self.mem_shapes[i][-1], block_cuboid_hw=cross_layers[i][0], block_shift_hw=cross_layers[i][1],
                    block_strategy=cross_layers[i][2], block_n_temporal=cross_layers[i][3],
                    padding_type=padding_type, cross_last_n_frames=cross_last_n_frames,
                    max_temporal_relative=max_temporal_relative, use_global_vector=use_cross_global,
                    separate_global_qkv=separate_global_qkv, global_dim_ratio=global_dim_ratio, **cross_kw)
                for _ in range(self.depth[i]))
            for i in range(cross_start, self.num_blocks))
        if self.num_blocks > 1:
            self.upsample_layers = nn.ModuleList(
                Upsample3DLayer(self.mem_shapes[i + 1][-1], self.mem_shapes[i][-1],
                                (target_temporal_length,) + tuple(self.mem_shapes[i][1:3]),
                                kernel_size=upsample_kernel_size)
                for i in range(self.num_blocks - 1))
            if hierarchical_pos_embed:
                self.hierarchical_pos_embed_l = nn.ModuleList(
                    PosEmbed(self.mem_shapes[i][-1], target_temporal_length, self.mem_shapes[i][1],
                             self.mem_shapes[i][2], typ=pos_embed_type)
                    for i in range(self.num_blocks - 1))

    def _self(self, i: int, j: int, x, g):
        block = self.self_blocks[i][j]
        if not self.use_self_global:
            return block(x), g
        x, g_new = block(x, g)
        return x, (g_new if self.self_update_global else g)

    def _cross(self, i: int, j: int, x, mem, g):
        if i < self.cross_start:
            return x
        return self.cross_blocks[i - self.cross_start][j](x, mem, g)

    def forward(self, x: torch.Tensor, mem_l: Sequence[torch.Tensor], mem_global_vector_l=None) -> torch.Tensor:
        for i in range(self.num_blocks - 1, -1, -1):
            g = None if mem_global_vector_l is None else mem_global_vector_l[i]
            if not self.use_first_self_attn and i == self.num_blocks - 1:
                x = self._cross(i, 0, x, mem_l[i], g)
                for j in range(self.depth[i] - 1):
                    x, g = self._self(i, j, x, g)
                    x = self._cross(i, j + 1, x, mem_l[i], g)
            else:
                for j in range(self.depth[i]):
                    x, g = self._self(i, j, x, g)
                    x = self._cross(i, j, x, mem_l[i], g)
            if i > 0:
                x = self.upsample_layers[i - 1](x)
                if self.hierarchical_pos_embed:
                    x = self.hierarchical_pos_embed_l[i - 1](x)
        return x
