"""The PreDiff autoencoder: a KL-regularised VAE that maps frames to a small latent grid.

Parameter names follow the legacy diffusers release that PreDiff vendored, so the official
checkpoint (``pretrained_sevirlr_vae_8x8x64_v1.pt``) loads with ``strict=True``. The VAE works on
single frames in ``"b c h w"``; a video ``"b t h w c"`` is encoded frame by frame with
``rearrange(x, "b t h w c -> (b t) c h w")`` (see :mod:`xearthformer.diffusion.pipeline`).

Latents are **not** rescaled: PreDiff's ``scale_factor`` is 1.0 (the ``scaling_factor`` constructor
argument of the official class, 0.18215, is never used).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from xearthformer.models._vae_blocks import Decoder, Encoder
from xearthformer.nn._validation import ConfigError

__all__ = ["AutoencoderKL", "AutoencoderKLConfig", "DiagonalGaussianDistribution"]

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0

# official kwargs that are accepted but have no effect on the module
_IGNORED_OFFICIAL_KWARGS = ("sample_size", "scaling_factor")


class DiagonalGaussianDistribution:
    """Posterior of the VAE: independent Gaussians per latent element.

    Parameters
    ----------
    moments : Tensor
        ``"b (2 l) h w"``: mean and log-variance concatenated on the channel axis, as produced by
        ``quant_conv``. The log-variance is clamped to ``[-30, 20]``.

    Attributes
    ----------
    mean, logvar, std, var : Tensor
        ``"b l h w"`` each.

    Examples
    --------
    >>> posterior = DiagonalGaussianDistribution(torch.zeros(2, 8, 3, 3))
    >>> posterior.mode().shape, float(posterior.std.max())
    (torch.Size([2, 4, 3, 3]), 1.0)
    >>> z = posterior.sample(generator=torch.Generator().manual_seed(0))
    >>> z.shape
    torch.Size([2, 4, 3, 3])
    """

    def __init__(self, moments: Tensor):
        if moments.ndim < 2 or moments.shape[1] % 2:
            raise ConfigError(
                "moments must have an even number of channels on axis 1 (mean and log-variance), "
                f"got shape {tuple(moments.shape)}"
            )
        self.mean, logvar = torch.chunk(moments, 2, dim=1)
        self.logvar = torch.clamp(logvar, LOGVAR_MIN, LOGVAR_MAX)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``mean + std * n`` with ``n ~ N(0, I)`` from ``generator``."""
        noise = torch.randn(
            self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype
        )
        return self.mean + self.std * noise

    def mode(self) -> Tensor:
        """The mean (PreDiff encodes its conditioning context with it)."""
        return self.mean

    def kl(self) -> Tensor:
        """KL divergence to ``N(0, I)``, summed over ``(l, h, w)``: shape ``"b"``."""
        return 0.5 * torch.sum(self.mean**2 + self.var - 1.0 - self.logvar, dim=(1, 2, 3))


