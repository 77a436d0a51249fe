"""The full-resolution ends of Earthformer: initial encoders and final decoders.

``conv`` type (ENSO): Conv3x3-GroupNorm(16)-act stacks then one patch merge; the final
decoder upsamples first, then convolves. ``stack_conv`` type (SEVIR): several
(convs, patch merge) stages, undone in reverse by (upsample, convs) stages. Convolutions
run per frame on channels-last data (the "b t h w c" layout is already channels-last).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from ..nn._validation import ConfigError
from ..nn.layers import PatchMerging3D, Upsample3DLayer, conv_norm_act_block


def _per_frame(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D conv block to every frame of "b t h w c" (channels-last, no copy in).

    A one-channel input is both channels-first and channels-last, and convolutions then
    answer channels-first, which would make the rest of the block and the patch merge run
    on the slower layout: convolution outputs are kept channels-last.
    """
    b = x.shape[0]
    y = rearrange(x, "b t h w c -> (b t) c h w")
    for layer in block:
        y = layer(y)
        if isinstance(layer, nn.Conv2d) and not y.is_contiguous(memory_format=torch.channels_last):
            y = y.contiguous(memory_format=torch.channels_last)
    return rearrange(y, "(b t) c h w -> b t h w c", b=b)


def _merge_factor(scale: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(scale, int):
        return (1, scale, scale)
    if len(scale) == 2:
        return (1, *scale)
    if len(scale) == 3:
        return tuple(scale)
    raise ConfigError(f"initial_downsample_scale must be an int, (h, w) or (t, h, w), got {scale!r}")


class InitialEncoder(nn.Module):
    """``conv_block`` (Conv3x3 -> GroupNorm(16) -> act, repeated) then ``patch_merge``."""

    def __init__(self, dim: int, out_dim: int, downsample_scale: int | Sequence[int], num_conv_layers: int = 2,
                 activation: str = "leaky", padding_type: str = "nearest") -> None:
        super().__init__()
        self.num_conv_layers = num_conv_layers
        self.conv_block = conv_norm_act_block([dim] + [out_dim] * num_conv_layers, [16] * num_conv_layers,
                                              activation)
        self.patch_merge = PatchMerging3D(out_dim, out_dim, _merge_factor(downsample_scale),
                                          padding_type=padding_type)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_conv_layers > 0:
            x = _per_frame(self.conv_block, x)
        return self.patch_merge(x)


class FinalDecoder(nn.Module):
    """``upsample`` to the target (T, H, W) then ``conv_block`` (Conv3x3 -> GroupNorm(16) -> act)."""

    def __init__(self, target_thw: Sequence[int], dim: int, num_conv_layers: int = 2,
                 activation: str = "leaky") -> None:
        super().__init__()
        self.num_conv_layers = num_conv_layers
        self.conv_block = conv_norm_act_block([dim] * (num_conv_layers + 1), [16] * num_conv_layers, activation)
        self.upsample = Upsample3DLayer(dim, dim, target_thw, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.upsample(x)
        if self.num_conv_layers > 0:
            x = _per_frame(self.conv_block, x)
        return x


class InitialStackPatchMergingEncoder(nn.Module):
    """Stages of (convs with GroupNorm(max(1, C//4)) -> patch merge by ``(1, s, s)``)."""

    def __init__(self, num_merge: int, in_dim: int, out_dim_list: Sequence[int],
                 downsample_scale_list: Sequence[int], num_conv_per_merge_list: Sequence[int],
                 activation: str = "leaky", padding_type: str = "nearest") -> None:
        super().__init__()
        for name, values in (("initial_downsample_stack_conv_dim_list", out_dim_list),
                             ("initial_downsample_stack_conv_downscale_list", downsample_scale_list),
                             ("initial_downsample_stack_conv_num_conv_list", num_conv_per_merge_list)):
            if len(values) < num_merge:
                raise ConfigError(f"{name} needs {num_merge} entries (one per stage), got {list(values)}")
        self.out_dim_list = list(out_dim_list[:num_merge])
        self.num_conv_per_merge_list = list(num_conv_per_merge_list)
        self.conv_block_list = nn.ModuleList()
        self.patch_merge_list = nn.ModuleList()
        prev = in_dim
        for i in range(num_merge):
            out = self.out_dim_list[i]
            n_conv = num_conv_per_merge_list[i]
            self.conv_block_list.append(conv_norm_act_block([prev] + [out] * n_conv, [max(1, out // 4)] * n_conv,
                                                            activation))
            s = downsample_scale_list[i]
            self.patch_merge_list.append(PatchMerging3D(out, out, (1, s, s), padding_type=padding_type))
            prev = out

    def get_out_shape_list(self, input_shape: Sequence[int]) -> list[tuple[int, int, int, int]]:
        shapes = []
        for merge in self.patch_merge_list:
            input_shape = merge.get_out_shape(input_shape)
            shapes.append(input_shape)
        return shapes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for n_conv, conv_block, merge in zip(self.num_conv_per_merge_list, self.conv_block_list,
                                             self.patch_merge_list):
            if n_conv > 0:
                x = _per_frame(conv_block, x)
            x = merge(x)
        return x


class FinalStackUpsamplingDecoder(nn.Module):
    """Stages of (upsample -> convs), undoing :class:`InitialStackPatchMergingEncoder`."""

    def __init__(self, target_shape_list: Sequence[Sequence[int]], in_dim: int,
                 num_conv_per_up_list: Sequence[int], activation: str = "leaky") -> None:
        super().__init__()
        self.num_conv_per_up_list = list(num_conv_per_up_list)
        self.upsample_list = nn.ModuleList()
        self.conv_block_list = nn.ModuleList()
        prev = in_dim
        for target, n_conv in zip(target_shape_list, num_conv_per_up_list):
            out = target[-1]
            self.upsample_list.append(Upsample3DLayer(prev, prev, tuple(target[:-1]), kernel_size=3))
            self.conv_block_list.append(conv_norm_act_block([prev] + [out] * n_conv, [max(1, out // 4)] * n_conv,
                                                            activation))
            prev = out

    @staticmethod
    def get_init_params(enc_input_shape, enc_out_shape_list, large_channel: bool = False):
        """Target shapes of the decoder stages (the official "large channel" rule) and input width."""
        targets = list(enc_out_shape_list[:-1])[::-1] + [tuple(enc_input_shape)]
        if large_channel:
            targets = [tuple(t[:-1]) + (enc[-1],) for t, enc in zip(targets, enc_out_shape_list[::-1])]
        return targets, enc_out_shape_list[-1][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for n_conv, upsample, conv_block in zip(self.num_conv_per_up_list, self.upsample_list,
                                                self.conv_block_list):
            x = upsample(x)
            if n_conv > 0:
                x = _per_frame(conv_block, x)
        return x
