"""The dropout masks: their rate, their seeding, and the in-place application."""

import pytest
import torch

from xearthformer.nn.dropout import apply_drop_, dropped, random_drop_mask, random_keep_mask

CPU = torch.device("cpu")


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_drop_rate_is_p(p: float) -> None:
    torch.manual_seed(0)
    mask = random_drop_mask(torch.Size([400, 1000]), p, device=CPU)
    assert mask.dtype == torch.bool and mask.shape == (400, 1000)
    assert abs(mask.float().mean().item() - p) < 0.003  # 4 standard errors at p = 0.5


def test_masks_follow_torch_seed_and_generator() -> None:
    shape = torch.Size([3, 7, 11])
    torch.manual_seed(5)
    first = random_drop_mask(shape, 0.3, device=CPU)
    second = random_drop_mask(shape, 0.3, device=CPU)  # the default generator moved on
    torch.manual_seed(5)
    assert torch.equal(random_drop_mask(shape, 0.3, device=CPU), first)
    assert not torch.equal(first, second)
    # keep is the complement of drop for the same random state
    torch.manual_seed(5)
    assert torch.equal(random_keep_mask(shape, 0.3, device=CPU), ~first)
    a = random_drop_mask(shape, 0.3, device=CPU, generator=torch.Generator().manual_seed(1))
    b = random_drop_mask(shape, 0.3, device=CPU, generator=torch.Generator().manual_seed(1))
    c = random_drop_mask(shape, 0.3, device=CPU, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_neighbouring_elements_are_independent() -> None:
    # four mask elements share one 64-bit word: their slices must not be correlated
    torch.manual_seed(0)
    mask = random_drop_mask(torch.Size([250_000, 4]), 0.5, device=CPU).float()
    corr = torch.corrcoef(mask.t())
    off_diagonal = corr[~torch.eye(4, dtype=torch.bool)]
    assert off_diagonal.abs().max().item() < 0.01


@pytest.mark.parametrize("requires_grad", [False, True])
def test_apply_drop_equals_masked_fill(requires_grad: bool) -> None:
    torch.manual_seed(0)
    base = torch.randn(6, 9, dtype=torch.float64)
    drop = torch.rand(6, 9) < 0.4
    expected = base.masked_fill(drop, 0.0)
    leaf = base.clone().requires_grad_(requires_grad)
    t = leaf * 1.0 if requires_grad else leaf  # an in-place op needs a non-leaf under autograd
    out = apply_drop_(t, drop)
    assert out is t
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    if requires_grad:
        (grad,) = torch.autograd.grad(out.sum(), leaf)
        torch.testing.assert_close(grad, (~drop).double(), rtol=0, atol=0)
    original = base.clone()
    torch.testing.assert_close(dropped(base, drop), expected, rtol=0, atol=0)
    torch.testing.assert_close(base, original, rtol=0, atol=0)  # dropped() leaves its input alone


def test_apply_drop_rejects_a_mask_of_another_shape() -> None:
    with pytest.raises(ValueError, match=r"drop mask has shape \(3,\), the tensor \(2, 3\)"):
        apply_drop_(torch.ones(2, 3), torch.zeros(3, dtype=torch.bool))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [1, 7, 1000])  # scalar tail and vectorised kernels
def test_gelu_silent_value_has_zero_activation_and_gradient(dtype, n) -> None:
    # the lean FFN encodes its activation-dropout mask in the saved hidden tensor this way
    from xearthformer.nn.lean import GELU_SILENT

    h = torch.full((n,), GELU_SILENT, dtype=dtype)
    grad = torch.randn(n, dtype=dtype) * 1e3
    assert torch.equal(torch.nn.functional.gelu(h).abs(), torch.zeros(n, dtype=dtype))
    assert torch.equal(torch.ops.aten.gelu_backward(grad, h).abs(), torch.zeros(n, dtype=dtype))
