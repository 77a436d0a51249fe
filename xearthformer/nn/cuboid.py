"""Cutting a (T, H, W) grid into cuboids: sizes, padding, reordering, masks, bias indices.

Everything here is a pure function of shapes (cached) or a layout change written with
einops. Conventions follow the official Earthformer code (see the package docs):

* strategy ``'l'`` (local): element ``s`` of an axis of length ``S`` belongs to cuboid
  ``s // b`` at position ``s % b``; ``'d'`` (dilated): cuboid ``s % (S/b)``, position ``s // (S/b)``.
* cuboids are enumerated with T slowest and W fastest, tokens inside a cuboid (t, h, w) with w fastest.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange

Triple = tuple[int, int, int]
Strategy = tuple[str, str, str]

_AXES = ("t", "h", "w")


def adjust_cuboid_and_shift(
    data_thw: Triple, cuboid_size: Triple, shift_size: Triple, strategy: Strategy
) -> tuple[Triple, Triple]:
    """Shrink cuboids to the data and drop impossible shifts, as the official forward does.

    Per axis: a dilated axis never shifts; an axis no longer than its cuboid gets
    cuboid = data length and no shift.

    >>> adjust_cuboid_and_shift((12, 24, 24), (14, 1, 1), (1, 0, 0), ("l", "l", "l"))
    ((12, 1, 1), (0, 0, 0))
    """
    cuboid, shift = list(cuboid_size), list(shift_size)
    for axis in range(3):
        if strategy[axis] == "d":
            shift[axis] = 0
        if data_thw[axis] <= cuboid_size[axis]:
            cuboid[axis] = data_thw[axis]
            shift[axis] = 0
    return tuple(cuboid), tuple(shift)  # type: ignore[return-value]


def pad_amounts(data_thw: Triple, cuboid_size: Triple) -> Triple:
    """Padding per axis so that every axis is a multiple of its cuboid extent."""
    return tuple((b - s % b) % b for s, b in zip(data_thw, cuboid_size))  # type: ignore[return-value]


def pad_thw(x: torch.Tensor, pads: Triple, padding_type: str, *, t_pad_left: bool = False) -> torch.Tensor:
    """Pad ``x`` ("b t h w c") at the end of each axis (time at the start if ``t_pad_left``).

    ``'zeros'`` and ``'ignore'`` pad with zeros; ``'nearest'`` resizes the whole tensor by
    nearest interpolation to the padded size (the official behaviour).
    """
    pad_t, pad_h, pad_w = pads
    if pad_t == 0 and pad_h == 0 and pad_w == 0:
        return x
    if padding_type == "nearest":
        _, t, h, w, _ = x.shape
        y = F.interpolate(rearrange(x, "b t h w c -> b c t h w"), size=(t + pad_t, h + pad_h, w + pad_w))
        return rearrange(y, "b c t h w -> b t h w c")
    t_pad = (pad_t, 0) if t_pad_left else (0, pad_t)
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h) + t_pad)


def unpad_thw(x: torch.Tensor, pads: Triple, padding_type: str) -> torch.Tensor:
    """Undo :func:`pad_thw` (end padding)."""
    pad_t, pad_h, pad_w = pads
    if pad_t == 0 and pad_h == 0 and pad_w == 0:
        return x
    _, t, h, w, _ = x.shape
    if padding_type == "nearest":
        y = F.interpolate(rearrange(x, "b t h w c -> b c t h w"), size=(t - pad_t, h - pad_h, w - pad_w))
        return rearrange(y, "b c t h w -> b t h w c")
    return x[:, : t - pad_t, : h - pad_h, : w - pad_w]


@lru_cache(maxsize=None)
def reorder_pattern(strategy: Strategy, split_heads: bool, reverse: bool = False) -> str:
    """The einops pattern that cuts "b t h w (...)" into cuboids (or glues them back).

    With ``split_heads`` the channel axis is "(k heads d)" (k = number of stacked
    projections) and the result is "k (b nt nh nw) heads (bt bh bw) d", the layout
    ``scaled_dot_product_attention`` wants. Without, the result is
    "b (nt nh nw) (bt bh bw) c".
    """
    axes = []
    for name, kind in zip(_AXES, strategy):
        axes.append(f"(n{name} b{name})" if kind == "l" else f"(b{name} n{name})")
    grid = "nt nh nw"
    inner = "bt bh bw"
    if split_heads:
        src = f"b {' '.join(axes)} (k heads d)"
        dst = f"k (b {grid}) heads ({inner}) d"
    else:
        src = f"b {' '.join(axes)} c"
        dst = f"b ({grid}) ({inner}) c"
    return f"{dst} -> {src}" if reverse else f"{src} -> {dst}"


def cuboid_reorder(x: torch.Tensor, cuboid_size: Triple, strategy: Strategy) -> torch.Tensor:
    """"b t h w c" -> "b num_cuboids cuboid_volume c" (official ``cuboid_reorder``).

    >>> x = torch.arange(8.).reshape(1, 1, 2, 4, 1)
    >>> cuboid_reorder(x, (1, 1, 2), ("l", "l", "d"))[0, :, :, 0]
    tensor([[0., 2.],
            [1., 3.],
            [4., 6.],
            [5., 7.]])
    """
    bt, bh, bw = cuboid_size
    return rearrange(x, reorder_pattern(tuple(strategy), False), bt=bt, bh=bh, bw=bw)


def cuboid_reorder_reverse(x: torch.Tensor, cuboid_size: Triple, strategy: Strategy, thw: Triple) -> torch.Tensor:
    """Inverse of :func:`cuboid_reorder` for a padded grid of size ``thw``."""
    bt, bh, bw = cuboid_size
    t, h, w = thw
    return rearrange(
        x, reorder_pattern(tuple(strategy), False, reverse=True),
        bt=bt, bh=bh, bw=bw, nt=t // bt, nh=h // bh, nw=w // bw,
    )


def relative_position_index(extent: Triple) -> torch.Tensor:
    """Index into the relative-position bias table for tokens of a (bt, bh, bw) cuboid.

    ``idx = (t1-t2+bt-1)(2bh-1)(2bw-1) + (h1-h2+bh-1)(2bw-1) + (w1-w2+bw-1)`` with
    coordinates flattened (t, h, w), w fastest; int64 of shape (V, V), V = bt*bh*bw.

    >>> relative_position_index((2, 1, 1))
    tensor([[1, 0],
            [2, 1]])
    """
    bt, bh, bw = extent
    coords = torch.stack(torch.meshgrid(torch.arange(bt), torch.arange(bh), torch.arange(bw), indexing="ij"))
    flat = coords.flatten(1)
    rel = flat[:, :, None] - flat[:, None, :]
    return (
        (rel[0] + bt - 1) * (2 * bh - 1) * (2 * bw - 1) + (rel[1] + bh - 1) * (2 * bw - 1) + (rel[2] + bw - 1)
    )


def _slice_labels(length: int, cuboid: int, shift: int) -> torch.Tensor:
    """Label each position of an axis by the region of the Swin shift mask it falls in.

    The official regions are ``[0, L-b)``, ``[L-b, L-s)``, ``[L-s, L)``; with no shift the
    last region is the whole axis, so the axis restricts nothing.
    """
    labels = torch.zeros(length, dtype=torch.long)
    if shift > 0:
        labels[length - cuboid:] = 1
        labels[length - shift:] = 2
    return labels


@lru_cache(maxsize=256)
def self_attention_mask(
    data_thw: Triple, cuboid_size: Triple, shift_size: Triple, strategy: Strategy, padding_type: str
) -> torch.Tensor | None:
    """Boolean mask "num_cuboids v v" of who may attend to whom, or ``None`` if all true.

    Combines the shifted-window labels with, for ``padding_type='ignore'``, the validity of
    padded tokens (query x key). ``'zeros'`` padding is never masked (official behaviour).
    Built once per shape (cached) on the CPU; callers move it to their device.
    """
    pads = pad_amounts(data_thw, cuboid_size)
    padded = tuple(s + p for s, p in zip(data_thw, pads))
    shifted = any(s > 0 for s in shift_size)
    masked_padding = padding_type == "ignore" and any(p > 0 for p in pads)
    if not shifted and not masked_padding:
        return None
    t_lab, h_lab, w_lab = (_slice_labels(n, b, s) for n, b, s in zip(padded, cuboid_size, shift_size))
    label = (t_lab[:, None, None] * 9 + h_lab[None, :, None] * 3 + w_lab[None, None, :]).float()
    label = cuboid_reorder(label[None, ..., None], cuboid_size, strategy)[0, ..., 0]
    mask = label[:, :, None] == label[:, None, :]
    if masked_padding:
        valid = torch.zeros(padded, dtype=torch.float32)
        valid[: data_thw[0], : data_thw[1], : data_thw[2]] = 1
        if shifted:
            valid = torch.roll(valid, shifts=tuple(-s for s in shift_size), dims=(0, 1, 2))
        valid = cuboid_reorder(valid[None, ..., None], cuboid_size, strategy)[0, ..., 0].bool()
        mask = mask & valid[:, :, None] & valid[:, None, :]
    if bool(mask.all()):
        return None
    return mask


@lru_cache(maxsize=256)
def cross_attention_mask(
    t_x: int, t_mem: int, h: int, w: int, n_temporal: int,
    cuboid_hw: tuple[int, int], shift_hw: tuple[int, int], strategy: Strategy, padding_type: str,
) -> torch.Tensor | None:
    """Boolean mask "num_cuboids v_x v_mem" for cuboid cross attention, or ``None`` if all true.

    Spatial shift labels only (time is never shifted); padded tokens are masked only for
    ``padding_type='ignore'`` (memory padded in time at the start, queries at the end).
    """
    pad_t_mem = (n_temporal - t_mem % n_temporal) % n_temporal
    pad_t_x = (n_temporal - t_x % n_temporal) % n_temporal
    pad_h = (cuboid_hw[0] - h % cuboid_hw[0]) % cuboid_hw[0]
    pad_w = (cuboid_hw[1] - w % cuboid_hw[1]) % cuboid_hw[1]
    shifted = any(s > 0 for s in shift_hw)
    masked_padding = padding_type == "ignore" and any(p > 0 for p in (pad_t_mem, pad_t_x, pad_h, pad_w))
    if not shifted and not masked_padding:
        return None
    hp, wp = h + pad_h, w + pad_w
    h_lab = _slice_labels(hp, cuboid_hw[0], shift_hw[0])
    w_lab = _slice_labels(wp, cuboid_hw[1], shift_hw[1])
    label = (h_lab[:, None] * 3 + w_lab[None, :]).float()
    label = label[None].expand(n_temporal, hp, wp)
    label = cuboid_reorder(label[None, ..., None], (1,) + tuple(cuboid_hw), strategy)[0, ..., 0]
    spatial = label[:, :, None] == label[:, None, :]  # (n, bh*bw, bh*bw)
    num_cuboids, area = spatial.shape[:2]

    def valid_tokens(t: int, pad_t: int, left: bool) -> torch.Tensor:
        valid = torch.zeros((t + pad_t, hp, wp))
        t_slice = slice(pad_t, None) if left else slice(0, t)
        valid[t_slice, :h, :w] = 1
        if padding_type != "ignore":
            valid[:] = 1
        if shifted:
            valid = torch.roll(valid, shifts=(-shift_hw[0], -shift_hw[1]), dims=(1, 2))
        size = ((t + pad_t) // n_temporal,) + tuple(cuboid_hw)
        return cuboid_reorder(valid[None, ..., None], size, strategy)[0, ..., 0].bool()

    x_valid = valid_tokens(t_x, pad_t_x, left=False).reshape(num_cuboids, -1, area)
    mem_valid = valid_tokens(t_mem, pad_t_mem, left=True).reshape(num_cuboids, -1, area)
    mask = (
        spatial[:, None, :, None, :]
        & x_valid[:, :, :, None, None]
        & mem_valid[:, None, None, :, :]
    )
    mask = mask.reshape(num_cuboids, x_valid.shape[1] * area, mem_valid.shape[1] * area)
    if bool(mask.all()):
        return None
    return mask
