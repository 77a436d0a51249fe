"""The UNet-style decoder of the EarthNet2021 Earthformer (official ``CuboidTransformerUNetDecoder``,
same module names).

The decoder input has the target's length and the level-0 grid (the encoded auxiliary drivers
of the forecast period). It goes *down* the hierarchy (patch merging before each level > 0;
per depth step a self-attention stack, then with ``cross_mode`` "down"/"both" cross attention
to that level's encoder memory), then back *up* (per depth step a self-attention stack and,
with "up"/"both", cross attention; an upsampling layer after each level > 0). There are no
skip connections between the two paths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn._validation import ConfigError
from ..nn.blocks import StackCuboidCrossAttentionBlock, StackCuboidSelfAttentionBlock
from ..nn.layers import PatchMerging3D, PosEmbed, Upsample3DLayer
from .earthformer_codec import resolve_cross_layers, resolve_self_layers

__all__ = ["CuboidTransformerUNetDecoder", "CROSS_MODES"]

CROSS_MODES = ("up", "down", "both")


class CuboidTransformerUNetDecoder(nn.Module):
    """Down-then-up cuboid decoder cross-attending to the encoder memories.

    Patterns are resolved on the *encoder* memory shapes (``T_in``), as officially, and run on
    ``target_temporal_length`` frames.

    Examples
    --------
    >>> dec = CuboidTransformerUNetDecoder(
    ...     target_temporal_length=3, mem_shapes=[(2, 4, 4, 8), (2, 2, 2, 16)], depth=(1, 1),
    ...     downsample=2, upsample_kernel_size=3, block_self_attn_patterns="axial",
    ...     block_cross_attn_patterns="cross_1x1", max_temporal_relative=5, padding_type="zeros",
    ...     cross_mode="both", num_heads=4)
    >>> mems = [torch.randn(1, 2, 4, 4, 8), torch.randn(1, 2, 2, 2, 16)]
    >>> dec(torch.randn(1, 3, 4, 4, 8), mems).shape
    torch.Size([1, 3, 4, 4, 8])
    """

    def __init__(self, target_temporal_length: int, mem_shapes: Sequence[Sequence[int]], depth: Sequence[int],
                 downsample, upsample_kernel_size: int, block_self_attn_patterns, block_cross_attn_patterns,
                 max_temporal_relative: int, padding_type: str, cross_mode: str = "up", cross_start: int = 0,
                 block_self_cuboid_size=((4, 4, 4), (4, 4, 4)),
                 block_self_cuboid_strategy=(("l", "l", "l"), ("d", "d", "d")),
                 block_self_shift_size=((1, 1, 1), (0, 0, 0)), block_cross_cuboid_hw=((4, 4), (4, 4)),
                 block_cross_cuboid_strategy=(("l", "l", "l"), ("d", "l", "l")),
                 block_cross_shift_hw=((0, 0), (0, 0)), block_cross_n_temporal=(1, 2),
                 cross_last_n_frames: int | None = None, hierarchical_pos_embed: bool = False,
                 pos_embed_type: str = "t+hw", use_self_global: bool = False, self_update_global: bool = True,
                 use_cross_global: bool = False, use_global_vector_ffn: bool = True,
                 use_global_self_attn: bool = False, separate_global_qkv: bool = False,
                 global_dim_ratio: int = 1, **stack_kwargs) -> None:
        super().__init__()
        if cross_mode not in CROSS_MODES:
            raise ConfigError(f"unet_dec_cross_mode must be one of {list(CROSS_MODES)}, got {cross_mode!r}")
        if len(depth) != len(mem_shapes):
            raise ConfigError(f"dec_depth {list(depth)} needs one entry per level ({len(mem_shapes)})")
        self.target_temporal_length = target_temporal_length
        self.mem_shapes = [tuple(s) for s in mem_shapes]
        self.num_blocks = len(self.mem_shapes)
        self.depth = list(depth)
        self.cross_start = cross_start
        self.cross_mode = cross_mode
        self.up_use_cross = cross_mode in ("up", "both")
        self.down_use_cross = cross_mode in ("down", "both")
        self.hierarchical_pos_embed = hierarchical_pos_embed
        self.use_self_global = use_self_global
        self.self_update_global = self_update_global
        units = [s[-1] for s in self.mem_shapes]
        downsample = (1, downsample, downsample) if isinstance(downsample, int) else tuple(downsample)
        if self.num_blocks > 1:
            self.downsample_layers = nn.ModuleList(
                PatchMerging3D(units[i], units[i + 1], downsample, padding_type=padding_type)
                for i in range(self.num_blocks - 1))
            self.upsample_layers = nn.ModuleList(
                Upsample3DLayer(units[i + 1], units[i], (target_temporal_length,) + self.mem_shapes[i][1:3],
                                kernel_size=upsample_kernel_size)
                for i in range(self.num_blocks - 1))
            if hierarchical_pos_embed:
                def embeds():
                    return nn.ModuleList(
                        PosEmbed(units[i], self.mem_shapes[i][0], self.mem_shapes[i][1], self.mem_shapes[i][2],
                                 typ=pos_embed_type) for i in range(self.num_blocks - 1))
                self.down_hierarchical_pos_embed_l = embeds()
                self.up_hierarchical_pos_embed_l = embeds()
        self_layers = resolve_self_layers(block_self_attn_patterns, block_self_cuboid_size,
                                          block_self_cuboid_strategy, block_self_shift_size, self.mem_shapes)

        def self_stacks() -> nn.ModuleList:
            return nn.ModuleList(
                nn.ModuleList(
                    StackCuboidSelfAttentionBlock(
                        units[i], block_cuboid_size=self_layers[i][0], block_strategy=self_layers[i][1],
                        block_shift_size=self_layers[i][2], padding_type=padding_type,
                        use_global_vector=use_self_global, use_global_vector_ffn=use_global_vector_ffn,
                        use_global_self_attn=use_global_self_attn, separate_global_qkv=separate_global_qkv,
                        global_dim_ratio=global_dim_ratio, **stack_kwargs)
                    for _ in range(self.depth[i]))
                for i in range(self.num_blocks))

        self.down_self_blocks = self_stacks()
        self.up_self_blocks = self_stacks()
        cross_layers = resolve_cross_layers(block_cross_attn_patterns, block_cross_cuboid_hw,
                                            block_cross_cuboid_strategy, block_cross_shift_hw,
                                            block_cross_n_temporal, self.mem_shapes)
        cross_kw = {k: v for k, v in stack_kwargs.items() if k != "use_final_proj"}

        def cross_stacks() -> nn.ModuleList:
            return nn.ModuleList(
                nn.ModuleList(
                    StackCuboidCrossAttentionBlock(
                        units[i], block_cuboid_hw=cross_layers[i][0], block_shift_hw=cross_layers[i][1],
                        block_strategy=cross_layers[i][2], block_n_temporal=cross_layers[i][3],
                        padding_type=padding_type, cross_last_n_frames=cross_last_n_frames,
                        max_temporal_relative=max_temporal_relative, use_global_vector=use_cross_global,
                        separate_global_qkv=separate_global_qkv, global_dim_ratio=global_dim_ratio, **cross_kw)
                    for _ in range(self.depth[i]))
                for i in range(cross_start, self.num_blocks))

        if self.up_use_cross:
            self.up_cross_blocks = cross_stacks()
        if self.down_use_cross:
            self.down_cross_blocks = cross_stacks()

    def _self(self, blocks: nn.ModuleList, i: int, j: int, x: torch.Tensor, g):
        if not self.use_self_global:
            return blocks[i][j](x), g
        x, g_new = blocks[i][j](x, g)
        return x, (g_new if self.self_update_global else g)

    def forward(self, x: torch.Tensor, mem_l: Sequence[torch.Tensor],
                mem_global_vector_l: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """x: "b t_out h0 w0 c0" (level-0 grid); ``mem_l``: the encoder memories per level."""
        if x.shape[1] != self.target_temporal_length or tuple(x.shape[2:4]) != self.mem_shapes[0][1:3]:
            raise ConfigError(f"the UNet decoder input must be (b, {self.target_temporal_length}, "
                              f"{self.mem_shapes[0][1]}, {self.mem_shapes[0][2]}, c), got {tuple(x.shape)}")
        # official: one entry per depth step, read back per level on the way up (equal for depth 1)
        passed_globals = []
        for i in range(self.num_blocks):
            if i > 0:
                x = self.downsample_layers[i - 1](x)
                if self.hierarchical_pos_embed:
                    x = self.down_hierarchical_pos_embed_l[i - 1](x)
            g = None if mem_global_vector_l is None else mem_global_vector_l[i]
            for j in range(self.depth[i]):
                x, g = self._self(self.down_self_blocks, i, j, x, g)
                if self.down_use_cross and i >= self.cross_start:
                    x = self.down_cross_blocks[i - self.cross_start][j](x, mem_l[i], g)
                passed_globals.append(g)
        for i in range(self.num_blocks - 1, -1, -1):
            g = passed_globals[i]
            for j in range(self.depth[i]):
                x, g = self._self(self.up_self_blocks, i, j, x, g)
                if self.up_use_cross and i >= self.cross_start:
                    x = self.up_cross_blocks[i - self.cross_start][j](x, mem_l[i], g)
            if i > 0:
                x = self.upsample_layers[i - 1](x)
                if self.hierarchical_pos_embed:
                    x = self.up_hierarchical_pos_embed_l[i - 1](x)
        return x
