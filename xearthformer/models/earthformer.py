"""Earthformer (NeurIPS 2022): the cuboid-attention encoder-decoder, checkpoint-compatible
with the official ``CuboidTransformerModel``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nn._validation import ConfigError
from ..nn.fast_linear import linear as fast_linear
from .earthformer_codec import CuboidTransformerDecoder, CuboidTransformerEncoder
from .earthformer_config import EarthformerConfig
from .earthformer_io import (
    FinalDecoder,
    FinalStackUpsamplingDecoder,
    InitialEncoder,
    InitialStackPatchMergingEncoder,
    _merge_factor,
)
from ..nn.layers import PosEmbed
from .init import initialise_earthformer


def build_front_end(cfg: EarthformerConfig, in_channels: int) -> InitialEncoder | InitialStackPatchMergingEncoder:
    """The initial encoder of ``cfg`` for ``in_channels`` inputs (frames, or EarthNet's drivers)."""
    act = cfg.initial_downsample_activation
    if cfg.initial_downsample_type == "conv":
        return InitialEncoder(in_channels, cfg.base_units, _merge_factor(cfg.initial_downsample_scale),
                              cfg.initial_downsample_conv_layers, act, cfg.padding_type)
    n = cfg.initial_downsample_stack_conv_num_layers
    return InitialStackPatchMergingEncoder(
        n, in_channels, cfg.initial_downsample_stack_conv_dim_list or (cfg.base_units,) * n,
        cfg.initial_downsample_stack_conv_downscale_list, cfg.initial_downsample_stack_conv_num_conv_list,
        act, cfg.padding_type)


def block_options(cfg: EarthformerConfig) -> dict[str, Any]:
    """Keyword arguments that every attention block of the encoder and decoder shares."""
    return dict(num_heads=cfg.num_heads, attn_drop=cfg.attn_drop, proj_drop=cfg.proj_drop,
                ffn_drop=cfg.ffn_drop, activation=cfg.ffn_activation, gated_ffn=cfg.gated_ffn,
                norm_layer=cfg.norm_layer, checkpoint_level=int(cfg.checkpoint_level),
                use_relative_pos=cfg.use_relative_pos, use_global_vector_ffn=cfg.use_global_vector_ffn,
                use_global_self_attn=cfg.use_global_self_attn, separate_global_qkv=cfg.separate_global_qkv,
                use_final_proj=cfg.self_attn_use_final_proj, padding_type=cfg.padding_type)


def build_encoder(cfg: EarthformerConfig, top_shape: tuple[int, ...]) -> CuboidTransformerEncoder:
    """The hierarchical encoder of ``cfg`` over the front end's output grid ``top_shape`` (T, H, W, ...)."""
    return CuboidTransformerEncoder(
        input_shape=tuple(top_shape[:3]) + (cfg.base_units,), base_units=cfg.base_units,
        block_units=cfg.block_units, scale_alpha=cfg.scale_alpha, depth=cfg.enc_depth, downsample=cfg.downsample,
        block_attn_patterns=cfg.enc_attn_patterns, block_cuboid_size=cfg.enc_cuboid_size,
        block_strategy=cfg.enc_cuboid_strategy, block_shift_size=cfg.enc_shift_size,
        use_global_vector=cfg.num_global_vectors > 0, global_dim_ratio=cfg.global_dim_ratio,
        use_inter_ffn=cfg.enc_use_inter_ffn, **block_options(cfg))


def decoder_options(cfg: EarthformerConfig) -> dict[str, Any]:
    """Keyword arguments that the plain and the UNet (EarthNet) decoders share."""
    has_global = cfg.num_global_vectors > 0
    t_in, t_out = cfg.input_shape[0], cfg.target_shape[0]
    return dict(
        block_self_attn_patterns=cfg.dec_self_attn_patterns, block_self_cuboid_size=cfg.dec_self_cuboid_size,
        block_self_cuboid_strategy=cfg.dec_self_cuboid_strategy, block_self_shift_size=cfg.dec_self_shift_size,
        block_cross_attn_patterns=cfg.dec_cross_attn_patterns, block_cross_cuboid_hw=cfg.dec_cross_cuboid_hw,
        block_cross_cuboid_strategy=cfg.dec_cross_cuboid_strategy, block_cross_shift_hw=cfg.dec_cross_shift_hw,
        block_cross_n_temporal=cfg.dec_cross_n_temporal, cross_last_n_frames=cfg.dec_cross_last_n_frames,
        hierarchical_pos_embed=cfg.dec_hierarchical_pos_embed, pos_embed_type=cfg.pos_embed_type,
        max_temporal_relative=t_in + t_out, use_self_global=has_global and cfg.use_dec_self_global,
        self_update_global=cfg.dec_self_update_global, use_cross_global=has_global and cfg.use_dec_cross_global,
        global_dim_ratio=cfg.global_dim_ratio, use_inter_ffn=cfg.dec_use_inter_ffn, **block_options(cfg))


class Earthformer(nn.Module):
    """Space-time forecaster: ``model(x)`` maps "b t_in h w c_in" to "b t_out h w c_out".

    Module and parameter names are those of the official release, so its checkpoints load
    with ``load_state_dict(strict=True)`` (see :func:`~xearthformer.models.load_official_checkpoint`).

    Parameters
    ----------
    config
        An :class:`EarthformerConfig`; use :meth:`from_official_kwargs` for the official kwargs.

    Examples
    --------
    >>> cfg = EarthformerConfig(input_shape=(4, 8, 16, 1), target_shape=(6, 8, 16, 1), base_units=32,
    ...     enc_depth=(1, 1), dec_depth=(1, 1), enc_attn_patterns="axial", dec_self_attn_patterns="axial",
    ...     dec_cross_attn_patterns="cross_1x1", num_global_vectors=0, z_init_method="zeros",
    ...     initial_downsample_scale=(1, 1, 2), padding_type="zeros", ffn_activation="gelu",
    ...     pos_embed_type="t+h+w")
    >>> model = Earthformer(cfg).eval()
    >>> model(torch.randn(2, 4, 8, 16, 1)).shape
    torch.Size([2, 6, 8, 16, 1])
    """

    def __init__(self, config: EarthformerConfig) -> None:
        super().__init__()
        self.config = cfg = config
        t_out = cfg.target_shape[0]
        self.num_global_vectors = cfg.num_global_vectors
        if cfg.num_global_vectors > 0:
            self.init_global_vectors = nn.Parameter(
                torch.zeros(cfg.num_global_vectors, cfg.global_dim_ratio * cfg.base_units))
        top_shape = self._build_ends(cfg)
        self.encoder = build_encoder(cfg, top_shape)
        t_enc, h_enc, w_enc = top_shape[:3]
        self.enc_pos_embed = PosEmbed(cfg.base_units, t_enc, h_enc, w_enc, typ=cfg.pos_embed_type)
        mem_shapes = self.encoder.mem_shapes
        top = mem_shapes[-1]
        self.z_proj = nn.Linear(top[-1], top[-1])
        self.dec_pos_embed = PosEmbed(top[-1], t_out, top[1], top[2], typ=cfg.pos_embed_type)
        self.decoder = CuboidTransformerDecoder(
            target_temporal_length=t_out, mem_shapes=mem_shapes, cross_start=cfg.dec_cross_start,
            depth=cfg.dec_depth, upsample_kernel_size=cfg.upsample_kernel_size,
            use_first_self_attn=cfg.dec_use_first_self_attn, **decoder_options(cfg))
        initialise_earthformer(self)

    def _build_ends(self, cfg: EarthformerConfig) -> tuple[int, int, int, int]:
        t_out, h, w, c_out = cfg.target_shape
        act = cfg.initial_downsample_activation
        if cfg.initial_downsample_type == "conv":
            if cfg.base_units % 16:
                raise ConfigError(f"the 'conv' front end uses GroupNorm(16): base_units ({cfg.base_units}) must be "
                                  "a multiple of 16")
            self.initial_encoder = build_front_end(cfg, cfg.input_shape[-1])
            self.final_decoder = FinalDecoder((t_out, h, w), cfg.base_units, cfg.final_upsample_conv_layers, act)
            self.dec_final_proj = nn.Linear(cfg.base_units, c_out)
            return self.initial_encoder.patch_merge.get_out_shape(cfg.input_shape)
        n = cfg.initial_downsample_stack_conv_num_layers
        self.initial_encoder = build_front_end(cfg, cfg.input_shape[-1])
        targets, in_dim = FinalStackUpsamplingDecoder.get_init_params(
            cfg.target_shape, self.initial_encoder.get_out_shape_list(cfg.target_shape), large_channel=True)
        self.final_decoder = FinalStackUpsamplingDecoder(
            targets, in_dim, list(cfg.initial_downsample_stack_conv_num_conv_list)[:n][::-1], act)
        self.dec_final_proj = nn.Linear(targets[-1][-1], c_out)
        out = self.initial_encoder.get_out_shape_list(cfg.input_shape)[-1]
        if out[-1] != cfg.base_units:
            raise ConfigError(f"the last stack_conv width ({out[-1]}) must equal base_units ({cfg.base_units})")
        return out

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping[str, Any]) -> Earthformer:
        """Build from the official ``CuboidTransformerModel`` constructor kwargs (e.g. a ``kwargs.json``)."""
        return cls(EarthformerConfig.from_official_kwargs(kwargs))

    def initial_z(self, top_mem: torch.Tensor, t_out: int) -> torch.Tensor:
        """The decoder's query tensor at the top level ("b t_out h w c")."""
        b = top_mem.shape[0]
        method = self.config.z_init_method
        if method == "zeros":
            z = self.dec_pos_embed.embedding(t_out, top_mem.shape[2], top_mem.shape[3]).to(top_mem.dtype)
            return self.z_proj(z)[None].expand(b, -1, -1, -1, -1)
        if method == "nearest_interp":
            z = F.interpolate(top_mem.permute(0, 4, 1, 2, 3), size=(t_out,) + tuple(top_mem.shape[2:4]))
            z = z.permute(0, 2, 3, 4, 1)
        elif method == "last":
            z = top_mem[:, -1:].expand(b, t_out, *top_mem.shape[2:])
        else:  # mean
            z = top_mem.mean(dim=1, keepdim=True).expand(b, t_out, *top_mem.shape[2:])
        return self.z_proj(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: "b t_in h w c_in" -> "b t_out h w c_out"."""
        expected = tuple(self.config.input_shape)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ConfigError(f"expected input of shape (batch, {', '.join(map(str, expected))}) "
                              f"(batch, T, H, W, C), got {tuple(x.shape)}")
        b = x.shape[0]
        x = self.enc_pos_embed(self.initial_encoder(x))
        if self.num_global_vectors > 0:
            g = self.init_global_vectors.expand(b, -1, -1)
            mems, global_mems = self.encoder(x, g)
        else:
            mems, global_mems = self.encoder(x), None
        z = self.initial_z(mems[-1], self.config.target_shape[0])
        y = self.decoder(z, mems, global_mems)
        return self.final_decoder(y, head=self.final_projection)

    def final_projection(self, h: torch.Tensor) -> torch.Tensor:
        """``dec_final_proj`` on oneDNN where eligible ("... c" -> "... c_out").

        Its input gradient is a product with a single inner column for one output channel
        (64 -> 1), slow through BLAS ``mm`` (89 ms at ENSO batch 8 in an ad hoc profile,
        against 2-3 ms for oneDNN; ``benchmarks/bench_fast_paths.py`` times the step with
        and without it, switch ``fast_final_proj``).
        """
        return fast_linear(h, self.dec_final_proj.weight, self.dec_final_proj.bias)
