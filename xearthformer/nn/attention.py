"""The attention kernel shared by cuboid self- and cross-attention.

All cuboid attention ends in the same computation: queries attend, within their
cuboid, to the cuboid's keys (plus a relative-position bias and, with shifted or
masked cuboids, a mask) and optionally to a few global keys that share the same
softmax. It is done with :func:`torch.nn.functional.scaled_dot_product_attention`,
which takes fused kernels on CPU and GPU and never materialises a mask that is all
true.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_MASK_FILL = {torch.float16: -1e4}


def mask_fill_value(dtype: torch.dtype) -> float:
    """The score given to masked positions (the official ``-1e18``, ``-1e4`` in fp16)."""
    return _MASK_FILL.get(dtype, -1e18)


def additive_mask(bias: torch.Tensor | None, mask: torch.Tensor | None, dtype: torch.dtype,
                  device: torch.device) -> torch.Tensor | None:
    """Combine a relative-position ``bias`` "heads v s" and a boolean ``mask`` "n v s".

    Returns a float tensor broadcastable to "n heads v s" ("1 heads v s" when there is no
    mask), or ``None`` when there is neither.
    """
    if mask is None:
        # 4-D "1 heads v s": the shape the fused CPU kernel accepts (a 3-D mask falls back to maths)
        return None if bias is None else bias.to(dtype)[None]
    mask = mask.to(device)
    fill = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, mask_fill_value(dtype))
    fill = fill[:, None]  # n 1 v s
    return fill if bias is None else fill + bias.to(dtype)


def cuboid_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, batch: int,
                     attn_mask: torch.Tensor | None, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """Attention inside cuboids.

    Parameters
    ----------
    q, k, v
        "(b n) heads v d", "(b n) heads s d", "(b n) heads s e": cuboid n of sample b.
    batch
        b, so that a per-cuboid mask "n heads v s" can be broadcast over samples.
    attn_mask
        None, a float "1 heads v s" (same for every cuboid) or a float "n heads v s".
    """
    if attn_mask is not None and attn_mask.dim() == 4 and attn_mask.shape[0] > 1:
        n = attn_mask.shape[0]
        shape5 = lambda t: t.view(batch, n, *t.shape[1:])  # noqa: E731
        out = F.scaled_dot_product_attention(shape5(q), shape5(k), shape5(v), attn_mask=attn_mask,
                                             dropout_p=dropout_p, scale=scale)
        return out.flatten(0, 1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)


def gather_bias(table: torch.Tensor, index: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Relative-position bias "heads rows cols" from the table and the (sliced) index buffer."""
    idx = index[:rows, :cols].reshape(-1)
    return table[idx].view(rows, cols, -1).permute(2, 0, 1)
