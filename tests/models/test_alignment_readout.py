"""Attention-pooling readout of the alignment network: official keys and numerics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xearthformer._precision import reduction_error, unit_roundoff
from xearthformer.models.alignment_readout import AttentionPool3d, AttentionReadout, QKVAttention
from xearthformer.nn._validation import ConfigError


@pytest.fixture(scope="module")
def readout_state(golden_dir):
    state = torch.load(golden_dir / "prediff/tiny/alignment_tiny/state_dict.pt", weights_only=True)
    return {k[len("out.") :]: v for k, v in state.items() if k.startswith("out.")}


def reference_readout(state: dict, x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Independent version: per-frame GroupNorm/SiLU, mean token, SDPA with scale 1/sqrt(d)."""
    b, t, h, w, c = x.shape
    tokens = x.permute(0, 1, 4, 2, 3).reshape(b * t, c, h * w)
    tokens = F.silu(F.group_norm(tokens, min(32, c), state["0.weight"], state["0.bias"]))
    tokens = (
        torch.cat([tokens.mean(-1, keepdim=True), tokens], -1) + state["2.positional_embedding"]
    )
    qkv = F.conv1d(tokens, state["2.qkv_proj.weight"], state["2.qkv_proj.bias"])
    q, k, v = (
        p.reshape(b * t, num_heads, c // num_heads, -1).transpose(-1, -2) for p in qkv.chunk(3, 1)
    )
    att = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(d) = (d ** -0.25) ** 2
    att = att.transpose(-1, -2).reshape(b * t, c, -1)
    out = F.conv1d(att, state["2.c_proj.weight"], state["2.c_proj.bias"])[:, :, 0]
    return out.reshape(b, t, -1)


@pytest.mark.golden
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_readout_loads_alignment_tiny_weights_and_matches_reference(readout_state, dtype):
    # alignment_tiny: input (2, 8, 12, 4), base 64 -> last level (2, 4, 6, 128), 4 heads, out_len 2
    readout = AttentionReadout(height=4, width=6, channels=128, num_heads=4, out_channels=1)
    readout.load_state_dict(readout_state, strict=True)
    readout = readout.eval().to(dtype)
    x = torch.randn(3, 5, 4, 6, 128, generator=torch.Generator().manual_seed(1), dtype=dtype)
    with torch.no_grad():
        ours = readout(x, out_len=2)
    ref = reference_readout({k: v.to(dtype) for k, v in readout_state.items()}, x[:, -2:], 4)
    assert ours.shape == (3, 2, 1)
    # Two summation orders of reductions over 128 channels (reduction_error), plus, in float64,
    # the official float32 softmax (16 u32, see the fixture in conftest.py): 8.6e-6 in all.
    tol = reduction_error(128, torch.float32) + 16 * unit_roundoff(torch.float32)
    assert float((ours - ref).abs().max()) <= tol * max(1.0, float(ref.abs().max()))


def test_float32_softmax_is_the_only_float64_difference():
    gen = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 3 * 8, 7, generator=gen, dtype=torch.float64)
    exact = QKVAttention(2, float32_softmax=False)(qkv)
    official = QKVAttention(2)(qkv)
    # Bound of a float32 softmax: logits of d=4 products rounded to float32 are off by
    # (d + 2) u32 * sum|q k| (reduction_error plus the casts); exp turns that absolute error
    # into a relative one of the weights, normalising doubles it, v scales it; plus the
    # float32 exp itself (ELEMENTARY_FUNCTION_ULPS) and the cast of the weights.
    u = unit_roundoff(torch.float32)
    q, k, v = (part.reshape(2, 2, 4, 7) for part in qkv.chunk(3, dim=1))  # b heads d length
    logits = torch.einsum("bhdi,bhdj->bhij", q.abs(), k.abs()) / 4 ** 0.5
    weight_error = 2 * (6 * u * float(logits.max()) + (2 * 4 + 1) * 2 * u)
    assert 0 < float((exact - official).abs().max()) <= weight_error * float(v.abs().max())


def test_heads_split_channels_contiguously():
    """Head i sees channels [i*d, (i+1)*d) of each of q, k, v."""
    d, length = 3, 5
    gen = torch.Generator().manual_seed(2)
    qkv = torch.randn(1, 3 * 2 * d, length, generator=gen)
    out = QKVAttention(2)(qkv)
    q, k, v = qkv.chunk(3, dim=1)
    head1 = QKVAttention(1)(torch.cat([q[:, d:], k[:, d:], v[:, d:]], dim=1))
    # same float32 sums over d=3 channels and 5 keys, in possibly another order
    assert torch.allclose(out[:, d:], head1, rtol=0, atol=2 * reduction_error(5, torch.float32)
                          * float(v.abs().max()))


def test_pool_and_readout_errors():
    pool = AttentionPool3d(data_dim=6, embed_dim=8, num_heads=2, output_dim=1)
    with pytest.raises(ConfigError, match="data_dim=6"):
        pool(torch.zeros(1, 8, 5))
    with pytest.raises(ConfigError):
        AttentionPool3d(data_dim=6, embed_dim=9, num_heads=2)
    with pytest.raises(ConfigError):
        QKVAttention(2)(torch.zeros(1, 10, 3))
    readout = AttentionReadout(height=2, width=3, channels=8, num_heads=2)
    with pytest.raises(ConfigError, match="out_len"):
        readout(torch.zeros(1, 2, 2, 3, 8), out_len=3)
    with pytest.raises(ConfigError):
        readout(torch.zeros(2, 2, 3, 8))
