"""Execution strategies of the position-wise FFN (:class:`~xearthformer.nn.PositionwiseFFN`).

The maths is :func:`xearthformer.nn.reference.positionwise_ffn`. Here:

:func:`lean_applies` / :func:`lean`
    *When:* training with autograd, pre-norm, exact GELU, a LayerNorm, no autocast
    (backend ``"auto"``). *What:* :class:`~xearthformer.nn.lean.LeanFFNFunction` keeps the
    input, the LayerNorm statistics, the hidden pre-activation and a ``bool`` dropout mask,
    and recomputes the element-wise parts in backward. *Gain:* about 40% less activation
    memory of the block for a few element-wise passes (no matrix product recomputed); its
    blocking of the 4x-wide temporaries saved 1.07x of the ENSO training step
    (``bench_fast_paths.py``, ``blocked_lean_ffn``).
:func:`blocked_applies` / :func:`blocked`
    *When:* CPU inference, pre-norm, more than 2 x
    :data:`~xearthformer.nn.lean.FFN_BLOCK_ROWS` rows, no autocast (backend ``"auto"``).
    *What:* rows in blocks of 4,096, so the normalised block, the 4x wider hidden layer and
    the update stay small and are reused; optionally written into the caller's input.
    *Gain:* fewer large fresh allocations (page faults cost as much as the products on
    virtual machines); the same sums, bit for bit. Switched off, ENSO inference took
    1.10-1.23x (batch 8) and 1.14-1.15x (96x192) the time (``blocked_ffn``).
:func:`plain`
    Everything else: ``x + update(norm(x))``, whose linears go through oneDNN with the exact
    GELU fused (:func:`~xearthformer.nn.fast_linear.linear`, about 2x ``F.linear`` for these
    tall, narrow products on the project's CPUs) under ``"auto"``, and are ``F.linear``
    otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import lean as lean_paths
from ..backend import fast_paths_enabled
from ..fast_linear import linear as fast_linear
from ..lean import lean_ffn, row_slices

__all__ = ["blocked", "blocked_applies", "lean", "lean_applies", "plain", "update"]


def _exact_gelu(ffn) -> bool:
    return type(ffn.activation) is nn.GELU and ffn.activation.approximate == "none"


def lean_applies(ffn, x: torch.Tensor) -> bool:
    """Training the standard block: take the memory-lean path of :mod:`~xearthformer.nn.lean`."""
    return (fast_paths_enabled() and ffn.training and torch.is_grad_enabled() and ffn.pre_norm
            and not ffn.gated_proj and _exact_gelu(ffn) and type(ffn.layer_norm) is nn.LayerNorm
            and not torch.is_autocast_enabled(ffn.ffn_1.weight.device.type))


def lean(ffn, x: torch.Tensor, *, overwrite_input: bool = False) -> torch.Tensor:
    """``x + ffn(norm(x))`` through :func:`~xearthformer.nn.lean.lean_ffn` (both dropouts fused)."""
    p = getattr(ffn.activation_dropout_layer, "p", 0.0)
    p_out = getattr(ffn.dropout_layer, "p", 0.0)
    return x + lean_ffn(x, ffn.layer_norm, ffn.ffn_1, ffn.ffn_2, p, p_out)


def blocked_applies(ffn, x: torch.Tensor) -> bool:
    """CPU inference on many tokens: run the FFN over blocks of rows."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or ffn.ffn_1.weight.requires_grad)
    return (fast_paths_enabled() and x.device.type == "cpu" and not ffn.training and not needs_grad
            and ffn.pre_norm and x.numel() > 2 * lean_paths.FFN_BLOCK_ROWS * x.shape[-1]
            and not torch.is_autocast_enabled("cpu"))


def blocked(ffn, x: torch.Tensor, *, overwrite_input: bool = False) -> torch.Tensor:
    """``x + ffn(norm(x))`` over blocks of rows; into ``x`` itself if ``overwrite_input``."""
    rows = x.reshape(-1, x.shape[-1])
    out = rows if overwrite_input else torch.empty_like(rows)
    for block in row_slices(rows.shape[0], lean_paths.FFN_BLOCK_ROWS):  # each block reads only its rows
        torch.add(rows[block], update(ffn, ffn.layer_norm(rows[block])), out=out[block])
    return out.view(x.shape)


def update(ffn, h: torch.Tensor) -> torch.Tensor:
    """``drop(ffn_2(drop(act(ffn_1(h)))))``: the FFN without norm and residual."""
    if ffn.gated_proj:
        h = ffn.activation(ffn.ffn_1_gate(h)) * ffn.ffn_1(h)
    elif _exact_gelu(ffn):
        h = fast_linear(h, ffn.ffn_1.weight, ffn.ffn_1.bias, activation="gelu")
    else:
        h = ffn.activation(fast_linear(h, ffn.ffn_1.weight, ffn.ffn_1.bias))
    h = ffn.activation_dropout_layer(h)
    return ffn.dropout_layer(fast_linear(h, ffn.ffn_2.weight, ffn.ffn_2.bias))


def plain(ffn, x: torch.Tensor, *, overwrite_input: bool = False) -> torch.Tensor:
    """``x + update(norm(x))`` (pre-norm) or ``norm(x + update(x))``."""
    if not ffn.pre_norm:
        return ffn.layer_norm(x + update(ffn, x))
    return x + update(ffn, ffn.layer_norm(x))
