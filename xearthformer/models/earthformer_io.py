"""The full-resolution ends of Earthformer: initial encoders and final decoders.

``conv`` type (ENSO): Conv3x3-GroupNorm(16)-act stacks then one patch merge; the final
decoder upsamples first, then convolves. ``stack_conv`` type (SEVIR): several
(convs, patch merge) stages, undone in reverse by (upsample, convs) stages. Convolutions
run per frame on channels-last data (the "b t h w c" layout is already channels-last).

Frames are independent in all of these (per-frame convolutions and GroupNorm, patch merges
that do not span frames), so CPU inference runs them over chunks of frames: at SEVIR's
384x384 the whole-batch intermediates are 100-450 MB each, which glibc maps afresh and the
kernel faults in page by page on every call, where a chunk's are reused heap blocks
(``benchmarks/bench_fast_paths.py``, switch ``frame_chunks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from einops import rearrange
from torch import nn

from ..nn._validation import ConfigError
from ..nn.layers import PatchMerging3D, Upsample3DLayer, conv_norm_act_block
from ..nn.lean import row_slices
from ..nn.upsample_conv import channels_last_view


def _per_frame(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D conv block to every frame of "b t h w c" (channels-last, no copy in)."""
    b = x.shape[0]
    y = _conv_frames(block, rearrange(x, "b t h w c -> (b t) c h w"))
    return rearrange(y, "(b t) c h w -> b t h w c", b=b)


