"""The reference path, the backend switch and the dispatcher.

The golden tests (tests/models) run every official case under each backend. Here the
three backends are compared with each other on the configurations the golden cases do not
cover (RMSNorm, qkv bias, 'nearest' padding, wide global vectors, gated and post-norm FFNs,
...), in float64 with gradients: the strategies are exact rearrangements of the reference's
sums, so they agree to float64 rounding (about 1e-16 relative, a few thousand operations
deep: 1e-12 absolute on outputs and gradients of order 1).
"""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import xearthformer.nn.reference as reference
from xearthformer.nn import (BACKENDS, ConfigError, CuboidCrossAttentionLayer, CuboidSelfAttentionLayer,
                             PositionwiseFFN, attention_backend, get_attention_backend, set_attention_backend)
from xearthformer.nn.execution import by_slabs, cpu, ffn, sdpa, select_ffn, select_self_attention

TOL = 1e-12  # float64, exact rearrangements of the same sums (see the module docstring)


def outputs_and_grads(module, inputs, backend):
    with attention_backend(backend):
        out = module(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view(o.shape)).sum() for o in outs)
    leaves = [t for t in inputs if t is not None] + list(module.parameters())
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [o.detach() for o in outs], grads


def assert_backends_agree(module, inputs):
    ref_out, ref_grads = outputs_and_grads(module, inputs, "reference")
    for backend in ("sdpa", "auto"):
        out, grads = outputs_and_grads(module, inputs, backend)
        for got, expected in zip(out, ref_out):
            torch.testing.assert_close(got, expected, rtol=0, atol=TOL, msg=f"{backend} output")
        for got, expected in zip(grads, ref_grads):
            if expected is None:
                assert got is None or not got.any()
                continue
            torch.testing.assert_close(got, expected, rtol=0, atol=TOL, msg=f"{backend} gradient")
    with torch.no_grad():  # inference takes other CPU strategies (short cuboids, blocked FFN)
        for backend in ("sdpa", "auto"):
            with attention_backend(backend):
                out = module(*inputs)
            for got, expected in zip(out if isinstance(out, tuple) else (out,), ref_out):
                torch.testing.assert_close(got, expected, rtol=0, atol=TOL, msg=f"{backend} inference")


def spread_bias(layer):
    if getattr(layer, "use_relative_pos", False):
        torch.nn.init.normal_(layer.relative_position_bias_table, std=1.0)  # so that a wrong index shows
    return layer


SELF_CASES = [
    dict(cuboid_size=(2, 3, 2), shift_size=(1, 1, 1), padding_type="ignore"),
    dict(cuboid_size=(3, 2, 2), padding_type="zeros"),                                     # zero tail
    dict(cuboid_size=(2, 4, 2), strategy=("d", "l", "d"), padding_type="nearest"),
    dict(cuboid_size=(2, 2, 2), qkv_bias=True, norm_layer="rms_norm", padding_type="zeros"),
    dict(cuboid_size=(2, 2, 3), shift_size=(1, 1, 1), use_relative_pos=False, padding_type="ignore"),
    dict(cuboid_size=(2, 3, 2), use_global_vector=True, padding_type="zeros"),
    dict(cuboid_size=(2, 3, 2), shift_size=(1, 1, 0), use_global_vector=True, use_global_self_attn=True,
         separate_global_qkv=True, global_dim_ratio=2, padding_type="ignore"),
    dict(cuboid_size=(1, 4, 4), use_global_vector=True, use_global_self_attn=True, padding_type="ignore"),
    dict(cuboid_size=(2, 2, 2), use_final_proj=False, padding_type="zeros"),
]


@pytest.mark.parametrize("kwargs", SELF_CASES)
@pytest.mark.parametrize("training", [False, True])
def test_self_attention_backends_agree(kwargs, training):
    torch.manual_seed(0)
    layer = spread_bias(CuboidSelfAttentionLayer(8, 2, **kwargs)).double().train(training)
    x = torch.randn(2, 5, 6, 5, 8, dtype=torch.float64, requires_grad=True)
    g = None
    if layer.use_global_vector:
        g = torch.randn(2, 3, 8 * layer.global_dim_ratio, dtype=torch.float64, requires_grad=True)
    assert_backends_agree(layer, (x, g))


CROSS_CASES = [
    dict(n_temporal=1, cuboid_hw=(1, 1)),
    dict(n_temporal=2, cuboid_hw=(2, 3), shift_hw=(1, 1), padding_type="ignore"),
    dict(n_temporal=1, cuboid_hw=(2, 2), strategy=("d", "l", "d"), use_relative_pos=False),
    dict(n_temporal=2, cuboid_hw=(2, 2), strategy=("d", "l", "l"), qkv_bias=True, cross_last_n_frames=4),
    dict(n_temporal=1, cuboid_hw=(2, 3), use_global_vector=True),
    dict(n_temporal=1, cuboid_hw=(2, 3), shift_hw=(1, 1), use_global_vector=True, separate_global_qkv=True,
         global_dim_ratio=2),
]


