"""PreDiff's denoiser: the Earthformer-UNet (official ``CuboidTransformerUNet``, same keys).

The context latent ``cond`` ("b t_in h w c") and the noisy target ``x`` ("b t_out h w c") are
joined along time with a 0/1 observation-indicator channel, projected by a ResBlock, and run
through a two-path UNet of cuboid self-attention stacks, each preceded by a time-embedding ResBlock
(one per level and path, re-applied at every depth step). Skips are additions. Only the last
``t_out`` frames of ``final_proj`` are returned: the predicted noise.

Module names are the official ones, so ``load_state_dict(official, strict=True)`` works on
checkpoints of the released model (``pretrained_sevirlr_earthformerunet_v1.pt``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence

import torch
from einops import repeat
from torch import Tensor, nn

from ..nn._validation import ConfigError, one_of
from ..nn.blocks import StackCuboidSelfAttentionBlock
from ..nn.layers import PatchMerging3D, PosEmbed, Upsample3DLayer
from .earthformer_codec import resolve_self_layers, round_to
from .time_embedding import TimeEmbedLayer, TimeEmbedResBlock, timestep_embedding

__all__ = ["CuboidTransformerUNet"]


def checked_official_kwargs(cls: type, kwargs: Mapping) -> dict:
    """Constructor kwargs of ``cls`` from an official kwargs dict.

    Keys ending in ``_init_mode`` are dropped (weights come from a checkpoint); any other key
    that ``cls.__init__`` does not take raises :class:`ConfigError`.
    """
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    out, unknown = {}, []
    for key, value in kwargs.items():
        if key.endswith("_init_mode"):
            continue
        if key in known:
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        hints = {k: difflib.get_close_matches(k, sorted(known), n=1) for k in unknown}
        hint = "; ".join(
            f"{k!r} (did you mean {v[0]!r}?)" if v else repr(k) for k, v in hints.items()
        )
        raise ConfigError(
            f"{cls.__name__}.from_official_kwargs got unknown keys: {hint}. "
            f"Expected official constructor keys: {', '.join(sorted(known))}"
        )
    return out


def official_block_units(base_units: int, block_units, scale_alpha: float, downsample: int,
                         levels: int) -> list[int]:
    """Widths per level: official default ``round_to(base * int((ds ** alpha) ** i), 4)``."""
    if block_units is None:
        return [
            round_to(base_units * int((downsample**scale_alpha) ** i), 4) for i in range(levels)
        ]
    if len(block_units) != levels or block_units[0] != base_units:
        raise ConfigError(
            f"block_units {list(block_units)} needs one width per level ({levels}), starting with "
            f"base_units={base_units}"
        )
    return list(block_units)


def check_common(
    *, downsample_type: str, num_global_vectors: int, hierarchical_pos_embed: bool
) -> None:
    """Options of the official nets that only have one supported value here."""
    one_of(downsample_type, "downsample_type", ("patch_merge",))
    if num_global_vectors:
        raise ConfigError(
            f"num_global_vectors={num_global_vectors} is not supported (the official PreDiff "
            "configs use 0); set it to 0"
        )
    if hierarchical_pos_embed:
        raise ConfigError(
            "hierarchical_pos_embed=True is not supported (official configs use False)"
        )


def cuboid_stacks(depth: int, dim: int, layer: tuple, **stack_kwargs) -> nn.ModuleList:
    """``depth`` self-attention stacks of one level; ``layer`` = (sizes, strategies, shifts)."""
    sizes, strategies, shifts = layer
    return nn.ModuleList(
        StackCuboidSelfAttentionBlock(dim, block_cuboid_size=sizes, block_strategy=strategies,
                                      block_shift_size=shifts, **stack_kwargs)
        for _ in range(depth)
    )


class CuboidTransformerUNet(nn.Module):
    """Earthformer-UNet denoiser of PreDiff (eps-prediction), official parameter names.

    Parameters
    ----------
    input_shape, target_shape : sequence of int
        ``(T_in, H, W, C)`` of the context latent and ``(T_out, H, W, C)`` of the target latent.
    base_units : int
        Width of level 0; level ``i`` has ``block_units[i]`` (default ``base_units * 2**i``).
    depth : sequence of int
        Attention stacks per level (and per path).
    block_attn_patterns : str or sequence of str, optional
        Named cuboid pattern per level, resolved on ``(T_in + T_out, H_i, W_i, C_i)``.
    time_embed_channels_mult : int
        Time embedding width is ``time_embed_channels_mult * base_units``.

    The other options are those of :class:`xearthformer.nn.StackCuboidSelfAttentionBlock` under
    their official names. Use :meth:`from_official_kwargs` to build from an official config.

    Examples
    --------
    >>> net = CuboidTransformerUNet((2, 4, 4, 3), (1, 4, 4, 3), base_units=8, num_heads=2,
    ...                             depth=(1, 1), block_attn_patterns="axial").eval()
    >>> x, cond = torch.zeros(1, 1, 4, 4, 3), torch.zeros(1, 2, 4, 4, 3)
    >>> net(x, torch.tensor([10]), cond).shape
    torch.Size([1, 1, 4, 4, 3])
    """

    def __init__(
        self, input_shape: Sequence[int], target_shape: Sequence[int], base_units: int = 256,
        block_units: Sequence[int] | None = None, scale_alpha: float = 1.0, num_heads: int = 4,
        attn_drop: float = 0.0, proj_drop: float = 0.0, ffn_drop: float = 0.0, downsample: int = 2,
        downsample_type: str = "patch_merge", upsample_type: str = "upsample",
        upsample_kernel_size: int = 3, depth: Sequence[int] = (4, 4),
        block_attn_patterns: str | Sequence[str] | None = None,
        block_cuboid_size: Sequence = ((4, 4, 4), (4, 4, 4)),
        block_cuboid_strategy: Sequence = (("l", "l", "l"), ("d", "d", "d")),
        block_cuboid_shift_size: Sequence = ((0, 0, 0), (0, 0, 0)), num_global_vectors: int = 0,
        use_global_vector_ffn: bool = True, use_global_self_attn: bool = False,
        separate_global_qkv: bool = False, global_dim_ratio: int = 1, ffn_activation: str = "leaky",
        gated_ffn: bool = False, norm_layer: str = "layer_norm", use_inter_ffn: bool = True,
        hierarchical_pos_embed: bool = False, padding_type: str = "ignore",
        checkpoint_level: int = 0,
        pos_embed_type: str = "t+hw", use_relative_pos: bool = True,
        self_attn_use_final_proj: bool = True, time_embed_channels_mult: int = 4,
        time_embed_use_scale_shift_norm: bool = False, time_embed_dropout: float = 0.0,
        unet_res_connect: bool = True,
    ) -> None:
        super().__init__()
        check_common(downsample_type=downsample_type, num_global_vectors=num_global_vectors,
                     hierarchical_pos_embed=hierarchical_pos_embed)
        one_of(upsample_type, "upsample_type", ("upsample",))
        self.input_shape, self.target_shape = tuple(input_shape), tuple(target_shape)
        if len(self.input_shape) != 4 or self.input_shape[1:] != self.target_shape[1:]:
            raise ConfigError(
                f"input_shape {list(input_shape)} and target_shape {list(target_shape)} must be "
                "(T, H, W, C) with the same H, W, C"
            )
        t_in, height, width, channels = self.input_shape
        t_all = t_in + self.target_shape[0]
        self.num_blocks, self.depth = len(depth), list(depth)
        self.unet_res_connect = unet_res_connect
        self.block_units = official_block_units(base_units, block_units, scale_alpha, downsample,
                                                self.num_blocks)
        self.first_proj = TimeEmbedResBlock(channels + 1, None, base_units, dropout=proj_drop)
        self.pos_embed = PosEmbed(base_units, t_all, height, width, pos_embed_type)
        emb_channels = time_embed_channels_mult * base_units
        self.time_embed = TimeEmbedLayer(base_units, emb_channels)
        ds = (1, downsample, downsample)
        self.downsample_layers = nn.ModuleList(
            PatchMerging3D(self.block_units[i], self.block_units[i + 1], ds,
                           padding_type=padding_type)
            for i in range(self.num_blocks - 1)
        )
        self.mem_shapes = [(t_all, height, width, base_units)]
        for layer in self.downsample_layers:
            self.mem_shapes.append(layer.get_out_shape(self.mem_shapes[-1]))
        self.upsample_layers = nn.ModuleList(
            Upsample3DLayer(self.block_units[i + 1], self.block_units[i], self.mem_shapes[i][:3],
                            upsample_kernel_size)
            for i in range(self.num_blocks - 1)
        )
        layers = resolve_self_layers(block_attn_patterns, block_cuboid_size, block_cuboid_strategy,
                                     block_cuboid_shift_size, self.mem_shapes)
        stack_kwargs = dict(
            num_heads=num_heads, padding_type=padding_type, attn_drop=attn_drop,
            proj_drop=proj_drop, ffn_drop=ffn_drop, activation=ffn_activation, gated_ffn=gated_ffn,
            norm_layer=norm_layer, use_inter_ffn=use_inter_ffn, use_global_vector=False,
            use_global_vector_ffn=use_global_vector_ffn, use_global_self_attn=use_global_self_attn,
            separate_global_qkv=separate_global_qkv, global_dim_ratio=global_dim_ratio,
            checkpoint_level=checkpoint_level, use_relative_pos=use_relative_pos,
            use_final_proj=self_attn_use_final_proj,
        )
        for path in ("down", "up"):
            self.add_module(f"{path}_self_blocks", nn.ModuleList(
                cuboid_stacks(self.depth[i], self.block_units[i], layers[i], **stack_kwargs)
                for i in range(self.num_blocks)
            ))
        for path in ("down", "up"):
            self.add_module(f"{path}_time_embed_blocks", nn.ModuleList(
                TimeEmbedResBlock(self.block_units[i], emb_channels, dropout=time_embed_dropout,
                                  use_scale_shift_norm=time_embed_use_scale_shift_norm)
                for i in range(self.num_blocks)
            ))
        self.final_proj = nn.Linear(base_units, channels)

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping) -> CuboidTransformerUNet:
        """Build from the official constructor kwargs (``*_init_mode`` keys are ignored).

        >>> net = CuboidTransformerUNet.from_official_kwargs(dict(
        ...     input_shape=[2, 4, 4, 3], target_shape=[1, 4, 4, 3], base_units=8, num_heads=2,
        ...     depth=[1, 1], block_attn_patterns=["axial", "axial"], conv_init_mode="0"))
        >>> net.block_units
        [8, 16]
        """
        return cls(**checked_official_kwargs(cls, kwargs))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """Predicted noise.

        Parameters
        ----------
        x : Tensor
            ``"b t_out h w c"`` noisy target latent.
        t : Tensor
            ``"b"`` int64 diffusion steps.
        cond : Tensor
            ``"b t_in h w c"`` context latent.

        Returns
        -------
        Tensor
            ``"b t_out h w c"``.
        """
        ok = (
            x.ndim == cond.ndim == 5
            and tuple(x.shape[1:]) == self.target_shape
            and tuple(cond.shape[1:]) == self.input_shape
            and cond.shape[0] == x.shape[0]
        )
        if not ok:
            target, context = (
                ", ".join(map(str, shape)) for shape in (self.target_shape, self.input_shape)
            )
            raise ConfigError(
                f"x must be 'b t_out h w c' = (b, {target}) and cond 'b t_in h w c' = "
                f"(b, {context}) with the same b; got {tuple(x.shape)} and {tuple(cond.shape)}"
            )
        t_in = self.input_shape[0]
        indicator = torch.cat([x.new_ones(t_in), x.new_zeros(self.target_shape[0])])
        indicator = repeat(indicator, "t -> b t h w 1", b=x.shape[0], h=x.shape[2], w=x.shape[3])
        x = torch.cat([torch.cat([cond, x], dim=1), indicator], dim=-1)
        x = self.pos_embed(self.first_proj(x))
        t_emb = self.time_embed(timestep_embedding(t, self.block_units[0]).to(x.dtype))
        skips = []
        for i in range(self.num_blocks):
            if i > 0:
                x = self.downsample_layers[i - 1](x)
            for stack in self.down_self_blocks[i]:
                x = stack(self.down_time_embed_blocks[i](x, t_emb))
            if self.unet_res_connect and i < self.num_blocks - 1:
                skips.append(x)
        for i in reversed(range(self.num_blocks)):
            if self.unet_res_connect and i < self.num_blocks - 1:
                x = x + skips[i]
            for stack in self.up_self_blocks[i]:
                x = stack(self.up_time_embed_blocks[i](x, t_emb))
            if i > 0:
                x = self.upsample_layers[i - 1](x)
        return self.final_proj(x[:, t_in:])
