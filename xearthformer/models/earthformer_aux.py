"""Earthformer with auxiliary drivers (EarthNet2021): checkpoint-compatible with the official
``CuboidTransformerAuxModel``.

Differences from :class:`~xearthformer.models.Earthformer`:

* ``initial_aux_encoder``, a second front end of the same architecture with
  ``auxiliary_channels`` inputs, encodes the auxiliary variables after a nearest resize
  (legacy ``"nearest"``, in time and space) to the frames' grid;
* the encoder input is ``enc_pos_embed(initial_encoder(x) + initial_aux_encoder(aux_enc))``;
* the decoder is a :class:`~xearthformer.models.earthformer_unet_decoder.CuboidTransformerUNetDecoder`
  whose input is ``initial_aux_encoder(aux_dec)``, the encoded drivers of the forecast period
  (same module and weights as the encoder's): there is no ``z_proj`` and ``dec_pos_embed`` is
  built (it is in the checkpoint) but never used, as officially.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..nn._validation import ConfigError
from ..nn.layers import PosEmbed
from .earthformer import Earthformer, build_encoder, build_front_end, decoder_options
from .earthformer_config import EarthformerConfig
from .earthformer_unet_decoder import CROSS_MODES, CuboidTransformerUNetDecoder
from .init import initialise_earthformer

__all__ = ["EarthformerAux", "EarthformerAuxConfig"]

#: fields of EarthformerConfig that the official CuboidTransformerAuxModel does not take
_NOT_AUX = ("z_init_method", "dec_use_first_self_attn")


@dataclass(frozen=True)
class EarthformerAuxConfig(EarthformerConfig):
    """Hyper-parameters of :class:`EarthformerAux` (official ``CuboidTransformerAuxModel`` names).

    Adds ``auxiliary_channels`` (7 for EarthNet2021: 1 high-resolution static, 5 meso dynamic,
    1 meso static) and ``unet_dec_cross_mode`` (``"up"``, ``"down"`` or ``"both"``) to
    :class:`~xearthformer.models.EarthformerConfig`.

    Examples
    --------
    >>> cfg = EarthformerAuxConfig.from_official_kwargs({"input_shape": [4, 16, 16, 4],
    ...     "target_shape": [6, 16, 16, 4], "enc_depth": [1, 1], "dec_depth": [1, 1],
    ...     "auxiliary_channels": 7, "unet_dec_cross_mode": "both"})
    >>> cfg.auxiliary_channels, "z_init_method" in cfg.to_official_kwargs()
    (7, False)
    """

    auxiliary_channels: int = 1
    unet_dec_cross_mode: str = "up"

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping[str, Any]) -> EarthformerAuxConfig:
        """Build from the official ``CuboidTransformerAuxModel`` keyword arguments."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", *_NOT_AUX}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(f"unknown EarthNet Earthformer (CuboidTransformerAuxModel) arguments {unknown}; "
                              f"known: {sorted(names)}")
        for required in ("input_shape", "target_shape"):
            if required not in kwargs:
                raise ConfigError(f"the Earthformer kwargs need {required!r} (T, H, W, C)")
        return cls(**dict(kwargs))

    def to_official_kwargs(self) -> dict[str, Any]:
        out = super().to_official_kwargs()
        for name in _NOT_AUX:
            out.pop(name)
        return out

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.auxiliary_channels, int) and self.auxiliary_channels >= 1):
            raise ConfigError(f"auxiliary_channels must be a positive int, got {self.auxiliary_channels!r}")
        if self.unet_dec_cross_mode not in CROSS_MODES:
            raise ConfigError(f"unet_dec_cross_mode must be one of {list(CROSS_MODES)}, "
                              f"got {self.unet_dec_cross_mode!r}")


