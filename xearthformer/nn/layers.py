"""Building blocks around the attention: norms, activations, FFN, positional embeddings,
patch merging and upsampling. Parameter names match the official Earthformer release."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ._validation import ConfigError, int_triple, one_of
from .cuboid import pad_amounts, pad_thw
from .dropout import FastDropout
from .execution import select_ffn
from .fast_linear import linear as fast_linear
from .upsample_conv import nearest_upsample_conv2d

NORMS = ("layer_norm", "rms_norm")
ACTIVATIONS = ("leaky", "gelu", "relu", "identity", "elu", "sigmoid", "tanh", "softplus", "softsign")
PADDINGS = ("ignore", "zeros", "nearest")


class RMSNorm(nn.Module):
    """Root-mean-square norm (official ``RMSNorm``: parameter ``scale``, eps added to the RMS)."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.d, self.eps = d, eps
        self.scale = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = x.norm(2, dim=-1, keepdim=True) * self.d ** -0.5
        return self.scale * (x / (rms + self.eps))


def make_norm(kind: str, channels: int, eps: float = 1e-5) -> nn.Module:
    """LayerNorm (eps 1e-5) or RMSNorm over the last axis."""
    one_of(kind, "norm_layer", NORMS)
    return nn.LayerNorm(channels, eps=eps) if kind == "layer_norm" else RMSNorm(channels, eps=eps)


def make_activation(kind: str, *, inplace: bool = False) -> nn.Module:
    """The official activation names; ``'leaky'`` is LeakyReLU(0.1), ``'gelu'`` the exact erf GELU.

    ``inplace=True`` (for an activation right after a normalisation, whose output nothing
    else keeps) lets LeakyReLU/ReLU/ELU overwrite their input, so that autograd keeps one
    tensor instead of two.
    """
    one_of(kind, "activation", ACTIVATIONS)
    if inplace and kind in ("leaky", "relu", "elu"):
        return {"leaky": lambda: nn.LeakyReLU(0.1, inplace=True), "relu": lambda: nn.ReLU(inplace=True),
                "elu": lambda: nn.ELU(inplace=True)}[kind]()
    return {
        "leaky": lambda: nn.LeakyReLU(0.1),
        "gelu": nn.GELU,
        "relu": nn.ReLU,
        "identity": nn.Identity,
        "elu": nn.ELU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "softplus": nn.Softplus,
        "softsign": nn.Softsign,
    }[kind]()


def make_dropout(p: float) -> nn.Module:
    """A dropout that costs nothing when ``p == 0`` and little on CPU otherwise."""
    return FastDropout(p) if p > 0 else nn.Identity()


class PositionwiseFFN(nn.Module):
    """Pre-norm FFN with its own residual: ``x + drop(ffn_2(drop(act(ffn_1(norm(x))))))``.

    Parameters
    ----------
    units, hidden_size
        Width of the input/output and of the hidden layer.
    dropout
        Dropout after the activation and after ``ffn_2`` (official ``ffn_drop``).
    gated_proj
        ``act(ffn_1_gate(x)) * ffn_1(x)`` instead of ``act(ffn_1(x))``.
    pre_norm
        Normalise before (True, every official config) or after the residual.
    """

    def __init__(self, units: int, hidden_size: int, *, dropout: float = 0.0, activation_dropout: float = 0.0,
                 gated_proj: bool = False, activation: str = "gelu", normalization: str = "layer_norm",
                 pre_norm: bool = True) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.gated_proj = gated_proj
        self.ffn_1 = nn.Linear(units, hidden_size)
        if gated_proj:
            self.ffn_1_gate = nn.Linear(units, hidden_size)
        self.activation = make_activation(activation)
        self.ffn_2 = nn.Linear(hidden_size, units)
        self.layer_norm = make_norm(normalization, units)
        self.activation_dropout_layer = make_dropout(activation_dropout)
        self.dropout_layer = make_dropout(dropout)

    def forward(self, x: torch.Tensor, *, overwrite_input: bool = False) -> torch.Tensor:
        """``x + ffn(norm(x))`` (pre-norm) or ``norm(x + ffn(x))``.

        ``overwrite_input=True`` lets the blocked inference path below write the result into
        ``x`` itself (for callers that own ``x`` and do not need it afterwards: the stacks,
        whose FFN input is the fresh sum of a residual). It spares a large fresh output.

        The maths is :func:`xearthformer.nn.reference.positionwise_ffn`; the strategy that
        computes a call (lean training FFN, blocked CPU inference, plain) is chosen by
        :func:`xearthformer.nn.execution.select_ffn`.
        """
        return select_ffn(self, x)(self, x, overwrite_input=overwrite_input)


