"""Nearest-neighbour upsampling by whole factors followed by a convolution, without the
upsampled intermediate.

Earthformer's decoders enlarge each frame with a nearest resize and then run a same-padded
``k x k`` convolution on the enlarged frame (``Upsample3DLayer``). At SEVIR's full resolution
the resize writes a 450 MB tensor and the convolution then spends most of its multiplies on
repeated pixels.

With integer factors ``(sh, sw)`` every output pixel ``(sh*i + a, sw*j + b)`` sees a
``k x k`` window of the enlarged frame, and that window covers only a few distinct input
pixels. Along rows, tap ``r`` (``-k//2 .. k//2``) reads input row ``i + (a + r) // sh``, so
taps that land on the same input row can be summed into one weight. Each *phase* ``(a, b)``
is then a small convolution of the original frame (for ``k = 3``, ``sh = 3``: kernels of 2, 1
and 2 rows instead of 3), and the phases are interleaved into the output:

    conv(upsample(x))[sh*i + a, sw*j + b] = conv_{a,b}(x)[i, j]

The zero padding of the enlarged frame falls exactly on input indices outside the frame,
so padding the original frame with zeros is exact. For ``k = 3`` the work is
``(sh + 2)(sw + 2) / (9 sh sw)`` of the direct way: 31% at ``sh = sw = 3``, 44% at 2.
The result equals the direct computation up to float rounding (weights are summed first).

Examples
--------
>>> import torch.nn.functional as F
>>> x, w = torch.randn(2, 4, 5, 6), torch.randn(3, 4, 3, 3)
>>> direct = F.conv2d(F.interpolate(x, scale_factor=(3, 2), mode="nearest"), w, padding=1)
>>> torch.allclose(nearest_upsample_conv2d(x, w, None, (3, 2)), direct, atol=1e-5)
True
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["channels_last_view", "nearest_upsample_conv2d", "phase_taps"]


def channels_last_view(y: torch.Tensor) -> torch.Tensor:
    """``y`` "n c h w"; when it is one channels-last frame, the same view with the batch
    stride of a channels-last tensor (``h * w * c``).

    A view made from "b t h w c" with ``b * t == 1`` gets a batch stride of ``c``, and
    then ``suggest_memory_format`` takes it for channels-first: a convolution would copy it
    to that layout and run there (several times slower), and ``F.pad`` would answer
    channels-first.

    Examples
    --------
    >>> y = torch.randn(1, 5, 6, 3).permute(0, 3, 1, 2)[:, :, :, :]  # "1 c h w", channels-last
    >>> y = y.as_strided(y.shape, (3, 1, 18, 3))  # what a "b t h w c" rearrange gives
    >>> channels_last_view(y).stride(), torch.equal(channels_last_view(y), y)
    ((90, 1, 18, 3), True)
    """
    if y.shape[0] != 1 or not y.is_contiguous(memory_format=torch.channels_last):
        return y
    n, c, h, w = y.shape
    return y.as_strided(y.shape, (c * h * w, 1, w * c, c))


@lru_cache(maxsize=None)
def phase_taps(scale: int, kernel: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """For each phase ``a`` of an axis enlarged ``scale`` times: ``(first, offsets)``.

    ``offsets[r]`` is the input offset (relative to ``i``) that kernel tap ``r`` reads;
    ``first`` is the smallest of them.

    Examples
    --------
    >>> phase_taps(3, 3)
    ((-1, (-1, 0, 0)), (0, (0, 0, 0)), (0, (0, 0, 1)))
    """
    half = kernel // 2
    out = []
    for a in range(scale):
        offsets = tuple((a + r) // scale for r in range(-half, kernel - half))
        out.append((min(offsets), offsets))
    return tuple(out)


def _collapse(weight: torch.Tensor, dim: int, offsets: tuple[int, ...]) -> torch.Tensor:
    """Sum the kernel taps along ``dim`` that read the same input offset."""
    first = min(offsets)
    size = max(offsets) - first + 1
    if size == len(offsets):
        return weight
    index = torch.tensor([o - first for o in offsets], device=weight.device)
    shape = list(weight.shape)
    shape[dim] = size
    return weight.new_zeros(shape).index_add(dim, index, weight)


def nearest_upsample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            scale: tuple[int, int], *, out: torch.Tensor | None = None) -> torch.Tensor:
    """``conv2d(interpolate(x, scale_factor=scale, mode="nearest"), weight, bias, padding=k//2)``.

    Parameters
    ----------
    x : Tensor
        "n c h w" (contiguous or channels-last).
    weight, bias : Tensor
        Conv2d parameters, "c_out c kh kw" with odd ``kh``, ``kw``, and "c_out".
    scale : (int, int)
        Whole enlargement factors (sh, sw).
    out : Tensor, optional
        A contiguous "n (h sh) (w sw) c_out" buffer to write into (reused by callers that
        run many chunks of frames); a new one by default.

    Returns
    -------
    Tensor
        "n c_out (h sh) (w sw)", channels-last in memory (the "b t h w c" layout of Earthformer).
    """
    sh, sw = (int(s) for s in scale)
    kh, kw = weight.shape[-2:]
    if sh < 1 or sw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"need whole scale factors >= 1 and an odd kernel, got scale={scale}, "
                         f"kernel={(kh, kw)}")
    n, _, h, w = x.shape
    c_out = weight.shape[0]
    rows, cols = phase_taps(sh, kh), phase_taps(sw, kw)
    pad_h = max(max(abs(o) for o in offs) for _, offs in rows)
    pad_w = max(max(abs(o) for o in offs) for _, offs in cols)
    x = channels_last_view(x.contiguous(memory_format=torch.channels_last))
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h)) if pad_h or pad_w else x
    if out is None:
        out = x.new_empty(n, h, sh, w, sw, c_out)
    elif out.shape != (n, h * sh, w * sw, c_out) or not out.is_contiguous() or out.dtype != x.dtype:
        raise ValueError(f"out must be a contiguous {x.dtype} tensor of shape {(n, h * sh, w * sw, c_out)}, "
                         f"got {out.dtype} {tuple(out.shape)}")
    else:
        out = out.view(n, h, sh, w, sw, c_out)
    for a, (first_r, offs_r) in enumerate(rows):
        w_rows = _collapse(weight, 2, offs_r)
        for b, (first_c, offs_c) in enumerate(cols):
            y = F.conv2d(padded, _collapse(w_rows, 3, offs_c), bias)  # "n c_out h' w'", valid
            top, left = pad_h + first_r, pad_w + first_c
            y = y.permute(0, 2, 3, 1)[:, top:top + h, left:left + w]
            out[:, :, a, :, b] = y
    return out.view(n, h * sh, w * sw, c_out).permute(0, 3, 1, 2)
