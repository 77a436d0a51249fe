"""The written-out attention-with-dropout path equals the reference maths, forward and backward."""

import pytest
import torch

from xearthformer.nn.attention import attention
from xearthformer.nn.dropout import random_keep_mask


def reference(q, k, v, attn_mask, scale, p, keep):
    scores = q @ k.transpose(-2, -1) * scale
    if attn_mask is not None:
        scores = scores + attn_mask
    probs = torch.softmax(scores, -1)
    return (probs * keep / (1 - p)) @ v


@pytest.mark.parametrize("block_bytes", [4 << 20, 2000])  # one block; blocks of 2 cuboids (shared masks)
@pytest.mark.parametrize("mask_shape", [None, (1, 3, 5, 7), (4, 3, 5, 7), (4, 1, 5, 7)])
def test_matches_reference_with_gradients(mask_shape, block_bytes, monkeypatch):
    from xearthformer.nn import attention as attention_module

    monkeypatch.setattr(attention_module, "DROPOUT_ATTENTION_BLOCK_BYTES", block_bytes)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(4, 3, 5, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    k = torch.randn(4, 3, 7, 8, dtype=torch.float64, generator=gen, requires_grad=True)
    v = torch.randn(4, 3, 7, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    mask = None
    if mask_shape is not None:
        mask = torch.randn(mask_shape, dtype=torch.float64, generator=gen, requires_grad=True)
    p, scale = 0.3, 0.35

    torch.manual_seed(1)
    out = attention(q, k, v, attn_mask=mask, scale=scale, dropout_p=p)
    torch.manual_seed(1)
    # keys are padded to a multiple of 8 (weight-zero keys) before the mask is drawn
    keep = random_keep_mask(torch.Size([4, 3, 5, 8]), p, device=torch.device("cpu"))[..., :7]
    expected = reference(q, k, v, mask, scale, p, keep)
    torch.testing.assert_close(out, expected)
    shared = mask_shape is None or mask_shape[0] == 1
    padded_k = torch.empty(4, 3, 8, 8, dtype=torch.float64)  # the keys after padding to 8
    blocks = attention_module._attention_blocks(q, padded_k, None if mask is None else mask)
    assert len(blocks) == (2 if shared and block_bytes == 2000 else 1)

    grad = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    inputs = [t for t in (q, k, v, mask) if t is not None]
    ours = torch.autograd.grad(out, inputs, grad)
    theirs = torch.autograd.grad(expected, inputs, grad)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)


def test_dropout_rate_and_eval_path():
    q = torch.randn(2, 1, 64, 4)
    k = torch.randn(2, 1, 64, 4)
    v = torch.ones(2, 1, 64, 1)
    torch.manual_seed(0)
    out = attention(q, k, v, attn_mask=None, scale=0.5, dropout_p=0.25)
    # each output row is sum(probs * keep) / 0.75: its mean over many rows is close to 1
    assert abs(out.mean().item() - 1.0) < 0.05
    assert not torch.allclose(out, torch.ones_like(out))
    exact = attention(q, k, v, attn_mask=None, scale=0.5, dropout_p=0.0)
    torch.testing.assert_close(exact, torch.ones_like(exact))


@pytest.mark.parametrize("block_rows", [4096, 7])  # one block; four blocks, the last one partial
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("p, p_out", [(0.0, 0.0), (0.4, 0.0), (0.4, 0.3), (0.0, 0.3)])
def test_lean_ffn_matches_module_maths(p, p_out, dtype, block_rows, monkeypatch):
    from xearthformer.nn import lean
    from xearthformer.nn.execution.ffn import lean_applies
    from xearthformer.nn.layers import PositionwiseFFN

    monkeypatch.setattr(lean, "FFN_BLOCK_ROWS", block_rows)

    torch.manual_seed(0)
    ffn = PositionwiseFFN(6, 24, dropout=p_out, activation_dropout=p).to(dtype).train()
    with torch.no_grad():
        ffn.layer_norm.weight.uniform_(0.5, 1.5)
        ffn.layer_norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 5, 6, dtype=dtype, requires_grad=True)
    assert lean_applies(ffn, x)
    torch.manual_seed(3)
    out = ffn(x)

    # the reference: the plain module maths with the same keep masks (drawn in the same order)
    torch.manual_seed(3)
    keep = random_keep_mask(torch.Size([30, 24]), p, device=torch.device("cpu")) if p else None
    keep_out = random_keep_mask(torch.Size([30, 6]), p_out, device=torch.device("cpu")) if p_out else None
    hidden = torch.nn.functional.gelu(ffn.ffn_1(ffn.layer_norm(x)))
    if keep is not None:
        hidden = hidden * keep.view(2, 3, 5, 24) / (1 - p)
    update = ffn.ffn_2(hidden)
    if keep_out is not None:
        update = update * keep_out.view(2, 3, 5, 6) / (1 - p_out)
    expected = x + update
    torch.testing.assert_close(out, expected)

    params = [x, *ffn.parameters()]
    grad = torch.randn(out.shape, dtype=dtype)
    for a, b in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params, grad)):
        torch.testing.assert_close(a, b)  # float32: oneDNN kernels on CPU, within float32 rounding


def test_norm_linear_float32_gradients():
    from xearthformer.nn.lean import norm_linear

    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    w = torch.randn(12, 8, requires_grad=True)
    x = torch.randn(3, 5, 8, requires_grad=True)
    out = norm_linear(x, norm, w)
    expected = torch.nn.functional.linear(norm(x), w)
    torch.testing.assert_close(out, expected)
    params = [x, w, norm.weight, norm.bias]
    grad = torch.randn(out.shape)
    for a, b in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params, grad)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_dropout_matches_dropout_of_linear(bias):
    from xearthformer.nn import FastDropout
    from xearthformer.nn.fast_linear import linear_dropout

    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 5, bias=bias).double()
    drop = FastDropout(0.3).train()
    x = torch.randn(4, 7, 6, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    fused = linear_dropout(x, lin, drop)
    torch.manual_seed(1)
    plain = drop(lin(x))
    # float64, the same sums in another order (see tests/nn/test_fast_paths.py's docstring)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-12)
    assert (fused == 0).any()  # the mask was applied
    params = [x, *lin.parameters()]
    grad = torch.randn(fused.shape, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(fused, params, grad), torch.autograd.grad(plain, params, grad)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    drop.eval()
    torch.testing.assert_close(linear_dropout(x, lin, drop), lin(x))