@dataclass(frozen=True)
class AutoencoderKLConfig:
    """Architecture of :class:`AutoencoderKL`. Defaults are PreDiff's SEVIR-LR VAE.

    Parameters
    ----------
    in_channels, out_channels : int
        Frame channels in and out.
    block_out_channels : tuple of int
        Width of each resolution level; ``len - 1`` halvings of H and W.
    layers_per_block : int
        ResNet blocks per encoder level (the decoder uses one more).
    latent_channels : int
        Channels of the latent grid.
    norm_num_groups : int
        GroupNorm groups; must divide every width.
    """

    in_channels: int = 1
    out_channels: int = 1
    block_out_channels: tuple[int, ...] = field(default=(128, 256, 512, 512))
    layers_per_block: int = 2
    latent_channels: int = 64
    norm_num_groups: int = 32

    def __post_init__(self) -> None:
        widths = tuple(self.block_out_channels)
        object.__setattr__(self, "block_out_channels", widths)
        for name in (
            "in_channels",
            "out_channels",
            "layers_per_block",
            "latent_channels",
            "norm_num_groups",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
            raise ConfigError(
                f"block_out_channels must be a non-empty sequence of positive ints, got {widths!r}"
            )
        bad = [w for w in widths if w % self.norm_num_groups]
        if bad:
            raise ConfigError(
                f"norm_num_groups={self.norm_num_groups} must divide every block width, "
                f"but not {bad} (block_out_channels={widths})"
            )

    @property
    def downsampling_factor(self) -> int:
        """Spatial factor between frames and latents (8 for the official VAE)."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping[str, Any]) -> AutoencoderKLConfig:
        """Translate the official ``AutoencoderKL(**kwargs)`` arguments.

        Only ``DownEncoderBlock2D`` / ``UpDecoderBlock2D`` blocks and the ``silu`` activation
        exist in PreDiff; ``sample_size`` and ``scaling_factor`` are accepted and ignored (the
        official code does not use them either).
        """
        kwargs = dict(kwargs)
        for key in _IGNORED_OFFICIAL_KWARGS:
            kwargs.pop(key, None)
        act_fn = kwargs.pop("act_fn", "silu")
        if act_fn not in ("silu", "swish"):
            raise ConfigError(f"act_fn must be 'silu' (the only one PreDiff uses), got {act_fn!r}")
        widths = tuple(kwargs.pop("block_out_channels", cls.block_out_channels))
        for key, expected in (
            ("down_block_types", "DownEncoderBlock2D"),
            ("up_block_types", "UpDecoderBlock2D"),
        ):
            types = kwargs.pop(key, (expected,) * len(widths))
            if len(types) != len(widths) or any(t != expected for t in types):
                raise ConfigError(
                    f"{key} must be {len(widths)} x {expected!r} (one per block_out_channels "
                    f"entry), got {list(types)!r}"
                )
        known = {f for f in cls.__dataclass_fields__ if f != "block_out_channels"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            accepted = known | {
                "block_out_channels",
                "act_fn",
                "down_block_types",
                "up_block_types",
                *_IGNORED_OFFICIAL_KWARGS,
            }
            raise ConfigError(
                f"unknown AutoencoderKL kwargs {unknown}; expected some of {sorted(accepted)}"
            )
        return cls(block_out_channels=widths, **kwargs)


class AutoencoderKL(nn.Module):
    """PreDiff's frame autoencoder (``encoder``, ``quant_conv``, ``post_quant_conv``, ``decoder``).

    Parameters
    ----------
    config : AutoencoderKLConfig, optional
        Architecture; the official SEVIR-LR VAE (84.5 M parameters) by default.

    Examples
    --------
    >>> config = AutoencoderKLConfig(block_out_channels=(8, 16), latent_channels=4,
    ...                              norm_num_groups=4, layers_per_block=1)
    >>> vae = AutoencoderKL(config).eval()
    >>> x = torch.zeros(2, 1, 8, 12)              # "b c h w"
    >>> posterior = vae.encode(x)
    >>> posterior.mean.shape                      # "b l (h/2) (w/2)"
    torch.Size([2, 4, 4, 6])
    >>> vae.decode(posterior.mode()).shape
    torch.Size([2, 1, 8, 12])
    """

    def __init__(self, config: AutoencoderKLConfig | None = None):
        super().__init__()
        self.config = config = config or AutoencoderKLConfig()
        common = {"layers_per_block": config.layers_per_block, "groups": config.norm_num_groups}
        self.encoder = Encoder(
            config.in_channels, config.latent_channels, config.block_out_channels, **common
        )
        self.decoder = Decoder(
            config.latent_channels, config.out_channels, config.block_out_channels, **common
        )
        self.quant_conv = nn.Conv2d(2 * config.latent_channels, 2 * config.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)

    @classmethod
    def from_official_kwargs(cls, kwargs: Mapping[str, Any]) -> AutoencoderKL:
        """Build from the official constructor kwargs (e.g. ``vae_sevirlr_v1.yaml``'s)."""
        return cls(AutoencoderKLConfig.from_official_kwargs(kwargs))

    def official_kwargs(self) -> dict[str, Any]:
        """The official constructor kwargs of this architecture (inverse of the above)."""
        kwargs = asdict(self.config)
        levels = len(self.config.block_out_channels)
        kwargs["block_out_channels"] = list(self.config.block_out_channels)
        kwargs.update(
            act_fn="silu",
            down_block_types=["DownEncoderBlock2D"] * levels,
            up_block_types=["UpDecoderBlock2D"] * levels,
        )
        return kwargs

    def _check_frames(self, x: Tensor, channels: int, name: str) -> None:
        factor = self.config.downsampling_factor if name == "x" else 1
        if x.ndim != 4 or x.shape[1] != channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ConfigError(
                f"{name} must be frames 'b c h w' with c={channels}"
                + (f" and h, w multiples of {factor}" if factor > 1 else "")
                + f", got shape {tuple(x.shape)}; a video 'b t h w c' must first be rearranged "
                "to '(b t) c h w'"
            )

    def encode(self, x: Tensor) -> DiagonalGaussianDistribution:
        """Frames ``"b c h w"`` to the latent posterior (``"b l (h/f) (w/f)"`` moments)."""
        self._check_frames(x, self.config.in_channels, "x")
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def decode(self, z: Tensor) -> Tensor:
        """Latents ``"b l h w"`` to frames ``"b c (h*f) (w*f)"`` (no output activation)."""
        self._check_frames(z, self.config.latent_channels, "z")
        return self.decoder(self.post_quant_conv(z))

    def forward(
        self,
        x: Tensor,
        *,
        sample_posterior: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Reconstruct frames: ``decode(posterior.mode())``, or a posterior sample if asked."""
        posterior = self.encode(x)
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z)