class EarthformerAux(nn.Module):
    """``model(x, aux_enc, aux_dec)``: frames "b t_in h w c" and drivers -> "b t_out h w c_out".

    ``aux_enc`` ("b t_a h_a w_a c_aux") and ``aux_dec`` ("b t_b h_b w_b c_aux") may be on any
    grid and length: they are resized (nearest) to ``(t_in, h, w)`` and ``(t_out, h, w)``.

    Examples
    --------
    >>> cfg = EarthformerAuxConfig(input_shape=(2, 8, 8, 1), target_shape=(3, 8, 8, 1), base_units=8,
    ...     enc_depth=(1, 1), dec_depth=(1, 1), enc_attn_patterns="axial", dec_self_attn_patterns="axial",
    ...     dec_cross_attn_patterns="cross_1x1", num_global_vectors=0, padding_type="zeros",
    ...     initial_downsample_type="stack_conv", initial_downsample_stack_conv_num_layers=1,
    ...     initial_downsample_stack_conv_dim_list=(8,), initial_downsample_stack_conv_downscale_list=(2,),
    ...     auxiliary_channels=2, unet_dec_cross_mode="both")
    >>> model = EarthformerAux(cfg).eval()
    >>> model(torch.randn(1, 2, 8, 8, 1), torch.randn(1, 2, 4, 4, 2), torch.randn(1, 3, 4, 4, 2)).shape
    torch.Size([1, 3, 8, 8, 1])
    """

    _build_ends = Earthformer._build_ends
    final_projection = Earthformer.final_projection

    def __init__(self, config: EarthformerAuxConfig) -> None:
        super().__init__()
        self.config = cfg = config
        t_out = cfg.target_shape[0]
        self.num_global_vectors = cfg.num_global_vectors
        if cfg.num_global_vectors > 0:
            self.init_global_vectors = nn.Parameter(
                torch.zeros(cfg.num_global_vectors, cfg.global_dim_ratio * cfg.base_units))
        top_shape = self._build_ends(cfg)
        self.initial_aux_encoder = build_front_end(cfg, cfg.auxiliary_channels)
        self.encoder = build_encoder(cfg, top_shape)
        self.enc_pos_embed = PosEmbed(cfg.base_units, *top_shape[:3], typ=cfg.pos_embed_type)
        mem_shapes = self.encoder.mem_shapes
        # built and saved, never used in forward (official)
        self.dec_pos_embed = PosEmbed(mem_shapes[-1][-1], t_out, mem_shapes[-1][1], mem_shapes[-1][2],
                                      typ=cfg.pos_embed_type)
        self.decoder = CuboidTransformerUNetDecoder(
            target_temporal_length=t_out, mem_shapes=mem_shapes, depth=cfg.dec_depth, downsample=cfg.downsample,
            upsample_kernel_size=cfg.upsample_kernel_size, cross_mode=cfg.unet_dec_cross_mode,
            cross_start=cfg.dec_cross_start, **decoder_options(cfg))
        initialise_earthformer(self)

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping[str, Any]) -> EarthformerAux:
        """Build from the official ``CuboidTransformerAuxModel`` kwargs."""
        return cls(EarthformerAuxConfig.from_official_kwargs(kwargs))

    @staticmethod
    def resize_aux(aux: torch.Tensor, thw: tuple[int, int, int]) -> torch.Tensor:
        """Nearest resize (legacy ``"nearest"``) of "b t h w c" to ``(t, h, w)``, as officially."""
        out = F.interpolate(rearrange(aux, "b t h w c -> b c t h w"), size=tuple(thw), mode="nearest")
        return rearrange(out, "b c t h w -> b t h w c")

    def forward(self, x: torch.Tensor, aux_enc: torch.Tensor, aux_dec: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = tuple(cfg.input_shape)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ConfigError(f"expected input of shape (batch, {', '.join(map(str, expected))}) "
                              f"(batch, T, H, W, C), got {tuple(x.shape)}")
        for name, aux in (("aux_enc", aux_enc), ("aux_dec", aux_dec)):
            if aux.dim() != 5 or aux.shape[0] != x.shape[0] or aux.shape[-1] != cfg.auxiliary_channels:
                raise ConfigError(f"{name} must be (batch={x.shape[0]}, T, H, W, {cfg.auxiliary_channels}), "
                                  f"got {tuple(aux.shape)}")
        b = x.shape[0]
        t_in, h, w, _ = cfg.input_shape
        t_out = cfg.target_shape[0]
        enc_aux = self.initial_aux_encoder(self.resize_aux(aux_enc.to(x.dtype), (t_in, h, w)))
        x = self.enc_pos_embed(self.initial_encoder(x) + enc_aux)
        if self.num_global_vectors > 0:
            mems, global_mems = self.encoder(x, self.init_global_vectors.expand(b, -1, -1))
        else:
            mems, global_mems = self.encoder(x), None
        z = self.initial_aux_encoder(self.resize_aux(aux_dec.to(x.dtype), (t_out, h, w)))
        y = self.decoder(z, mems, global_mems)
        return self.final_decoder(y, head=self.final_projection)
