"""Attention-pooling readout of PreDiff's knowledge-alignment network (``out`` in the official net).

The alignment network ends with ``out = [GroupNorm(min(32, C), C), SiLU, AttentionPool3d]``,
applied to each of the last ``out_len`` frames: the ``h*w`` tokens of a frame get the mean token
prepended, a learned ``positional_embedding`` (C, h*w + 1) added, a 1x1 ``qkv_proj`` conv, a
multi-head :class:`QKVAttention`, a 1x1 ``c_proj`` conv, and token 0 is kept.

:class:`AttentionReadout` keeps the official indices (``0`` GroupNorm, ``2`` pool), so
``self.out = AttentionReadout(...)`` in the alignment net gives the official keys
``out.0.{weight,bias}``, ``out.2.positional_embedding``, ``out.2.qkv_proj.*``, ``out.2.c_proj.*``.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from xearthformer.nn._validation import ConfigError

__all__ = ["AttentionPool3d", "AttentionReadout", "QKVAttention"]


class QKVAttention(nn.Module):
    """Multi-head attention over a packed ``[q | k | v]`` channel axis (guided-diffusion style).

    ``qkv`` is ``"n (3 heads d) l"``: q, k and v are its three contiguous thirds, each split into
    heads as ``(heads d)``. Both q and k are scaled by ``d ** -0.25``. As in the official code the
    softmax is computed in float32 and cast back, whatever the input dtype; a float64 run
    therefore reproduces the official float64 reference only with ``float32_softmax=True``.

    Examples
    --------
    >>> attention = QKVAttention(num_heads=2)
    >>> attention(torch.zeros(3, 3 * 8, 5)).shape    # "n (3 heads d) l" -> "n (heads d) l"
    torch.Size([3, 8, 5])
    """

    def __init__(self, num_heads: int, *, float32_softmax: bool = True):
        super().__init__()
        if not isinstance(num_heads, int) or num_heads < 1:
            raise ConfigError(f"num_heads must be a positive int, got {num_heads!r}")
        self.num_heads = num_heads
        self.float32_softmax = float32_softmax

    def forward(self, qkv: Tensor) -> Tensor:
        width = qkv.shape[1]
        if qkv.ndim != 3 or width % (3 * self.num_heads):
            raise ConfigError(
                f"qkv must be 'n (3 heads d) l' with its width divisible by 3 * {self.num_heads}, "
                f"got shape {tuple(qkv.shape)}"
            )
        q, k, v = (
            rearrange(part, "n (heads d) l -> n heads d l", heads=self.num_heads)
            for part in qkv.chunk(3, dim=1)
        )
        scale = q.shape[2] ** -0.25
        scores = torch.einsum("nhds,nhdl->nhsl", q * scale, k * scale)
        if self.float32_softmax:
            weights = torch.softmax(scores.float(), dim=-1).to(scores.dtype)
        else:
            weights = torch.softmax(scores, dim=-1)
        out = torch.einsum("nhsl,nhdl->nhds", weights, v)
        return rearrange(out, "n heads d l -> n (heads d) l")


class AttentionPool3d(nn.Module):
    """CLIP-style attention pooling of ``data_dim`` tokens to one vector.

    Parameters
    ----------
    data_dim : int
        Number of tokens pooled (``h * w`` of a frame in PreDiff's readout).
    embed_dim : int
        Token channels C.
    num_heads : int
        Attention heads (C must be divisible by it).
    output_dim : int, optional
        Output channels of ``c_proj`` (default ``embed_dim``).

    Examples
    --------
    >>> pool = AttentionPool3d(data_dim=6, embed_dim=8, num_heads=2, output_dim=1)
    >>> pool(torch.zeros(4, 8, 2, 3)).shape     # "n c ..." with prod(...) == data_dim -> "n o"
    torch.Size([4, 1])
    """

    def __init__(
        self, data_dim: int, embed_dim: int, num_heads: int, output_dim: int | None = None
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ConfigError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        self.data_dim = data_dim
        # drawn at construction like the official one (randn / sqrt(C)); a checkpoint overwrites it
        self.positional_embedding = nn.Parameter(
            torch.randn(embed_dim, data_dim + 1) / embed_dim**0.5
        )
        self.qkv_proj = nn.Conv1d(embed_dim, 3 * embed_dim, 1)
        self.c_proj = nn.Conv1d(embed_dim, output_dim or embed_dim, 1)
        self.attention = QKVAttention(num_heads)

    def forward(self, x: Tensor) -> Tensor:  # "n c ..." -> "n o"
        x = x.flatten(2)
        if x.shape[2] != self.data_dim:
            raise ConfigError(
                f"x must hold data_dim={self.data_dim} tokens per sample, got {x.shape[2]} "
                f"(input flattened to {tuple(x.shape)})"
            )
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1)  # "n c (1 + l)"
        x = x + self.positional_embedding.to(x.dtype)
        x = self.c_proj(self.attention(self.qkv_proj(x)))
        return x[:, :, 0]


class AttentionReadout(nn.Sequential):
    """Per-frame readout ``[GroupNorm(min(32, C)), SiLU, AttentionPool3d]`` of the alignment net.

    Parameters
    ----------
    height, width : int
        Spatial size of the last level's feature map (8 x 8 for the official net).
    channels : int
        Channels of that feature map (256 for the official net).
    num_heads : int
        Heads of the pooling attention (the net's ``num_heads``, 4).
    out_channels : int
        Quantities predicted per frame (1: the mean intensity).

    Examples
    --------
    >>> readout = AttentionReadout(height=2, width=3, channels=8, num_heads=2, out_channels=1)
    >>> sorted(readout.state_dict())[:3]
    ['0.bias', '0.weight', '2.c_proj.bias']
    >>> readout(torch.zeros(5, 4, 2, 3, 8), out_len=2).shape   # "b t h w c" -> "b out_len o"
    torch.Size([5, 2, 1])
    """

    def __init__(
        self, *, height: int, width: int, channels: int, num_heads: int, out_channels: int = 1
    ):
        super().__init__(
            nn.GroupNorm(min(32, channels), channels),
            nn.SiLU(),
            AttentionPool3d(height * width, channels, num_heads, out_channels),
        )

    def forward(self, x: Tensor, out_len: int | None = None) -> Tensor:
        """Read out ``x: "b t h w c"`` frame by frame -> ``"b t' o"`` (last ``out_len`` frames)."""
        if x.ndim != 5:
            raise ConfigError(f"x must be 'b t h w c', got shape {tuple(x.shape)}")
        if out_len is not None:
            if not 1 <= out_len <= x.shape[1]:
                raise ConfigError(f"out_len must be in [1, {x.shape[1]}], got {out_len!r}")
            x = x[:, -out_len:]
        batch = x.shape[0]
        tokens = rearrange(x, "b t h w c -> (b t) c (h w)")
        for module in self:
            tokens = module(tokens)
        return rearrange(tokens, "(b t) o -> b t o", b=batch)