def _conv_frames(block: nn.Sequential, y: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D conv block to frames "n c h w", keeping them channels-last.

    A one-channel input is both channels-first and channels-last, and convolutions then
    answer channels-first, which would make the rest of the block and the patch merge run
    on the slower layout: convolution outputs are kept channels-last.
    """
    y = channels_last_view(y)
    for layer in block:
        y = layer(y)
        if isinstance(layer, nn.Conv2d) and not y.is_contiguous(memory_format=torch.channels_last):
            y = y.contiguous(memory_format=torch.channels_last)
    return y


#: Largest intermediate (bytes) of one chunk of frames when the full-resolution stacks run
#: chunk by chunk (CPU inference), half glibc's 32 MiB mmap threshold: blocks below it come from
#: memory it already holds, where larger ones are mapped, page-faulted in and unmapped on
#: every call.
FRAME_CHUNK_BYTES = 16 << 20


def _needs_grad(module: nn.Module, x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in module.parameters()))


def _frame_chunks(module: nn.Module, x: torch.Tensor, frame_bytes: int) -> list[slice] | None:
    """Chunks of the ``b * t`` frames of "b t h w c" ``x`` for CPU inference, or None to
    run them all at once (autograd, another device, or a single chunk)."""
    if x.device.type != "cpu" or _needs_grad(module, x):
        return None
    chunks = row_slices(x.shape[0] * x.shape[1], FRAME_CHUNK_BYTES // max(1, frame_bytes))
    return chunks if len(chunks) > 1 else None


def _in_frame_chunks(x: torch.Tensor, chunks: list[slice], frames_fn) -> torch.Tensor:
    """``frames_fn`` ("1 f h w c" -> "1 f h' w' c'") applied to each chunk of the frames of
    "b t h w c" ``x``, the results written into one "b t h' w' c'" tensor."""
    b, t = x.shape[:2]
    frames = x.reshape(1, b * t, *x.shape[2:])
    out = None
    for rows in chunks:
        y = frames_fn(frames[:, rows])
        if out is None:
            out = y.new_empty(1, b * t, *y.shape[2:])
        out[:, rows] = y
    return out.view(b, t, *out.shape[2:])


def _encode(stages, x: torch.Tensor) -> torch.Tensor:
    """(n_conv, conv_block, patch_merge) stages on "b t h w c"."""
    for n_conv, conv_block, merge in stages:
        if n_conv > 0:
            x = _per_frame(conv_block, x)
        x = merge(x)
    return x


def _encoder_frame_bytes(stages, x: torch.Tensor) -> int | None:
    """Bytes of the largest per-frame intermediate of :func:`_encode`, or None when a merge
    spans frames (then frames are not independent)."""
    h, w, c = x.shape[-3:]
    frame_bytes = 0
    for n_conv, _, merge in stages:
        if merge.downsample[0] != 1:
            return None
        width = max(c, merge.dim) if n_conv > 0 else c  # the merge's input: as wide as the convs' output
        frame_bytes = max(frame_bytes, h * w * width * x.element_size())
        _, h, w, c = merge.get_out_shape((1, h, w, merge.dim))
    return frame_bytes


def _decode(stages, x: torch.Tensor, buffers: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """(n_conv, upsample, conv_block) stages on "b t h w c".

    With ``buffers`` (a dict kept across the chunks of one call), each whole-factor
    upsampling writes into a buffer made for the first chunk and reused by the others.
    """
    y = rearrange(x, "b t h w c -> (b t) c h w")
    for i, (n_conv, upsample, conv_block) in enumerate(stages):
        buffer = None
        if buffers is not None and upsample.uses_whole_factors(y.shape[-2:]):
            if i not in buffers:
                buffers[i] = y.new_empty(y.shape[0], *upsample.target_size[1:], upsample.out_dim)
            buffer = buffers[i][: y.shape[0]]
        y = upsample.upsample_frames(y, out=buffer)
        if n_conv > 0:
            y = _conv_frames(conv_block, y)
    return rearrange(y, "(b t) c h w -> b t h w c", b=x.shape[0])


def _decoder_frame_bytes(stages, x: torch.Tensor) -> int:
    """Bytes of the largest per-frame intermediate of :func:`_decode`."""
    frame_bytes = 0
    for n_conv, upsample, conv_block in stages:
        width = conv_block[0].out_channels if n_conv > 0 else upsample.out_dim
        h, w = upsample.target_size[1:]
        frame_bytes = max(frame_bytes, h * w * max(upsample.out_dim, width) * x.element_size())
    return frame_bytes


def _run_encoder(module: nn.Module, stages, x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 5:
        raise ConfigError(f'the initial encoder expects "b t h w c" input, got shape {tuple(x.shape)}')
    frame_bytes = _encoder_frame_bytes(stages, x)
    chunks = None if frame_bytes is None else _frame_chunks(module, x, frame_bytes)
    if chunks is None:
        return _encode(stages, x)
    return _in_frame_chunks(x, chunks, lambda frames: _encode(stages, frames))


def _run_decoder(module: nn.Module, stages, x: torch.Tensor, head: Callable | None = None) -> torch.Tensor:
    if x.dim() != 5:
        raise ConfigError(f'the final decoder expects "b t h w c" input, got shape {tuple(x.shape)}')
    for upsample in (stage[1] for stage in stages):  # checked here: a chunk has fewer frames
        if x.shape[1] != upsample.target_size[0]:
            raise ConfigError(f"Upsample3DLayer expects {upsample.target_size[0]} frames, got {x.shape[1]}")
    head = _identity if head is None else head
    chunks = _frame_chunks(module, x, _decoder_frame_bytes(stages, x))
    if chunks is None:
        return head(_decode(stages, x))
    buffers: dict[int, torch.Tensor] = {}
    return _in_frame_chunks(x, chunks, lambda frames: head(_decode(stages, frames, buffers)))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


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
        """"b t h w c" -> "b t' h' w' c'" (CPU inference: by chunks of frames, see
        :data:`FRAME_CHUNK_BYTES`)."""
        return _run_encoder(self, [(self.num_conv_layers, self.conv_block, self.patch_merge)], x)


class FinalDecoder(nn.Module):
    """``upsample`` to the target (T, H, W) then ``conv_block`` (Conv3x3 -> GroupNorm(16) -> act)."""

    def __init__(self, target_thw: Sequence[int], dim: int, num_conv_layers: int = 2,
                 activation: str = "leaky") -> None:
        super().__init__()
        self.num_conv_layers = num_conv_layers
        self.conv_block = conv_norm_act_block([dim] * (num_conv_layers + 1), [16] * num_conv_layers, activation)
        self.upsample = Upsample3DLayer(dim, dim, target_thw, kernel_size=3)

    def forward(self, x: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """"b t h w c" -> "b T H W c" (CPU inference: by chunks of frames, see
        :data:`FRAME_CHUNK_BYTES`).

        ``head`` (a per-token map of "... c", such as the model's final projection) is
        applied to the output chunk by chunk: the full-resolution ``c``-wide output is
        then never made whole (and never copied).
        """
        return _run_decoder(self, [(self.num_conv_layers, self.upsample, self.conv_block)], x, head)


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
        """"b t h w c" -> "b t h' w' c'".

        In CPU inference, when no merge spans frames, the frames run in chunks whose largest
        intermediate is about :data:`FRAME_CHUNK_BYTES` (the stages treat frames
        independently: the same result, from memory the allocator reuses).
        """
        return _run_encoder(self, list(zip(self.num_conv_per_merge_list, self.conv_block_list,
                                           self.patch_merge_list)), x)


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

    def forward(self, x: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """"b t h w c" -> "b t H W C".

        In CPU inference the frames run in chunks whose largest intermediate is about
        :data:`FRAME_CHUNK_BYTES`, each upsampling writing into one buffer reused by every
        chunk (the stages treat frames independently: the same result, from memory the
        allocator reuses). ``head``: as for :meth:`FinalDecoder.forward`.
        """
        return _run_decoder(self, list(zip(self.num_conv_per_up_list, self.upsample_list,
                                           self.conv_block_list)), x, head)
