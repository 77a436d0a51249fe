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


@pytest.mark.parametrize("mask_shape", [None, (1, 3, 5, 7), (4, 3, 5, 7), (4, 1, 5, 7)])
def test_matches_reference_with_gradients(mask_shape):
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
    keep = random_keep_mask(torch.Size([4, 3, 5, 7]), p, device=torch.device("cpu"))
    expected = reference(q, k, v, mask, scale, p, keep)
    torch.testing.assert_close(out, expected)

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
