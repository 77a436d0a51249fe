"""Diffusion-time conditioning of PreDiff's Earthformer-UNet and alignment network.

* :func:`timestep_embedding`: the official sinusoidal embedding, ``[cos, sin]`` order,
  **always computed in float32** (as the official code does); cast it to the model dtype after.
* :class:`TimeEmbedLayer`: ``layer = [Linear(base, 4 base), SiLU, Linear(4 base, 4 base)]``.
* :class:`TimeEmbedResBlock`: the 3-D residual block that adds the embedding (also used without
  embedding as ``first_proj``).

Parameter names are the official ones (``in_layers.{0,2}``, ``emb_layers.1``,
``out_layers.{0,3}``, ``skip_connection``; ``layer.{0,2}``), so the blocks load from official
``state_dict`` sub-dicts with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from xearthformer.nn._validation import ConfigError

__all__ = ["TimeEmbedLayer", "TimeEmbedResBlock", "official_group_count", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of diffusion steps, float32, ``[cos(t f_i), sin(t f_i)]``.

    ``f_i = exp(-ln(max_period) * i / (dim // 2))`` for ``i = 0 .. dim//2 - 1``; an odd ``dim``
    gets one trailing zero column.

    Parameters
    ----------
    t : Tensor
        ``"b"`` integer (or fractional) steps.
    dim : int
        Embedding width.
    max_period : float
        Controls the lowest frequency.

    Returns
    -------
    Tensor
        ``"b dim"``, float32 whatever the dtype of ``t``. The official code computes it in float32
        even in a float64 model; cast the result (``.to(dtype)``) to reproduce it.

    Examples
    --------
    >>> emb = timestep_embedding(torch.tensor([0, 10]), 4)
    >>> emb.dtype, emb[0].tolist()
    (torch.float32, [1.0, 1.0, 0.0, 0.0])
    """
    if t.ndim != 1:
        raise ConfigError(f"t must be a 1-D tensor of steps 'b', got shape {tuple(t.shape)}")
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"dim must be a positive int, got {dim!r}")
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def official_group_count(channels: int, preferred: int = 32) -> int:
    """GroupNorm groups of the official ResBlocks: ``32 if C % 32 == 0 else C``.

    >>> official_group_count(64), official_group_count(65)
    (32, 65)
    """
    return preferred if channels % preferred == 0 else channels


class TimeEmbedLayer(nn.Module):
    """MLP on the sinusoidal embedding: ``layer = [Linear, SiLU, Linear]``.

    Examples
    --------
    >>> mlp = TimeEmbedLayer(8, 32)
    >>> mlp(timestep_embedding(torch.tensor([3, 7]), 8)).shape
    torch.Size([2, 32])
    """

    def __init__(self, base_channels: int, time_embed_channels: int):
        super().__init__()
        self.layer = nn.Sequential(
            nn.Linear(base_channels, time_embed_channels),
            nn.SiLU(),
            nn.Linear(time_embed_channels, time_embed_channels),
        )

    def forward(self, emb: Tensor) -> Tensor:  # "b base" -> "b e"
        return self.layer(emb)


class TimeEmbedResBlock(nn.Module):
    """Residual 3-D conv block, optionally conditioned on a time embedding.

    ``h = in_layers(x)``: GroupNorm -> SiLU -> Conv3d(k3) to ``out_channels``; then, with an
    embedding, ``h = h + emb_layers(emb)`` (``[SiLU, Linear]``, broadcast over T, H, W);
    ``h = out_layers(h)``: GroupNorm -> SiLU -> Dropout -> Conv3d(k3); output
    ``skip_connection(x) + h`` where the skip is the identity, or a 1x1x1 Conv3d when the channel
    count changes. GroupNorms have ``32 if C % 32 == 0 else C`` groups (eps 1e-5).

    Tensors are ``"b t h w c"`` at the interface (the package layout); the convolutions run in
    ``"b c t h w"`` internally.

    Parameters
    ----------
    channels : int
        Input channels.
    emb_channels : int or None
        Width of the time embedding; ``None`` gives a plain ResBlock (``first_proj``).
    out_channels : int, optional
        Output channels (default ``channels``).
    dropout : float
        Dropout in ``out_layers`` (0 in PreDiff's ResBlocks; eval mode switches it off anyway).
    use_scale_shift_norm : bool
        FiLM conditioning ``norm(h) * (1 + scale) + shift`` instead of addition (False in
        PreDiff; ``emb_layers`` then outputs ``2 * out_channels``).

    Examples
    --------
    >>> block = TimeEmbedResBlock(8, emb_channels=16).eval()
    >>> x = torch.zeros(2, 3, 4, 5, 8)          # "b t h w c"
    >>> emb = torch.zeros(2, 16)                # "b e"
    >>> block(x, emb).shape
    torch.Size([2, 3, 4, 5, 8])
    >>> TimeEmbedResBlock(5, emb_channels=None, out_channels=8)(torch.zeros(1, 2, 3, 3, 5)).shape
    torch.Size([1, 2, 3, 3, 8])
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int | None,
        out_channels: int | None = None,
        *,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = False,
    ):
        super().__init__()
        out_channels = out_channels or channels
        for name, value in (("channels", channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if emb_channels is not None and (not isinstance(emb_channels, int) or emb_channels < 1):
            raise ConfigError(f"emb_channels must be a positive int or None, got {emb_channels!r}")
        self.channels, self.out_channels = channels, out_channels
        self.emb_channels = emb_channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(
            nn.GroupNorm(official_group_count(channels), channels),
            nn.SiLU(),
            nn.Conv3d(channels, out_channels, 3, padding=1),
        )
        if emb_channels is not None:
            self.emb_layers = nn.Sequential(
                nn.SiLU(),
                nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels),
            )
        self.out_layers = nn.Sequential(
            nn.GroupNorm(official_group_count(out_channels), out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv3d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv3d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        """``x: "b t h w c"``, ``emb: "b e"`` (required iff built with ``emb_channels``)."""
        if x.ndim != 5 or x.shape[-1] != self.channels:
            raise ConfigError(
                f"x must be 'b t h w c' with c={self.channels}, got shape {tuple(x.shape)}"
            )
        if (emb is None) != (self.emb_channels is None):
            raise ConfigError(
                "emb must be given exactly when the block has emb_channels "
                f"(emb_channels={self.emb_channels}, emb given: {emb is not None})"
            )
        # contiguous: torch 2.13's CPU GroupNorm backward crashes on a channels-last 5-D input
        x = rearrange(x, "b t h w c -> b c t h w").contiguous()
        h = self.in_layers(x)
        if emb is None:
            h = self.out_layers(h)
        else:
            emb_out = rearrange(self.emb_layers(emb).to(h.dtype), "b c -> b c 1 1 1")
            if self.use_scale_shift_norm:
                scale, shift = torch.chunk(emb_out, 2, dim=1)
                h = self.out_layers[0](h) * (1 + scale) + shift
                h = self.out_layers[1:](h)
            else:
                h = self.out_layers(h + emb_out)
        return rearrange(self.skip_connection(x) + h, "b c t h w -> b t h w c")
