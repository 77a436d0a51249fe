"""Cuboid layout helpers and the pattern registry."""

from __future__ import annotations

import itertools

import pytest
import torch

from xearthformer.nn import CROSS_PATTERNS, SELF_PATTERNS, FastDropout
from xearthformer.nn.cuboid import cuboid_reorder, cuboid_reorder_reverse, self_attention_mask


def reference_reorder(x, cuboid, strategy):
    """The official definition, written as loops: token (t, h, w) -> (cuboid index, position)."""
    b, t, h, w, c = x.shape
    sizes = (t, h, w)
    n = [s // k for s, k in zip(sizes, cuboid)]
    out = torch.empty(b, n[0] * n[1] * n[2], cuboid[0] * cuboid[1] * cuboid[2], c)
    for pos in itertools.product(range(t), range(h), range(w)):
        idx, inner = [], []
        for p, k, s, kind in zip(pos, cuboid, sizes, strategy):
            if kind == "l":
                idx.append(p // k), inner.append(p % k)
            else:
                idx.append(p % (s // k)), inner.append(p // (s // k))
        ci = (idx[0] * n[1] + idx[1]) * n[2] + idx[2]
        pi = (inner[0] * cuboid[1] + inner[1]) * cuboid[2] + inner[2]
        out[:, ci, pi] = x[:, pos[0], pos[1], pos[2]]
    return out


@pytest.mark.parametrize("strategy", [("l", "l", "l"), ("d", "d", "d"), ("l", "d", "l"), ("d", "l", "d")])
def test_reorder_matches_the_definition_and_inverts(strategy) -> None:
    x = torch.randn(2, 4, 6, 8, 3)
    cuboid = (2, 3, 4)
    got = cuboid_reorder(x, cuboid, strategy)
    assert torch.equal(got, reference_reorder(x, cuboid, strategy))
    assert torch.equal(cuboid_reorder_reverse(got, cuboid, strategy, (4, 6, 8)), x)


def test_unshifted_unpadded_mask_is_never_built() -> None:
    assert self_attention_mask((12, 24, 24), (12, 1, 1), (0, 0, 0), ("l", "l", "l"), "zeros") is None


def test_shift_mask_separates_wrapped_regions() -> None:
    mask = self_attention_mask((1, 1, 4), (1, 1, 2), (0, 0, 1), ("l", "l", "l"), "zeros")
    # after rolling by one, the last cuboid holds positions 3 and 0 (wrapped): they must not mix
    assert mask.shape == (2, 2, 2)
    assert mask[0].all()
    assert torch.equal(mask[1], torch.eye(2, dtype=torch.bool))


def test_registry_has_every_official_name() -> None:
    expected_self = {"full", "axial", "video_swin", "divided_st", "spatial_lg_v1"}
    expected_self |= {f"video_swin_{p}x{m}" for p in (1, 2, 4, 8, 10) for m in (1, 2, 4, 8, 16, 32)}
    expected_self |= {f"spatial_lg_{m}" for m in (1, 2, 4, 8, 16, 32)}
    expected_self |= {f"axial_space_dilate_{k}" for k in (2, 4, 8)}
    assert set(SELF_PATTERNS) == expected_self
    assert set(CROSS_PATTERNS) == {f"cross_{k}x{k}{s}" for k in (1, 2, 4, 8) for s in ("", "_lg", "_heter")}


def test_fast_dropout_rate_and_scaling() -> None:
    drop = FastDropout(0.1).train()
    torch.manual_seed(0)
    y = drop(torch.ones(200_000))
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.9) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.9))
    assert torch.equal(drop.eval()(torch.ones(5)), torch.ones(5))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        FastDropout(1.0)