@pytest.mark.parametrize("kwargs", CROSS_CASES)
def test_cross_attention_backends_agree(kwargs):
    torch.manual_seed(0)
    kwargs = {"strategy": ("l", "l", "l"), "padding_type": "zeros", "use_global_vector": False,
              "max_temporal_relative": 12, **kwargs}
    layer = spread_bias(CuboidCrossAttentionLayer(8, 2, **kwargs)).double().train()
    x = torch.randn(2, 4, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    mem = torch.randn(2, 6, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    g = None
    if layer.use_global_vector:
        g = torch.randn(2, 3, 8 * layer.global_dim_ratio, dtype=torch.float64, requires_grad=True)
    assert_backends_agree(layer, (x, mem, g))


@pytest.mark.parametrize("kwargs", [dict(activation="gelu"), dict(activation="leaky", gated_proj=True),
                                    dict(activation="gelu", pre_norm=False), dict(normalization="rms_norm")])
def test_ffn_backends_agree(kwargs, monkeypatch):
    import xearthformer.nn.lean as lean

    monkeypatch.setattr(lean, "FFN_BLOCK_ROWS", 7)  # the blocked paths run several blocks
    torch.manual_seed(0)
    module = PositionwiseFFN(6, 24, **kwargs).double().train()
    x = torch.randn(2, 5, 3, 4, 6, dtype=torch.float64, requires_grad=True)
    assert_backends_agree(module, (x,))


def test_backend_switch_and_context_manager():
    assert get_attention_backend() == "auto" and BACKENDS == ("reference", "sdpa", "auto")
    with attention_backend("sdpa"):
        assert get_attention_backend() == "sdpa"
        with pytest.raises(RuntimeError), attention_backend("reference"):
            raise RuntimeError("restored even on error")
        assert get_attention_backend() == "sdpa"
    assert get_attention_backend() == "auto"
    try:
        set_attention_backend("reference")
        assert get_attention_backend() == "reference"
    finally:
        set_attention_backend("auto")
    with pytest.raises(ConfigError, match="unknown attention backend 'flash'.*'reference', 'sdpa', 'auto'"):
        set_attention_backend("flash")
    assert get_attention_backend() == "auto"


def test_dispatcher_picks_the_strategy_the_backend_allows(monkeypatch):
    layer = CuboidSelfAttentionLayer(8, 2, cuboid_size=(2, 2, 2), padding_type="zeros").eval()
    tail = CuboidSelfAttentionLayer(8, 2, cuboid_size=(4, 2, 2), padding_type="zeros").eval()
    x = torch.randn(1, 6, 4, 4, 8)
    with torch.no_grad():
        assert select_self_attention(layer, x, None) is sdpa.self_attention  # too few tokens for slabs
        assert select_self_attention(tail, x, None) is cpu.zero_tail
        monkeypatch.setattr(cpu, "ATTENTION_SLAB_TOKENS", 8)
        assert select_self_attention(layer, x, None) is by_slabs
        with attention_backend("sdpa"):
            assert select_self_attention(layer, x, None) is sdpa.self_attention
            assert select_self_attention(tail, x, None) is sdpa.self_attention
        with attention_backend("reference"):
            assert select_self_attention(layer, x, None) is reference.cuboid_self_attention
    module = PositionwiseFFN(8, 32, activation="gelu").train()
    assert select_ffn(module, x) is ffn.lean
    with attention_backend("sdpa"):
        assert select_ffn(module, x) is ffn.plain


def test_reference_path_makes_no_device_specific_call():
    """The reference reads like the paper: torch + einops, nothing chosen by device or kernel."""
    forbidden = re.compile(r"mkldnn|onednn|torch\.ops|autograd\.Function|device\.type|\"cpu\"|numpy|"
                           r"scaled_dot_product|is_compiling|_compile|fast_linear|lean|\.attention import")
    for module in (reference.self_attention, reference.cross_attention, reference.ffn):
        source = inspect.getsource(module)
        assert not forbidden.findall(source), (module.__name__, forbidden.findall(source))
        code_lines = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
        assert len(code_lines) < 160, f"{module.__name__} should read in one sitting"


def test_concepts_walkthrough_quotes_the_reference_as_it_is():
    """docs/concepts.md walks through the reference path with snippets copied from it: each
    snippet line must still be a line of the file it names."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "concepts.md").read_text()
    blocks = re.findall(r"```python\n# (xearthformer/nn/reference/\S+\.py)\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4, "the walk-through should quote the reference path"
    for path, body in blocks:
        source_lines = {line.strip() for line in (root / path).read_text().splitlines()}
        for line in body.splitlines():
            if line.strip():
                assert line.strip() in source_lines, f"{path}: {line.strip()!r} is no longer in the file"
