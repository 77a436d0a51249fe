"""Our layers under ``torch.compile``: the eager-only CPU fast paths step aside.

The fast paths call oneDNN's linear directly (inductor lowers it only for frozen weights)
and pick tensor layouts by hand (the compiler picks its own). Under ``torch.compile`` they
give way to the plain torch ops, which the compiler fuses itself.
"""

from __future__ import annotations

import shutil

import pytest
import torch

import xearthformer.nn.attention as attention
import xearthformer.nn.fast_linear as fast_linear
from xearthformer.nn.layers import PositionwiseFFN
from xearthformer.nn.self_attention import CuboidSelfAttentionLayer


def test_fast_paths_step_aside_while_compiling(monkeypatch) -> None:
    x, w = torch.randn(4096, 16), torch.randn(8, 16)
    assert attention.small_attention_applies(x, keys=16)
    assert fast_linear._eligible(x, w) == fast_linear.onednn_available()
    monkeypatch.setattr(attention, "compiling", lambda: True)
    monkeypatch.setattr(fast_linear, "compiling", lambda: True)
    assert not attention.small_attention_applies(x, keys=16)
    assert not fast_linear._eligible(x, w)


def test_attention_and_ffn_compile_with_inductor_and_match_eager(skip_or_fail) -> None:
    """The default backend (inductor, C++ on CPU) compiles an attention layer and an FFN in
    inference, and the result equals eager's. Before the fast paths stepped aside, inductor
    failed on oneDNN's linear ("w.get_name() in V.graph.constants")."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        skip_or_fail("torch.compile on CPU needs a C++ compiler (g++)")
    torch.manual_seed(0)
    attn = CuboidSelfAttentionLayer(16, 2, cuboid_size=(2, 4, 4), strategy=("l", "l", "l"),
                                    padding_type="zeros").eval()
    ffn = PositionwiseFFN(16, 64, activation="gelu").eval()

    def block(x: torch.Tensor) -> torch.Tensor:
        return ffn(x + attn(x))

    x = torch.randn(2, 4, 8, 8, 16)
    with torch.no_grad():
        expected = block(x)
        compiled = torch.compile(block)(x)
    # inductor fuses and reorders the float32 sums (over 16..64 channels, a few chained):
    # reduction_error(64, float32) = 3.8e-6 per reduction of unit-size terms -> 1e-5
    torch.testing.assert_close(compiled, expected, rtol=1e-5, atol=1e-5)
