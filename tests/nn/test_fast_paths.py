"""The CPU fast paths equal the straightforward computations they replace.

Each fast path is compared, in float64 where rounding would hide a mistake, with the
direct formulation (the one the official code uses): nearest upsampling + convolution,
SDPA, and attention on the zero-padded grid.

Tolerances (docs/conventions.md, "Tolerances"): the two sides sum the same terms of unit-size
random inputs in another order, over reductions of at most ~500 terms, a few in a chain:
``reduction_error(500, float64) * sum|terms|`` is ~6e-14 per reduction, so outputs are held to
1e-12 (1e-13 where only one reduction differs) and gradients, whose terms are larger and pass
twice as many reductions, to 1e-10. The float32 oneDNN linears are held to torch's float32
tolerances scaled to their reduction: ``reduction_error(16, float32) * sum|x w|`` ~ 1e-5 for
outputs, 1e-4 for gradients summed over 150 rows.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xearthformer.nn import attention as attention_module
from xearthformer.nn import attention_backend
from xearthformer.nn.attention import small_attention
from xearthformer.nn.layers import Upsample3DLayer
from xearthformer.nn.execution import cpu as cpu_module
from xearthformer.nn.execution import ffn as ffn_module
from xearthformer.nn.execution import sdpa as sdpa_module
from xearthformer.nn.self_attention import CuboidSelfAttentionLayer
from xearthformer.nn.upsample_conv import nearest_upsample_conv2d, phase_taps


# -- nearest upsampling followed by a convolution ------------------------------------------
@pytest.mark.parametrize("scale", [(2, 2), (3, 3), (2, 3), (1, 2), (4, 1)])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_upsample_conv_equals_interpolate_then_conv(scale, kernel) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    weight = torch.randn(4, 3, kernel, kernel, dtype=torch.float64, generator=gen, requires_grad=True)
    bias = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    up = F.interpolate(x, size=(5 * scale[0], 4 * scale[1]), mode="nearest")
    direct = F.conv2d(up, weight, bias, padding=kernel // 2)
    fast = nearest_upsample_conv2d(x, weight, bias, scale)
    assert fast.shape == direct.shape
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-12)
    grad = torch.randn(direct.shape, dtype=torch.float64, generator=gen)
    expected = torch.autograd.grad(direct, (x, weight, bias), grad)
    got = torch.autograd.grad(fast, (x, weight, bias), grad)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-10)


def test_phase_taps_cover_every_kernel_tap() -> None:
    for scale in (1, 2, 3, 4):
        for kernel in (1, 3, 5):
            for a, (first, offsets) in enumerate(phase_taps(scale, kernel)):
                assert len(offsets) == kernel and first == min(offsets)
                half = kernel // 2
                assert offsets == tuple((a + r) // scale for r in range(-half, half + 1))


def test_upsample_layer_takes_the_fast_path_and_matches(monkeypatch) -> None:
    torch.manual_seed(0)
    layer = Upsample3DLayer(6, 5, (3, 12, 9)).double()
    x = torch.randn(2, 3, 4, 3, 6, dtype=torch.float64)
    calls = []
    original = nearest_upsample_conv2d
    monkeypatch.setattr("xearthformer.nn.layers.nearest_upsample_conv2d",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    fast = layer(x)
    assert calls, "a whole-factor enlargement should take nearest_upsample_conv2d"
    monkeypatch.setattr("xearthformer.nn.layers._whole_scale", lambda *a: None)
    direct = layer(x)
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-12)
    assert fast.shape == (2, 3, 12, 9, 5)


def test_upsample_conv_rejects_even_kernels() -> None:
    with pytest.raises(ValueError, match="odd kernel"):
        nearest_upsample_conv2d(torch.randn(1, 2, 3, 3), torch.randn(2, 2, 2, 2), None, (2, 2))


# -- attention over many short cuboids ------------------------------------------------------
@pytest.mark.parametrize("keys", [3, 8, 12, 14, 24, 32])
@pytest.mark.parametrize("mask_kind", ["none", "bias", "per_cuboid"])
def test_small_attention_equals_sdpa(keys, mask_kind) -> None:
    gen = torch.Generator().manual_seed(keys)
    b, n, heads, lq, d = 3, 5, 2, 7, 4
    q = torch.randn(b, n, heads, lq, d, dtype=torch.float64, generator=gen)
    k = torch.randn(b, n, heads, keys, d, dtype=torch.float64, generator=gen)
    v = torch.randn(b, n, heads, keys, 6, dtype=torch.float64, generator=gen)
    mask = None
    if mask_kind == "bias":
        mask = torch.randn(1, heads, lq, keys, dtype=torch.float64, generator=gen)
    elif mask_kind == "per_cuboid":
        mask = torch.randn(n, heads, lq, keys, dtype=torch.float64, generator=gen)
        mask[..., 0] = -1e18  # a masked key, as the shift masks make
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    torch.testing.assert_close(small_attention(q, k, v, attn_mask=mask, scale=0.3), expected,
                               rtol=0, atol=1e-12)
    q4, k4, v4 = (t.flatten(0, 1) for t in (q, k, v))
    mask4 = None if mask is None or mask_kind == "per_cuboid" else mask
    expected4 = F.scaled_dot_product_attention(q4, k4, v4, attn_mask=mask4, scale=0.3)
    torch.testing.assert_close(small_attention(q4, k4, v4, attn_mask=mask4, scale=0.3), expected4,
                               rtol=0, atol=1e-12)


def test_small_attention_chunks_give_the_same_result(monkeypatch) -> None:
    q, k, v = (torch.randn(40, 2, 12, 4, dtype=torch.float64) for _ in range(3))
    whole = small_attention(q, k, v, attn_mask=None, scale=0.5)
    monkeypatch.setattr(attention_module, "_CHUNK_BYTES", 1)  # one problem per chunk
    torch.testing.assert_close(small_attention(q, k, v, attn_mask=None, scale=0.5), whole, rtol=0, atol=0)


def test_small_attention_is_used_only_without_autograd() -> None:
    q, k, v = (torch.randn(2, 2, 12, 4, requires_grad=True) for _ in range(3))
    assert not attention_module._small_cpu_case(q, k, v)
    with torch.no_grad():
        assert attention_module._small_cpu_case(q, k, v)
    long_keys = torch.randn(2, 2, attention_module.SMALL_KEYS + 1, 4)
    with torch.no_grad():
        assert not attention_module._small_cpu_case(q, long_keys, long_keys)


# -- zero-padded time: the folded padded keys -----------------------------------------------
@pytest.mark.parametrize("t, cuboid", [(14, (12, 1, 1)), (5, (4, 2, 1)), (7, (3, 2, 3)), (9, (4, 2, 2))])
@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("training", [False, True])
def test_zero_tail_equals_the_padded_grid(monkeypatch, t, cuboid, relative, training) -> None:
    torch.manual_seed(0)
    layer = CuboidSelfAttentionLayer(8, 2, cuboid_size=cuboid, padding_type="zeros",
                                     use_relative_pos=relative).double()
    if relative:  # a spread-out bias, so that the folded keys matter
        torch.nn.init.normal_(layer.relative_position_bias_table, std=1.0)
    layer.train(training)
    x = torch.randn(2, t, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    calls = []
    original = cpu_module.zero_tail
    monkeypatch.setattr(cpu_module, "zero_tail", lambda *a: calls.append(1) or original(*a))
    fast = layer(x)
    grads_fast = torch.autograd.grad(fast.square().sum(), [x, *layer.parameters()])
    monkeypatch.setattr(cpu_module, "zero_tail_applies", lambda *a: False)
    direct = layer(x)
    grads_direct = torch.autograd.grad(direct.square().sum(), [x, *layer.parameters()])
    assert calls, "time padded with zeros should take the folded-key path"
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-12)
    for got, expected in zip(grads_fast, grads_direct):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


def test_zero_tail_is_not_used_where_padding_is_not_plain_zeros() -> None:
    for kwargs in ({"padding_type": "ignore"}, {"padding_type": "zeros", "qkv_bias": True},
                   {"padding_type": "zeros", "shift_size": (1, 0, 0)},
                   {"padding_type": "zeros", "strategy": ("d", "l", "l")}):
        layer = CuboidSelfAttentionLayer(8, 2, cuboid_size=(4, 1, 1), **kwargs)
        assert not cpu_module.zero_tail_applies(layer, torch.randn(1, 6, 2, 2, 8)), kwargs
    plain = CuboidSelfAttentionLayer(8, 2, cuboid_size=(4, 1, 1), padding_type="zeros")
    assert cpu_module.zero_tail_applies(plain, torch.randn(1, 6, 2, 2, 8))
    assert not cpu_module.zero_tail_applies(plain, torch.randn(1, 8, 2, 2, 8))  # nothing padded
    with attention_backend("sdpa"):
        assert not cpu_module.zero_tail_applies(plain, torch.randn(1, 6, 2, 2, 8))


# -- oneDNN linears in training ---------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_linear_gradients_match_f_linear(bias) -> None:
    from xearthformer.nn.fast_linear import linear, onednn_available, weight_grad

    torch.manual_seed(0)
    x = torch.randn(3, 50, 16, requires_grad=True)
    w = torch.randn(24, 16, requires_grad=True)
    b = torch.randn(24, requires_grad=True) if bias else None
    out = linear(x, w, b)
    expected = F.linear(x, w, b)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    if onednn_available():
        assert "OneDNN" in type(out.grad_fn.next_functions[0][0]).__name__  # under the view
    params = [t for t in (x, w, b) if t is not None]
    grad = torch.randn(out.shape)
    for got, ref in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(expected, params, grad)):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    g, rows = torch.randn(70, 5), torch.randn(70, 9)
    torch.testing.assert_close(weight_grad(g, rows), g.t() @ rows, rtol=1e-5, atol=1e-5)


def test_attention_off_the_cpu_passes_dropout_to_sdpa(monkeypatch) -> None:
    """The dispatch of the GPU test below, checked on any machine: on a device other than the
    CPU (here "meta"), attention is SDPA itself with the dropout passed to its kernel."""
    from xearthformer.nn.attention import attention

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *args, **kwargs: calls.append(kwargs) or sdpa(*args, **kwargs))
    q, k, v = (torch.empty(64, 4, 24, 16, device="meta") for _ in range(3))
    out = attention(q, k, v, attn_mask=None, scale=0.25, dropout_p=0.5)
    assert out.shape == (64, 4, 24, 16) and out.device.type == "meta"
    assert [c["dropout_p"] for c in calls] == [0.5] and calls[0]["scale"] == 0.25


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="runs the fused CUDA SDPA kernel, so it needs a CUDA device; the dispatch to "
                           "it is checked without one by test_attention_off_the_cpu_passes_dropout_to_sdpa")
def test_gpu_attention_applies_dropout_in_the_fused_kernel() -> None:
    from xearthformer.nn.attention import attention

    q, k, v = (torch.randn(64, 4, 24, 16, device="cuda") for _ in range(3))
    without = attention(q, k, v, attn_mask=None, scale=0.25)
    torch.testing.assert_close(without, F.scaled_dot_product_attention(q, k, v, scale=0.25))
    with_dropout = attention(q, k, v, attn_mask=None, scale=0.25, dropout_p=0.5)
    assert not torch.allclose(with_dropout, without)


# -- cutting q, k, v into cuboids: the one-pass backward ---------------------------------------
@pytest.mark.parametrize("strategy", [("l", "l", "l"), ("d", "l", "d")])
@pytest.mark.parametrize("cuboid", [(1, 1, 6), (1, 4, 1), (2, 1, 1), (4, 1, 1), (2, 2, 3)])  # time cuts are copies
def test_cut_stacked_equals_rearrange_forward_and_backward(strategy, cuboid) -> None:
    from einops import rearrange

    from xearthformer.nn.cuboid import reorder_pattern
    from xearthformer.nn.execution.cuts import cut_stacked

    x = torch.randn(2, 4, 4, 6, 3 * 2 * 5, dtype=torch.float64, requires_grad=True)
    pattern = reorder_pattern(strategy, True)
    axes = dict(k=3, heads=2, bt=cuboid[0], bh=cuboid[1], bw=cuboid[2])
    fast = cut_stacked(x, pattern, **axes)
    plain = tuple(rearrange(x, pattern, **axes))
    assert all(torch.equal(a, b) for a, b in zip(fast, plain))
    grads = [torch.randn_like(t) for t in fast]
    grads[1] = None if cuboid == (2, 1, 1) else grads[1]  # an unused output
    used = [(t, g) for t, g in zip(fast, grads) if g is not None]
    used_plain = [(t, g) for t, g in zip(plain, grads) if g is not None]
    got = torch.autograd.grad([t for t, _ in used], x, [g for _, g in used])[0]
    expected = torch.autograd.grad([t for t, _ in used_plain], x, [g for _, g in used_plain])[0]
    assert torch.equal(got, expected)


# -- inference: q, k, v cut, scaled and key-padded in one pass ---------------------------------
@pytest.mark.parametrize("strategy", [("l", "l", "l"), ("d", "l", "d")])
@pytest.mark.parametrize("cuboid", [(4, 1, 1), (1, 4, 1), (2, 2, 3)])
@pytest.mark.parametrize("zero_keys", [0, 1, 5])
def test_cut_qkv_padded_equals_cut_then_pad_then_scale(strategy, cuboid, zero_keys) -> None:
    from xearthformer.nn.cuboid import reorder_pattern
    from xearthformer.nn.execution.cuts import cut_qkv_padded, cut_stacked

    x = torch.randn(2, 4, 4, 6, 3 * 2 * 5, dtype=torch.float64)
    pattern = reorder_pattern(strategy, True)
    axes = dict(heads=2, bt=cuboid[0], bh=cuboid[1], bw=cuboid[2])
    q0, k0, v0 = cut_stacked(x, pattern, k=3, **axes)
    q, k, v = cut_qkv_padded(x, pattern, q_scale=0.25, zero_keys=zero_keys, **axes)
    volume = cuboid[0] * cuboid[1] * cuboid[2]
    assert k.shape[-2] % 8 == 0 and k.shape[-2] >= volume + zero_keys
    torch.testing.assert_close(q, q0 * 0.25, rtol=0, atol=0)
    for got, expected in ((k, k0), (v, v0)):
        torch.testing.assert_close(got[..., :volume, :], expected, rtol=0, atol=0)
        assert not got[..., volume:, :].any()


@pytest.mark.parametrize("kwargs, t", [
    ({"cuboid_size": (3, 2, 2), "shift_size": (1, 1, 1), "padding_type": "ignore"}, 5),
    ({"cuboid_size": (2, 2, 3), "strategy": ("d", "l", "d"), "padding_type": "zeros"}, 4),
    ({"cuboid_size": (4, 1, 1), "padding_type": "zeros"}, 7),                 # zero tail
    ({"cuboid_size": (4, 2, 1), "padding_type": "zeros", "use_relative_pos": False}, 9),
])
def test_one_pass_inference_cut_equals_the_general_path(monkeypatch, kwargs, t) -> None:
    torch.manual_seed(0)
    layer = CuboidSelfAttentionLayer(8, 2, **kwargs).double().eval()
    if layer.use_relative_pos:
        torch.nn.init.normal_(layer.relative_position_bias_table, std=1.0)
    x = torch.randn(2, t, 4, 6, 8, dtype=torch.float64)
    calls = []
    original = cpu_module.attend_small
    monkeypatch.setattr(cpu_module, "attend_small", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    with torch.no_grad():
        fast = layer(x)
        for module in (sdpa_module, cpu_module):
            monkeypatch.setattr(module, "small_attention_applies", lambda *a: False)
        general = layer(x)
    assert calls, "float64 inference with short cuboids should take the one-pass cut"
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-12)


# -- inference: the FFN over blocks of rows, residuals added in place ------------------------
@pytest.mark.parametrize("gated, activation", [(False, "gelu"), (True, "leaky"), (False, "leaky")])
def test_blocked_inference_ffn_equals_the_whole_ffn(monkeypatch, gated, activation) -> None:
    import xearthformer.nn.lean as lean_module
    from xearthformer.nn.layers import PositionwiseFFN

    monkeypatch.setattr(lean_module, "FFN_BLOCK_ROWS", 7)  # many blocks, a partial last one
    torch.manual_seed(0)
    ffn = PositionwiseFFN(6, 24, gated_proj=gated, activation=activation).double().eval()
    x = torch.randn(2, 5, 3, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        assert ffn_module.blocked_applies(ffn, x)
        blocked = ffn(x)
        monkeypatch.setattr(ffn_module, "blocked_applies", lambda *a: False)
        whole = ffn(x)
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-13)


def test_blocked_ffn_writes_into_its_input_only_when_allowed(monkeypatch) -> None:
    import xearthformer.nn.lean as lean_module
    from xearthformer.nn.layers import PositionwiseFFN

    monkeypatch.setattr(lean_module, "FFN_BLOCK_ROWS", 7)
    torch.manual_seed(0)
    ffn = PositionwiseFFN(6, 24).double().eval()
    x = torch.randn(2, 5, 3, 4, 6, dtype=torch.float64)
    original = x.clone()
    with torch.no_grad():
        fresh = ffn(x)
        assert torch.equal(x, original) and fresh.data_ptr() != x.data_ptr()
        into_input = ffn(x, overwrite_input=True)
    assert into_input.data_ptr() == x.data_ptr()  # written into x, block by block
    torch.testing.assert_close(into_input, fresh, rtol=0, atol=0)
    y = original.clone().requires_grad_(True)  # autograd: never in place
    out = ffn(y, overwrite_input=True)
    assert out.data_ptr() != y.data_ptr() and torch.equal(y.detach(), original)


def test_stacks_leave_their_input_intact_in_inference(monkeypatch) -> None:
    import xearthformer.nn.lean as lean_module
    from xearthformer.nn.blocks import StackCuboidCrossAttentionBlock, StackCuboidSelfAttentionBlock

    monkeypatch.setattr(lean_module, "FFN_BLOCK_ROWS", 7)  # the FFNs write into the residual sums
    torch.manual_seed(0)
    self_stack = StackCuboidSelfAttentionBlock(8, 2, [(2, 2, 2)] * 2, [(0, 0, 0), (1, 1, 1)], [("l", "l", "l")] * 2,
                                               use_inter_ffn=True).double().eval()
    cross_stack = StackCuboidCrossAttentionBlock(8, 2, [(2, 2)], [(0, 0)], [1], [("l", "l", "l")]).double().eval()
    x, mem = torch.randn(1, 4, 4, 4, 8, dtype=torch.float64), torch.randn(1, 3, 4, 4, 8, dtype=torch.float64)
    kept_x, kept_mem = x.clone(), mem.clone()
    with torch.no_grad():
        out_self, out_cross = self_stack(x), cross_stack(x, mem)
        monkeypatch.setattr(lean_module, "FFN_BLOCK_ROWS", 1 << 30)  # no blocks: plain FFNs
        plain_self, plain_cross = self_stack(x), cross_stack(x, mem)
    assert torch.equal(x, kept_x) and torch.equal(mem, kept_mem)
    torch.testing.assert_close(out_self, plain_self, rtol=0, atol=1e-13)
    torch.testing.assert_close(out_cross, plain_cross, rtol=0, atol=1e-13)


def test_blocked_ffn_is_not_used_with_autograd_or_in_training(monkeypatch) -> None:
    import xearthformer.nn.lean as lean_module
    from xearthformer.nn.layers import PositionwiseFFN

    monkeypatch.setattr(lean_module, "FFN_BLOCK_ROWS", 7)
    ffn = PositionwiseFFN(6, 24)
    x = torch.randn(4, 30, 6)
    assert not ffn_module.blocked_applies(ffn.eval(), x)  # autograd on (the weights require grad)
    with torch.no_grad():
        assert ffn_module.blocked_applies(ffn.eval(), x)
        assert not ffn_module.blocked_applies(ffn.train(), x)  # dropout layers are live in training
        assert not ffn_module.blocked_applies(PositionwiseFFN(6, 24, pre_norm=False).eval(), x)
        assert not ffn_module.blocked_applies(ffn.eval(), torch.randn(2, 6))  # too few rows to block
        with attention_backend("sdpa"):
            assert not ffn_module.blocked_applies(ffn.eval(), x)


def test_residual_adds_in_place_only_without_autograd() -> None:
    from xearthformer.nn.blocks import _residual

    x, update = torch.randn(3, 4), torch.randn(3, 4)
    expected = x + update
    with torch.no_grad():
        out = _residual(x, update.clone())
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    x.requires_grad_(True)
    update = torch.randn(3, 4)
    out = _residual(x, update)
    assert out is not update and not torch.equal(update, out)  # update untouched
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(3, 4))


@pytest.mark.parametrize("kwargs, t_x, t_mem", [
    ({"n_temporal": 1, "cuboid_hw": (1, 1)}, 14, 12),                         # ENSO's cross_1x1
    ({"n_temporal": 2, "cuboid_hw": (2, 3), "shift_hw": (1, 1), "padding_type": "ignore"}, 5, 7),
    ({"n_temporal": 1, "cuboid_hw": (2, 2), "strategy": ("d", "l", "d"), "use_relative_pos": False}, 3, 4),
])
def test_one_pass_inference_cut_in_cross_attention(monkeypatch, kwargs, t_x, t_mem) -> None:
    from xearthformer.nn.cross_attention import CuboidCrossAttentionLayer

    torch.manual_seed(0)
    layer = CuboidCrossAttentionLayer(8, 2, use_global_vector=False, **kwargs).double().eval()
    if layer.use_relative_pos:
        torch.nn.init.normal_(layer.relative_position_bias_table, std=1.0)
    x = torch.randn(2, t_x, 4, 6, 8, dtype=torch.float64)
    mem = torch.randn(2, t_mem, 4, 6, 8, dtype=torch.float64)
    calls = []
    original = sdpa_module.cut_kv_padded
    monkeypatch.setattr(sdpa_module, "cut_kv_padded", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    with torch.no_grad():
        fast = layer(x, mem)
        monkeypatch.setattr(sdpa_module, "small_attention_applies", lambda *a: False)
        general = layer(x, mem)
    assert calls, "float64 inference with short cuboids should take the one-pass cut"
    torch.testing.assert_close(fast, general, rtol=0, atol=1e-12)


# -- CPU-inference self-attention over slabs of cuboids -------------------------------------
@pytest.mark.parametrize("kwargs, shape, slab_axis", [
    (dict(cuboid_size=(2, 4, 4), strategy=("l", "l", "l")), (2, 6, 8, 8), 1),          # slabs along t
    (dict(cuboid_size=(6, 1, 1), strategy=("l", "l", "l")), (2, 6, 8, 8), 2),          # axial time
    (dict(cuboid_size=(1, 8, 1), strategy=("l", "l", "l")), (2, 6, 8, 8), 3),          # axial height
    (dict(cuboid_size=(2, 4, 4), shift_size=(1, 2, 0), strategy=("l", "l", "l")), (2, 6, 8, 8), 3),
    (dict(cuboid_size=(2, 4, 4), strategy=("d", "d", "l")), (2, 6, 8, 8), 3),          # dilated t, h
    (dict(cuboid_size=(4, 4, 4), strategy=("l", "l", "l"), padding_type="zeros"), (2, 6, 8, 8), 2),  # zero tail
    (dict(cuboid_size=(4, 3, 4), strategy=("l", "l", "l"), padding_type="ignore"), (2, 6, 8, 8), 3),
    (dict(cuboid_size=(4, 4, 3), strategy=("l", "l", "l"), padding_type="nearest"), (2, 6, 8, 8), 2),
    (dict(cuboid_size=(2, 4, 4), strategy=("d", "d", "d")), (2, 6, 8, 8), None),       # nothing local
])
def test_slabs_of_cuboids_equal_the_whole_grid(kwargs, shape, slab_axis, monkeypatch) -> None:
    torch.manual_seed(0)
    layer = CuboidSelfAttentionLayer(16, 4, **kwargs).double().eval()
    x = torch.randn(*shape, 16, dtype=torch.float64)
    monkeypatch.setattr(cpu_module, "ATTENTION_SLAB_TOKENS", 40)
    with torch.no_grad():
        slabs = cpu_module.slabs(layer, x, None)
        assert (slabs and slabs[0]) == slab_axis
        if slab_axis is not None:
            assert slabs[1] < x.shape[slab_axis]  # more than one slab
        by_slabs = layer(x)
        monkeypatch.setattr(cpu_module, "slabs", lambda *a: None)
        whole = layer(x)
    torch.testing.assert_close(by_slabs, whole, rtol=0, atol=1e-12)


def test_slabs_only_in_cpu_inference(monkeypatch) -> None:
    monkeypatch.setattr(cpu_module, "ATTENTION_SLAB_TOKENS", 40)
    layer = CuboidSelfAttentionLayer(16, 4, cuboid_size=(2, 4, 4))
    x = torch.randn(2, 6, 8, 8, 16)
    assert cpu_module.slabs(layer.eval(), x, None) is None  # autograd records (parameters need grad)
    with torch.no_grad():
        assert cpu_module.slabs(layer.eval(), x, None) is not None
        assert cpu_module.slabs(layer.train(), x, None) is None
        with attention_backend("sdpa"):
            assert cpu_module.slabs(layer.eval(), x, None) is None
    glob = CuboidSelfAttentionLayer(16, 4, cuboid_size=(2, 4, 4), use_global_vector=True).eval()
    with torch.no_grad():
        assert cpu_module.slabs(glob, x, torch.randn(2, 3, 16)) is None
