"""PreDiff's knowledge-alignment network (official ``NoisyCuboidTransformerEncoder``, same keys).

It reads the noisy target latent ``zt`` ("b t h w c") and the diffusion step ``t`` only, and
predicts one quantity per frame for the last ``out_len`` frames (the mean intensity in the
official SEVIR alignment): ``first_proj`` ResBlock -> ``pos_embed`` -> per level [patch merge,
``depth[i]`` x (time-embedding ResBlock, cuboid self-attention stack)] -> attention-pooling
readout ``out`` applied frame by frame.

Module names are the official ones, so ``load_state_dict(official, strict=True)`` works on the
released checkpoint (``pretrained_sevirlr_alignment_avg_x_cuboid_v1.pt``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from ..nn._validation import ConfigError, one_of
from ..nn.layers import PatchMerging3D, PosEmbed
from .alignment_readout import AttentionReadout
from .earthformer_codec import resolve_self_layers
from .prediff_unet import check_common, checked_official_kwargs, cuboid_stacks, official_block_units
from .time_embedding import TimeEmbedLayer, TimeEmbedResBlock, timestep_embedding

__all__ = ["NoisyCuboidTransformerEncoder"]


class NoisyCuboidTransformerEncoder(nn.Module):
    """Cuboid-attention encoder of noisy latents with a per-frame attention-pooling readout.

    Parameters
    ----------
    input_shape : sequence of int
        ``(T, H, W, C)`` of the noisy latent ``zt``.
    out_channels : int
        Quantities predicted per frame.
    base_units : int
        Width of level 0; level ``i`` has ``block_units[i]`` (default ``base_units * 2**i``).
    depth : sequence of int
        Attention stacks per level.
    block_attn_patterns : str or sequence of str, optional
        Named cuboid pattern (per level), resolved on each level's ``(T, H_i, W_i, C_i)``.
    pool : {"attention"}
        Readout pooling; only the official attention pooling is implemented.
    readout_seq : bool
        Read out every frame (True, official); False is not implemented.
    out_len : int
        Number of final frames read out.

    The other options are those of :class:`xearthformer.nn.StackCuboidSelfAttentionBlock` under
    their official names. Use :meth:`from_official_kwargs` to build from an official config.

    Examples
    --------
    >>> import torch
    >>> net = NoisyCuboidTransformerEncoder((3, 4, 4, 2), base_units=8, num_heads=2, depth=(1, 1),
    ...                                     block_attn_patterns="axial", out_len=2).eval()
    >>> net(torch.zeros(5, 3, 4, 4, 2), torch.tensor([0, 1, 2, 3, 4])).shape
    torch.Size([5, 2, 1])
    """

    def __init__(
        self, input_shape: Sequence[int], out_channels: int = 1, base_units: int = 128,
        block_units: Sequence[int] | None = None, scale_alpha: float = 1.0,
        depth: Sequence[int] = (4, 4), downsample: int = 2, downsample_type: str = "patch_merge",
        block_attn_patterns: str | Sequence[str] | None = None,
        block_cuboid_size: Sequence = ((4, 4, 4), (4, 4, 4)),
        block_cuboid_strategy: Sequence = (("l", "l", "l"), ("d", "d", "d")),
        block_cuboid_shift_size: Sequence = ((0, 0, 0), (0, 0, 0)), num_heads: int = 4,
        attn_drop: float = 0.0, proj_drop: float = 0.0, ffn_drop: float = 0.0,
        ffn_activation: str = "leaky", gated_ffn: bool = False, norm_layer: str = "layer_norm",
        use_inter_ffn: bool = True, hierarchical_pos_embed: bool = False,
        pos_embed_type: str = "t+hw", padding_type: str = "ignore", checkpoint_level: int = 0,
        use_relative_pos: bool = True, self_attn_use_final_proj: bool = True,
        num_global_vectors: int = 0, use_global_vector_ffn: bool = True,
        use_global_self_attn: bool = False, separate_global_qkv: bool = False,
        global_dim_ratio: int = 1, time_embed_channels_mult: int = 4,
        time_embed_use_scale_shift_norm: bool = False, time_embed_dropout: float = 0.0,
        pool: str = "attention", readout_seq: bool = True, out_len: int = 1,
    ) -> None:
        super().__init__()
        check_common(downsample_type=downsample_type, num_global_vectors=num_global_vectors,
                     hierarchical_pos_embed=hierarchical_pos_embed)
        one_of(pool, "pool", ("attention",))
        if readout_seq is not True:
            raise ConfigError("readout_seq=False is not implemented; the official configs use True")
        self.input_shape = tuple(input_shape)
        if len(self.input_shape) != 4:
            raise ConfigError(f"input_shape must be (T, H, W, C), got {list(input_shape)}")
        t_len, height, width, channels = self.input_shape
        if not isinstance(out_len, int) or not 1 <= out_len <= t_len:
            raise ConfigError(f"out_len must be an int in [1, T={t_len}], got {out_len!r}")
        self.out_len = out_len
        self.num_blocks, self.depth = len(depth), list(depth)
        self.block_units = official_block_units(base_units, block_units, scale_alpha, downsample,
                                                self.num_blocks)
        self.first_proj = TimeEmbedResBlock(channels, None, base_units, dropout=proj_drop)
        self.pos_embed = PosEmbed(base_units, t_len, height, width, pos_embed_type)
        emb_channels = time_embed_channels_mult * base_units
        self.time_embed = TimeEmbedLayer(base_units, emb_channels)
        self.downsample_layers = nn.ModuleList(
            PatchMerging3D(self.block_units[i], self.block_units[i + 1],
                           (1, downsample, downsample), padding_type=padding_type)
            for i in range(self.num_blocks - 1)
        )
        self.mem_shapes = [(t_len, height, width, base_units)]
        for layer in self.downsample_layers:
            self.mem_shapes.append(layer.get_out_shape(self.mem_shapes[-1]))
        layers = resolve_self_layers(block_attn_patterns, block_cuboid_size, block_cuboid_strategy,
                                     block_cuboid_shift_size, self.mem_shapes)
        self.down_self_blocks = nn.ModuleList(
            cuboid_stacks(
                self.depth[i], self.block_units[i], layers[i], num_heads=num_heads,
                padding_type=padding_type, attn_drop=attn_drop, proj_drop=proj_drop,
                ffn_drop=ffn_drop, activation=ffn_activation, gated_ffn=gated_ffn,
                norm_layer=norm_layer, use_inter_ffn=use_inter_ffn, use_global_vector=False,
                use_global_vector_ffn=use_global_vector_ffn,
                use_global_self_attn=use_global_self_attn, separate_global_qkv=separate_global_qkv,
                global_dim_ratio=global_dim_ratio, checkpoint_level=checkpoint_level,
                use_relative_pos=use_relative_pos, use_final_proj=self_attn_use_final_proj,
            )
            for i in range(self.num_blocks)
        )
        self.down_time_embed_blocks = nn.ModuleList(
            TimeEmbedResBlock(self.block_units[i], emb_channels, dropout=time_embed_dropout,
                              use_scale_shift_norm=time_embed_use_scale_shift_norm)
            for i in range(self.num_blocks)
        )
        last_t, last_h, last_w, last_c = self.mem_shapes[-1]
        self.out = AttentionReadout(height=last_h, width=last_w, channels=last_c,
                                    num_heads=num_heads, out_channels=out_channels)

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping) -> NoisyCuboidTransformerEncoder:
        """Build from the official constructor kwargs (``*_init_mode`` keys are ignored).

        >>> net = NoisyCuboidTransformerEncoder.from_official_kwargs(dict(
        ...     input_shape=[2, 4, 4, 3], base_units=8, num_heads=2, depth=[1],
        ...     block_attn_patterns="axial", out_len=2, norm_init_mode="0"))
        >>> net.mem_shapes
        [(2, 4, 4, 8)]
        """
        return cls(**checked_official_kwargs(cls, kwargs))

    def forward(self, zt: Tensor, t: Tensor, **ignored) -> Tensor:
        """Per-frame prediction from the noisy latent.

        Parameters
        ----------
        zt : Tensor
            ``"b t h w c"`` noisy latent.
        t : Tensor
            ``"b"`` int64 diffusion steps.
        **ignored
            Accepted and ignored (the official call passes ``zc=``, ``y=`` that the net never
            reads).

        Returns
        -------
        Tensor
            ``"b out_len out_channels"``.
        """
        if zt.ndim != 5 or tuple(zt.shape[1:]) != self.input_shape:
            raise ConfigError(
                f"zt must be 'b t h w c' = (b, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(zt.shape)}"
            )
        x = self.pos_embed(self.first_proj(zt))
        t_emb = self.time_embed(timestep_embedding(t, self.block_units[0]).to(x.dtype))
        for i in range(self.num_blocks):
            if i > 0:
                x = self.downsample_layers[i - 1](x)
            for stack in self.down_self_blocks[i]:
                x = stack(self.down_time_embed_blocks[i](x, t_emb))
        return self.out(x, out_len=self.out_len)
