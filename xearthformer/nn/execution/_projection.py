"""The per-token projections of a self-attention layer, shared by its execution strategies."""

from __future__ import annotations

import torch

from ..fast_linear import linear as fast_linear
from ..lean import lean_path_ok, norm_linear

__all__ = ["local_projection", "normed_projection"]


def local_projection(layer) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """One weight for every per-token projection of a self-attention layer (qkv, then the
    separate global ones), its bias and the sizes of its parts."""
    weights, biases = [layer.qkv.weight], [layer.qkv.bias]
    if layer.use_global_vector and layer.separate_global_qkv:
        for lin in (layer.l2g_q_net, layer.g2l_k_net, layer.g2l_v_net):
            weights.append(lin.weight)
            biases.append(lin.bias)
    sizes = [w.shape[0] for w in weights]
    weight = weights[0] if len(weights) == 1 else torch.cat(weights)
    bias = None if biases[0] is None else (biases[0] if len(biases) == 1 else torch.cat(biases))
    return weight, bias, sizes


def normed_projection(layer, x: torch.Tensor) -> torch.Tensor:
    """``local_projection(layer)`` applied to ``layer.norm(x)`` (bias-free layers only).

    In training with a LayerNorm (and the fast paths on) the two run as one function that
    keeps no normalised copy for backward (:func:`~xearthformer.nn.lean.norm_linear`).
    """
    weight, _, _ = local_projection(layer)
    if lean_path_ok(layer.norm, x.device.type):
        return norm_linear(x, layer.norm, weight)
    return fast_linear(layer.norm(x), weight)