class PosEmbed(nn.Module):
    """Learned additive space-time embedding: ``'t+h+w'`` (three tables) or ``'t+hw'``."""

    def __init__(self, embed_dim: int, max_t: int, max_h: int, max_w: int, typ: str = "t+h+w") -> None:
        super().__init__()
        self.typ = one_of(typ, "pos_embed_type", ("t+h+w", "t+hw"))
        self.max_w = max_w
        self.T_embed = nn.Embedding(max_t, embed_dim)
        if typ == "t+h+w":
            self.H_embed = nn.Embedding(max_h, embed_dim)
            self.W_embed = nn.Embedding(max_w, embed_dim)
        else:
            self.HW_embed = nn.Embedding(max_h * max_w, embed_dim)
        for emb in self.children():
            nn.init.trunc_normal_(emb.weight, std=0.02)

    def embedding(self, t: int, h: int, w: int) -> torch.Tensor:
        """The "t h w c" tensor that :meth:`forward` adds."""
        te = self.T_embed.weight[:t, None, None, :]
        if self.typ == "t+h+w":
            return te + self.H_embed.weight[None, :h, None, :] + self.W_embed.weight[None, None, :w, :]
        hw = self.HW_embed.weight.view(-1, self.max_w, te.shape[-1])[:h, :w]
        return te + hw[None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: "b t h w c"
        _, t, h, w, _ = x.shape
        return x + self.embedding(t, h, w)


class PatchMerging3D(nn.Module):
    """Merge each (dt, dh, dw) neighbourhood into channels, LayerNorm, then a bias-free Linear.

    The merged channel order is ``(dt, dh, dw, c)`` row-major (official order, not Swin's).
    """

    def __init__(self, dim: int, out_dim: int | None = None, downsample: Sequence[int] = (1, 2, 2),
                 norm_layer: str = "layer_norm", padding_type: str = "nearest") -> None:
        super().__init__()
        self.downsample = int_triple(tuple(downsample), "downsample")
        self.padding_type = one_of(padding_type, "padding_type", PADDINGS)
        self.dim = dim
        self.out_dim = out_dim if out_dim is not None else max(self.downsample) * dim
        factor = self.downsample[0] * self.downsample[1] * self.downsample[2]
        self.reduction = nn.Linear(factor * dim, self.out_dim, bias=False)
        self.norm = make_norm(norm_layer, factor * dim)

    def get_out_shape(self, data_shape: Sequence[int]) -> tuple[int, int, int, int]:
        """Output (T, H, W, C) for an input of (T, H, W, C)."""
        t, h, w = data_shape[:3]
        pads = pad_amounts((t, h, w), self.downsample)
        dt, dh, dw = self.downsample
        return (t + pads[0]) // dt, (h + pads[1]) // dh, (w + pads[2]) // dw, self.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: "b t h w c"
        _, t, h, w, _ = x.shape
        pad_t, pad_h, pad_w = pad_amounts((t, h, w), self.downsample)
        if pad_h or pad_w:  # the official test ignores pad_t (``if pad_h or pad_h or pad_w``)
            x = pad_thw(x, (pad_t, pad_h, pad_w), self.padding_type)
        dt, dh, dw = self.downsample
        x = rearrange(x, "b (t dt) (h dh) (w dw) c -> b t h w (dt dh dw c)", dt=dt, dh=dh, dw=dw)
        return fast_linear(self.norm(x), self.reduction.weight, self.reduction.bias)


class Upsample3DLayer(nn.Module):
    """Per-frame nearest resize to ``target_size[1:]`` (legacy ``'nearest'``) then a Conv2d.

    Parameters
    ----------
    dim, out_dim
        Channels in and out of the convolution.
    target_size
        (T, H, W) of the output; T must equal the input's (no temporal upsampling).
    """

    def __init__(self, dim: int, out_dim: int, target_size: Sequence[int], kernel_size: int = 3) -> None:
        super().__init__()
        self.target_size = int_triple(tuple(target_size), "target_size")
        self.out_dim = out_dim
        self.conv = nn.Conv2d(dim, out_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: "b t h w c"
        b, t, h, w, c = x.shape
        if t != self.target_size[0]:
            raise ConfigError(f"Upsample3DLayer expects {self.target_size[0]} frames, got {t}")
        out = self.upsample_frames(rearrange(x, "b t h w c -> (b t) c h w"))
        return rearrange(out, "(b t) c h w -> b t h w c", b=b)

    def upsample_frames(self, frames: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """The layer on frames "n c h w" (any number of them): "n out_dim H W".

        ``out`` is an optional contiguous "n H W out_dim" buffer for the result, used when
        the enlargement is by whole factors (else ignored).
        """
        scale = self._fast_scale(frames.shape[-2:])
        if scale is not None:
            # the same maths without the enlarged copy, on 31-44% of the multiplies
            return nearest_upsample_conv2d(frames, self.conv.weight, self.conv.bias, scale, out=out)
        return self.conv(F.interpolate(frames, size=self.target_size[1:], mode="nearest"))

    def uses_whole_factors(self, hw: Sequence[int]) -> bool:
        """Whether frames of size ``hw`` take the upsampled-convolution path (which takes ``out``)."""
        return self._fast_scale(hw) is not None

    def _fast_scale(self, hw: Sequence[int]) -> tuple[int, int] | None:
        """The whole factors (both >= 2) of :func:`nearest_upsample_conv2d`, or None."""
        scale = _whole_scale(tuple(hw), self.target_size[1:])
        same_padded = self.conv.padding == (self.conv.kernel_size[0] // 2, self.conv.kernel_size[1] // 2)
        return scale if scale is not None and min(scale) >= 2 and same_padded else None


def _whole_scale(size: Sequence[int], target: Sequence[int]) -> tuple[int, int] | None:
    """The integer enlargement factors from ``size`` to ``target``, or None if not whole."""
    if any(t % s for s, t in zip(size, target)):
        return None
    return tuple(t // s for s, t in zip(size, target))


def conv_norm_act_block(channels: Sequence[int], groups: Sequence[int], activation: str) -> nn.Sequential:
    """[Conv2d 3x3 -> GroupNorm -> activation] * n, indices 0,1,2 / 3,4,5 / ... as official.

    ``channels`` lists n+1 widths (input first), ``groups`` the n GroupNorm group counts.
    """
    layers: list[nn.Module] = []
    for c_in, c_out, g in zip(channels[:-1], channels[1:], groups):
        if c_out % g:
            raise ConfigError(f"GroupNorm with {g} groups needs a width divisible by {g}, got {c_out}")
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(g, c_out),
                   make_activation(activation, inplace=True)]
    return nn.Sequential(*layers)
