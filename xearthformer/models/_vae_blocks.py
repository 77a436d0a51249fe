"""Building blocks of the PreDiff autoencoder (diffusers-0.13 layout and parameter names).

Every module here keeps the attribute names of the legacy diffusers release that PreDiff
vendored (``prediff.taming``), so an official ``state_dict`` loads with ``strict=True``:
``resnets.{i}.{norm1,conv1,norm2,conv2,conv_shortcut}``, ``downsamplers.0.conv``,
``upsamplers.0.conv`` and the mid-block attention ``attentions.0.{group_norm,query,key,value,
proj_attn}``. All tensors are single frames in ``"b c h w"`` layout.

The behaviour matches the official code, including its quirks:

* down-sampling pads one zero row/column on the bottom/right, then a stride-2 3x3 conv without
  padding (``Downsample2D`` with ``padding=0``);
* up-sampling is legacy ``nearest`` x2 followed by a 3x3 conv;
* the mid-block attention is single-head, scale ``1/sqrt(C)``, softmax in float32;
* every GroupNorm of the VAE uses ``eps=1e-6``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

VAE_NORM_EPS = 1e-6


class ResnetBlock2D(nn.Module):
    """Pre-norm residual block without time embedding: ``x + conv(act(norm(conv(act(norm(x))))))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel widths; a 1x1 ``conv_shortcut`` is created when they differ.
    groups : int
        GroupNorm groups (both norms).
    dropout : float
        Dropout before the second conv (0 in PreDiff).

    Examples
    --------
    >>> block = ResnetBlock2D(4, 8, groups=2)
    >>> block(torch.zeros(1, 4, 6, 6)).shape
    torch.Size([1, 8, 6, 6])
    """

    def __init__(self, in_channels: int, out_channels: int, *, groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=VAE_NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=VAE_NORM_EPS)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = (
            nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None
        )

    def forward(self, x: Tensor) -> Tensor:  # "b c h w" -> "b c' h w"
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + h


class Downsample2D(nn.Module):
    """Halve H and W: zero-pad right/bottom by one, then a 3x3 stride-2 conv (``padding=0``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:  # "b c h w" -> "b c (h/2) (w/2)"
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    """Double H and W: legacy nearest interpolation, then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # "b c h w" -> "b c (2 h) (2 w)"
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention with residual (diffusers-0.13 ``AttentionBlock``).

    GroupNorm, then Linear ``query``/``key``/``value`` over the ``h*w`` tokens, softmax of
    ``q k^T / sqrt(C)`` computed in float32 (as the official code does, whatever the input
    dtype), Linear ``proj_attn``, plus the input.

    Examples
    --------
    >>> attn = AttentionBlock(8, groups=2)
    >>> attn(torch.zeros(2, 8, 3, 5)).shape
    torch.Size([2, 8, 3, 5])
    """

    def __init__(self, channels: int, *, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=VAE_NORM_EPS)
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        self.proj_attn = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:  # "b c h w" -> "b c h w"
        _, channels, height, _ = x.shape
        tokens = rearrange(self.group_norm(x), "b c h w -> b (h w) c")
        q, k, v = self.query(tokens), self.key(tokens), self.value(tokens)
        scores = torch.einsum("bic,bjc->bij", q, k) * (1.0 / math.sqrt(channels))
        weights = torch.softmax(scores.float(), dim=-1).to(scores.dtype)
        out = self.proj_attn(torch.einsum("bij,bjc->bic", weights, v))
        return x + rearrange(out, "b (h w) c -> b c h w", h=height)


class UNetMidBlock2D(nn.Module):
    """Bottleneck: ``resnets.0`` -> ``attentions.0`` -> ``resnets.1`` (constant width)."""

    def __init__(self, channels: int, *, groups: int):
        super().__init__()
        self.attentions = nn.ModuleList([AttentionBlock(channels, groups=groups)])
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(channels, channels, groups=groups) for _ in range(2)]
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnets[0](x)
        for attention, resnet in zip(self.attentions, self.resnets[1:], strict=True):
            x = resnet(attention(x))
        return x


class DownEncoderBlock2D(nn.Module):
    """``num_layers`` ResNet blocks, then (optionally) ``downsamplers.0``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, num_layers: int, groups: int, downsample: bool
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups=groups)
                for i in range(num_layers)
            ]
        )
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)]) if downsample else None

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for downsampler in self.downsamplers or ():
            x = downsampler(x)
        return x


class UpDecoderBlock2D(nn.Module):
    """``num_layers`` ResNet blocks, then (optionally) ``upsamplers.0``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, num_layers: int, groups: int, upsample: bool
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            [
                ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups=groups)
                for i in range(num_layers)
            ]
        )
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if upsample else None

    def forward(self, x: Tensor) -> Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        for upsampler in self.upsamplers or ():
            x = upsampler(x)
        return x


class Encoder(nn.Module):
    """Frames to the moments of the latent Gaussian (before ``quant_conv``).

    ``conv_in`` -> down blocks (all but the last halve H, W) -> ``mid_block`` ->
    GroupNorm -> SiLU -> ``conv_out`` to ``2 * latent_channels`` (mean and log-variance).
    """

    def __init__(
        self,
        in_channels: int,
        latent_channels: int,
        block_out_channels: Sequence[int],
        *,
        layers_per_block: int,
        groups: int,
    ):
        super().__init__()
        widths = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            [
                DownEncoderBlock2D(
                    widths[max(i - 1, 0)],
                    width,
                    num_layers=layers_per_block,
                    groups=groups,
                    downsample=i < len(widths) - 1,
                )
                for i, width in enumerate(widths)
            ]
        )
        self.mid_block = UNetMidBlock2D(widths[-1], groups=groups)
        self.conv_norm_out = nn.GroupNorm(groups, widths[-1], eps=VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(widths[-1], 2 * latent_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # "b c h w" -> "b (2 l) (h/f) (w/f)"
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """Latents (after ``post_quant_conv``) to frames.

    ``conv_in`` -> ``mid_block`` -> up blocks with ``layers_per_block + 1`` ResNets each (all but
    the last double H, W) -> GroupNorm -> SiLU -> ``conv_out``. No output activation.
    """

    def __init__(
        self,
        latent_channels: int,
        out_channels: int,
        block_out_channels: Sequence[int],
        *,
        layers_per_block: int,
        groups: int,
    ):
        super().__init__()
        widths = list(reversed(block_out_channels))
        self.conv_in = nn.Conv2d(latent_channels, widths[0], 3, padding=1)
        self.up_blocks = nn.ModuleList(
            [
                UpDecoderBlock2D(
                    widths[max(i - 1, 0)],
                    width,
                    num_layers=layers_per_block + 1,
                    groups=groups,
                    upsample=i < len(widths) - 1,
                )
                for i, width in enumerate(widths)
            ]
        )
        self.mid_block = UNetMidBlock2D(widths[0], groups=groups)  # registered after, as upstream
        self.conv_norm_out = nn.GroupNorm(groups, widths[-1], eps=VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:  # "b l h w" -> "b c (h*f) (w*f)"
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))
