"""The position-wise feed-forward block, written as the paper describes it.

The reference path of :class:`~xearthformer.nn.PositionwiseFFN` (official
``PositionwiseFFN``): per token, ``x + drop(ffn_2(drop(act(ffn_1(norm(x))))))`` with the
norm first (``pre_norm``, every released config) or ``norm(x + ...)`` after. The block
contains its own residual. A gated variant multiplies ``act(ffn_1_gate(x))`` into
``ffn_1(x)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["positionwise_ffn"]


def positionwise_ffn(ffn, x: torch.Tensor) -> torch.Tensor:
    """``ffn``'s output for ``x`` "... c" (the residual included).

    Examples
    --------
    >>> from xearthformer.nn import PositionwiseFFN
    >>> ffn = PositionwiseFFN(4, 16, activation="gelu").eval()
    >>> x = torch.randn(2, 3, 4)
    >>> expected = x + ffn.ffn_2(F.gelu(ffn.ffn_1(ffn.layer_norm(x))))
    >>> torch.allclose(positionwise_ffn(ffn, x), expected)
    True
    """
    p_hidden = getattr(ffn.activation_dropout_layer, "p", 0.0)
    p_out = getattr(ffn.dropout_layer, "p", 0.0)

    def update(h: torch.Tensor) -> torch.Tensor:
        if ffn.gated_proj:
            h = ffn.activation(ffn.ffn_1_gate(h)) * ffn.ffn_1(h)
        else:
            h = ffn.activation(ffn.ffn_1(h))
        h = F.dropout(h, p_hidden, ffn.training)
        return F.dropout(ffn.ffn_2(h), p_out, ffn.training)

    if ffn.pre_norm:
        return x + update(ffn.layer_norm(x))
    return ffn.layer_norm(x + update(x))
