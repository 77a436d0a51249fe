"""The named cuboid-attention patterns of the official release.

A self-attention pattern maps a level shape (T, H, W, C) to three lists (cuboid sizes,
strategies, shifts), one entry per attention layer of a stack; a cross-attention pattern
maps a memory shape to (cuboid_hw, shift_hw, strategy, n_temporal) lists.

>>> SELF_PATTERNS["axial"]((12, 24, 24, 64))[0]
[(12, 1, 1), (1, 24, 1), (1, 1, 24)]
>>> sorted(CROSS_PATTERNS)[:3]
['cross_1x1', 'cross_1x1_heter', 'cross_1x1_lg']
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ._validation import ConfigError

L, D, Z = ("l", "l", "l"), ("d", "d", "d"), (0, 0, 0)

SelfPattern = Callable[[tuple], tuple[list, list, list]]
CrossPattern = Callable[[tuple], tuple[list, list, list, list]]


def full_attention(shape):
    t, h, w, _ = shape
    return [(t, h, w)], [L], [Z]


def axial(shape):
    t, h, w, _ = shape
    return [(t, 1, 1), (1, h, 1), (1, 1, w)], [L, L, L], [Z, Z, Z]


def divided_space_time(shape):
    t, h, w, _ = shape
    return [(t, 1, 1), (1, h, w)], [L, L], [Z, Z]


def video_swin(shape, p=2, m=4):
    t, h, w, _ = shape
    p, m = min(p, t), min(m, h, w)
    return [(p, m, m), (p, m, m)], [L, L], [Z, (p // 2, m // 2, m // 2)]


def spatial_lg(shape, m=4):
    t, h, w, _ = shape
    if h <= m and w <= m:
        return [(t, 1, 1), (1, h, w)], [L, L], [Z, Z]
    return [(t, 1, 1), (1, m, m), (1, m, m)], [L, L, D], [Z, Z, Z]


def axial_space_dilate(shape, k=2):
    t, h, w, _ = shape
    k = min(k, h, w)
    sizes = [(t, 1, 1), (1, h // k, 1), (1, h // k, 1), (1, 1, w // k), (1, 1, w // k)]
    return sizes, [L, D, L, D, L], [Z] * 5


def cross_kxk(shape, k):
    _, h, w, _ = shape
    k = min(k, h, w)
    return [(k, k)], [(0, 0)], [L], [1]


def cross_kxk_lg(shape, k):
    _, h, w, _ = shape
    k = min(k, h, w)
    return [(k, k), (k, k)], [(0, 0), (0, 0)], [L, D], [1, 1]


def cross_kxk_heter(shape, k):
    _, h, w, _ = shape
    k = min(k, h, w)
    return [(k, k)] * 3, [(0, 0), (0, 0), (k // 2, k // 2)], [L, D, L], [1, 1, 1]


SELF_PATTERNS: dict[str, SelfPattern] = {
    "full": full_attention,
    "axial": axial,
    "video_swin": video_swin,
    "divided_st": divided_space_time,
    "spatial_lg_v1": spatial_lg,
}
for _p in (1, 2, 4, 8, 10):
    for _m in (1, 2, 4, 8, 16, 32):
        SELF_PATTERNS[f"video_swin_{_p}x{_m}"] = partial(video_swin, p=_p, m=_m)
for _m in (1, 2, 4, 8, 16, 32):
    SELF_PATTERNS[f"spatial_lg_{_m}"] = partial(spatial_lg, m=_m)
for _k in (2, 4, 8):
    SELF_PATTERNS[f"axial_space_dilate_{_k}"] = partial(axial_space_dilate, k=_k)

CROSS_PATTERNS: dict[str, CrossPattern] = {}
for _k in (1, 2, 4, 8):
    CROSS_PATTERNS[f"cross_{_k}x{_k}"] = partial(cross_kxk, k=_k)
    CROSS_PATTERNS[f"cross_{_k}x{_k}_lg"] = partial(cross_kxk_lg, k=_k)
    CROSS_PATTERNS[f"cross_{_k}x{_k}_heter"] = partial(cross_kxk_heter, k=_k)


def _lookup(registry: dict, name, kind: str):
    if not isinstance(name, str) or name not in registry:
        import difflib

        close = difflib.get_close_matches(str(name), list(registry), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown {kind} attention pattern {name!r}.{hint} "
                          f"Known patterns: {', '.join(sorted(registry))}")
    return registry[name]


def resolve_self_pattern(name: str, shape: tuple) -> tuple[list, list, list]:
    """(cuboid sizes, strategies, shifts) of a named self-attention pattern at ``shape``.

    Examples
    --------
    >>> resolve_self_pattern("video_swin_2x4", (5, 8, 24, 2))[2]
    [(0, 0, 0), (1, 2, 2)]
    """
    return _lookup(SELF_PATTERNS, name, "self")(tuple(shape))


def resolve_cross_pattern(name: str, shape: tuple) -> tuple[list, list, list, list]:
    """(cuboid_hw, shift_hw, strategies, n_temporal) of a named cross-attention pattern.

    Examples
    --------
    >>> cuboid_hw, shift_hw, strategy, n_temporal = resolve_cross_pattern("cross_1x1", (14, 6, 6, 2))
    >>> cuboid_hw, n_temporal
    ([(1, 1)], [1])
    """
    return _lookup(CROSS_PATTERNS, name, "cross")(tuple(shape))
