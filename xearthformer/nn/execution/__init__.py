"""How each cuboid layer is computed: a small per-layer dispatcher over execution strategies.

The layers (:class:`~xearthformer.nn.CuboidSelfAttentionLayer`,
:class:`~xearthformer.nn.CuboidCrossAttentionLayer`, :class:`~xearthformer.nn.PositionwiseFFN`)
own their parameters and check their inputs; on each call they ask this module which
strategy computes them, from the backend (:func:`~xearthformer.nn.set_attention_backend`)
and the call (device, autograd, sizes, configuration):

==============  ==============================  =============================  ========================
backend         self-attention                  cross-attention                FFN
==============  ==============================  =============================  ========================
``reference``   :mod:`..reference`              :mod:`..reference`             :mod:`..reference`
``sdpa``        :func:`.sdpa.self_attention`    :func:`.sdpa.cross_attention`  :func:`.ffn.plain`
``auto``        :func:`by_slabs`,               as ``sdpa``, with the CPU      :func:`.ffn.lean`,
                :func:`.cpu.zero_tail` or       kernels where they apply       :func:`.ffn.blocked` or
                ``sdpa`` with the CPU kernels                                  :func:`.ffn.plain`
==============  ==============================  =============================  ========================

Under ``"auto"`` the first strategy whose condition holds is taken; the conditions and the
measured gains are in :mod:`.cpu` and :mod:`.ffn`, and in the kernel modules
(:mod:`~xearthformer.nn.attention`, :mod:`~xearthformer.nn.fast_linear`,
:mod:`~xearthformer.nn.lean`, :mod:`~xearthformer.nn.dropout`). Every strategy computes the
reference's maths; the golden tests run under every backend.

>>> import torch
>>> from xearthformer.nn import CuboidSelfAttentionLayer, attention_backend
>>> layer = CuboidSelfAttentionLayer(8, 2, cuboid_size=(4, 1, 1), padding_type="zeros").eval()
>>> x = torch.randn(1, 6, 2, 2, 8)
>>> with torch.no_grad():
...     select_self_attention(layer, x, None).__qualname__
'zero_tail'
>>> with torch.no_grad(), attention_backend("sdpa"):
...     select_self_attention(layer, x, None).__module__
'xearthformer.nn.execution.sdpa'
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import reference
from ..backend import get_attention_backend
from . import cpu, ffn, sdpa

__all__ = ["by_slabs", "select_cross_attention", "select_ffn", "select_self_attention"]


def select_self_attention(layer, x: torch.Tensor, global_vectors: torch.Tensor | None) -> Callable:
    """The function ``f(layer, x, global_vectors)`` that computes this self-attention call."""
    if get_attention_backend() == "reference":
        return reference.cuboid_self_attention
    if cpu.slabs(layer, x, global_vectors):
        return by_slabs
    return _whole_grid(layer, x, global_vectors)


def _whole_grid(layer, x: torch.Tensor, global_vectors: torch.Tensor | None) -> Callable:
    return cpu.zero_tail if cpu.zero_tail_applies(layer, x, global_vectors) else sdpa.self_attention


def by_slabs(layer, x: torch.Tensor, global_vectors: torch.Tensor | None = None) -> torch.Tensor:
    """Self-attention over slabs of whole cuboids (:func:`.cpu.slabs`), each slab by its own strategy."""
    axis, step = cpu.slabs(layer, x, global_vectors)
    return cpu.by_slabs(lambda lay, slab: _whole_grid(lay, slab, None)(lay, slab), layer, x, axis, step)


def select_cross_attention(layer, x: torch.Tensor, mem: torch.Tensor) -> Callable:
    """The function ``f(layer, x, mem, mem_global_vectors)`` that computes this cross-attention call."""
    if get_attention_backend() == "reference":
        return reference.cuboid_cross_attention
    return sdpa.cross_attention


def select_ffn(module, x: torch.Tensor) -> Callable:
    """The function ``f(ffn, x, overwrite_input=...)`` that computes this FFN call.

    ``overwrite_input`` is a hint: only :func:`.ffn.blocked` writes into its input.
    """
    if get_attention_backend() == "reference":
        return lambda m, h, overwrite_input=False: reference.positionwise_ffn(m, h)
    if ffn.lean_applies(module, x):
        return ffn.lean
    if ffn.blocked_applies(module, x):
        return ffn.blocked
    return ffn.plain
