"""The Earthformer configuration: a frozen dataclass mirroring the official constructor.

Field names and defaults are those of the official ``CuboidTransformerModel.__init__``,
so the official kwargs (``golden/earthformer/**/kwargs.json``, or the model section of an
official YAML after the train script's pattern mapping) convert one to one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..nn._validation import ConfigError, int_triple, strategy_triple
from ..nn.patterns import CROSS_PATTERNS, SELF_PATTERNS


def _tuplify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


@dataclass(frozen=True)
class EarthformerConfig:
    """Hyper-parameters of :class:`~xearthformer.models.Earthformer` (official names).

    Examples
    --------
    >>> cfg = EarthformerConfig(input_shape=[4, 8, 16, 1], target_shape=[6, 8, 16, 1], base_units=32,
    ...                         enc_depth=[1, 1], dec_depth=[1, 1])
    >>> cfg.input_shape, cfg.enc_depth
    ((4, 8, 16, 1), (1, 1))
    """

    input_shape: tuple[int, int, int, int]
    target_shape: tuple[int, int, int, int]
    base_units: int = 128
    block_units: tuple[int, ...] | None = None
    scale_alpha: float = 1.0
    num_heads: int = 4
    attn_drop: float = 0.0
    proj_drop: float = 0.0
    ffn_drop: float = 0.0
    downsample: int | tuple[int, ...] = 2
    downsample_type: str = "patch_merge"
    upsample_type: str = "upsample"
    upsample_kernel_size: int = 3
    enc_depth: tuple[int, ...] = (4, 4, 4)
    enc_attn_patterns: Any = None
    enc_cuboid_size: tuple = ((4, 4, 4), (4, 4, 4))
    enc_cuboid_strategy: tuple = (("l", "l", "l"), ("d", "d", "d"))
    enc_shift_size: tuple = ((0, 0, 0), (0, 0, 0))
    enc_use_inter_ffn: bool = True
    dec_depth: tuple[int, ...] = (2, 2)
    dec_cross_start: int = 0
    dec_self_attn_patterns: Any = None
    dec_self_cuboid_size: tuple = ((4, 4, 4), (4, 4, 4))
    dec_self_cuboid_strategy: tuple = (("l", "l", "l"), ("d", "d", "d"))
    dec_self_shift_size: tuple = ((1, 1, 1), (0, 0, 0))
    dec_cross_attn_patterns: Any = None
    dec_cross_cuboid_hw: tuple = ((4, 4), (4, 4))
    dec_cross_cuboid_strategy: tuple = (("l", "l", "l"), ("d", "l", "l"))
    dec_cross_shift_hw: tuple = ((0, 0), (0, 0))
    dec_cross_n_temporal: tuple = (1, 2)
    dec_cross_last_n_frames: int | None = None
    dec_use_inter_ffn: bool = True
    dec_hierarchical_pos_embed: bool = False
    num_global_vectors: int = 4
    use_dec_self_global: bool = True
    dec_self_update_global: bool = True
    use_dec_cross_global: bool = True
    use_global_vector_ffn: bool = True
    use_global_self_attn: bool = False
    separate_global_qkv: bool = False
    global_dim_ratio: int = 1
    z_init_method: str = "nearest_interp"
    initial_downsample_type: str = "conv"
    initial_downsample_activation: str = "leaky"
    initial_downsample_scale: int | tuple[int, ...] = 1
    initial_downsample_conv_layers: int = 2
    final_upsample_conv_layers: int = 2
    initial_downsample_stack_conv_num_layers: int = 1
    initial_downsample_stack_conv_dim_list: tuple[int, ...] | None = None
    initial_downsample_stack_conv_downscale_list: tuple[int, ...] = (1,)
    initial_downsample_stack_conv_num_conv_list: tuple[int, ...] = (2,)
    ffn_activation: str = "leaky"
    gated_ffn: bool = False
    norm_layer: str = "layer_norm"
    padding_type: str = "ignore"
    pos_embed_type: str = "t+hw"
    checkpoint_level: int = 0
    use_relative_pos: bool = True
    self_attn_use_final_proj: bool = True
    dec_use_first_self_attn: bool = False
    # initialisation schemes (only matter when training from scratch)
    attn_linear_init_mode: str = "0"
    ffn_linear_init_mode: str = "0"
    conv_init_mode: str = "0"
    down_up_linear_init_mode: str = "0"
    norm_init_mode: str = "0"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "extra":
                object.__setattr__(self, f.name, _tuplify(getattr(self, f.name)))
        self.validate()

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping[str, Any]) -> EarthformerConfig:
        """Build from the official ``CuboidTransformerModel`` keyword arguments.

        Unknown keys raise a :class:`ValueError` naming them.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(f"unknown Earthformer arguments {unknown}; known: {sorted(names)}")
        for required in ("input_shape", "target_shape"):
            if required not in kwargs:
                raise ConfigError(f"the Earthformer kwargs need {required!r} (T, H, W, C)")
        return cls(**dict(kwargs))

    def to_official_kwargs(self) -> dict[str, Any]:
        """The inverse of :meth:`from_official_kwargs` (lists, JSON-ready)."""

        def listify(v: Any) -> Any:
            return [listify(x) for x in v] if isinstance(v, tuple) else v

        return {f.name: listify(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "extra"}

    @property
    def num_levels(self) -> int:
        return len(self.enc_depth)

    def validate(self) -> None:
        """Raise :class:`ValueError` for arguments the model cannot be built with."""
        for name in ("input_shape", "target_shape"):
            shape = getattr(self, name)
            if not (isinstance(shape, tuple) and len(shape) == 4 and all(isinstance(s, int) and s > 0 for s in shape)):
                raise ConfigError(f"{name} must be four positive ints (T, H, W, C), got {shape!r}")
        if self.input_shape[1:3] != self.target_shape[1:3]:
            raise ConfigError(f"input and target must share H and W, got {self.input_shape} and {self.target_shape}")
        if len(self.enc_depth) != len(self.dec_depth):
            raise ConfigError(f"enc_depth {self.enc_depth} and dec_depth {self.dec_depth} must have one entry per "
                              "hierarchy level (equal lengths)")
        if not all(isinstance(d, int) and d >= 1 for d in self.enc_depth + self.dec_depth):
            raise ConfigError(f"depths must be positive ints, got enc {self.enc_depth}, dec {self.dec_depth}")
        if self.base_units % self.num_heads:
            raise ConfigError(f"base_units ({self.base_units}) must be divisible by num_heads ({self.num_heads})")
        if self.global_dim_ratio != 1 and not self.separate_global_qkv:
            raise ConfigError("global_dim_ratio != 1 requires separate_global_qkv=True")
        choices = {
            "z_init_method": ("zeros", "nearest_interp", "last", "mean"),
            "initial_downsample_type": ("conv", "stack_conv"),
            "padding_type": ("ignore", "zeros", "nearest"),
            "pos_embed_type": ("t+h+w", "t+hw"),
            "downsample_type": ("patch_merge",),
            "upsample_type": ("upsample",),
            "norm_layer": ("layer_norm", "rms_norm"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        levels = self.num_levels
        for name, registry in (("enc_attn_patterns", SELF_PATTERNS), ("dec_self_attn_patterns", SELF_PATTERNS),
                               ("dec_cross_attn_patterns", CROSS_PATTERNS)):
            value = getattr(self, name)
            if value is None:
                continue
            names = (value,) if isinstance(value, str) else value
            if not isinstance(value, str) and len(names) != levels:
                raise ConfigError(f"{name} has {len(names)} entries but the model has {levels} levels "
                                  f"(len(enc_depth)); give one pattern per level or a single string")
            for pattern in names:
                if pattern == "last_frame_dst" and name == "dec_cross_attn_patterns":
                    continue
                if pattern not in registry:
                    import difflib

                    close = difflib.get_close_matches(str(pattern), list(registry), n=3)
                    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ConfigError(f"{name}: unknown pattern {pattern!r}.{hint}")
        if self.enc_attn_patterns is None:
            _check_explicit_layers("enc", self.enc_cuboid_size, self.enc_cuboid_strategy, self.enc_shift_size, levels)
        if self.dec_self_attn_patterns is None:
            _check_explicit_layers("dec_self", self.dec_self_cuboid_size, self.dec_self_cuboid_strategy,
                                   self.dec_self_shift_size, levels)


def per_level(value: Sequence, levels: int, name: str) -> list:
    """Replicate a per-layer list to every level unless it is already nested per level."""
    nested = isinstance(value[0], (tuple, list)) and isinstance(value[0][0], (tuple, list))
    if not nested:
        return [value] * levels
    if len(value) != levels:
        raise ConfigError(f"{name} is given per level but has {len(value)} levels, expected {levels}")
    return list(value)


def _check_explicit_layers(prefix: str, sizes, strategies, shifts, levels: int) -> None:
    for lvl_sizes, lvl_strats, lvl_shifts in zip(per_level(sizes, levels, f"{prefix}_cuboid_size"),
                                                 per_level(strategies, levels, f"{prefix}_cuboid_strategy"),
                                                 per_level(shifts, levels, f"{prefix}_shift_size")):
        if not (len(lvl_sizes) == len(lvl_strats) == len(lvl_shifts)):
            raise ConfigError(f"{prefix}: cuboid sizes, strategies and shifts need one entry per attention layer, "
                              f"got {len(lvl_sizes)}, {len(lvl_strats)}, {len(lvl_shifts)}")
        for s in lvl_sizes:
            int_triple(s, f"{prefix}_cuboid_size entry")
        for s in lvl_strats:
            strategy_triple(s, f"{prefix}_cuboid_strategy entry")
        for s in lvl_shifts:
            int_triple(s, f"{prefix}_shift_size entry", allow_zero=True)
