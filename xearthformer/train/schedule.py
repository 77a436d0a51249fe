"""The official Earthformer learning-rate schedule: linear warm-up, then cosine decay.

Examples
--------
>>> f = warmup_cosine(total_steps=10, warmup_fraction=0.2, warmup_min_ratio=0.0, min_ratio=0.0)
>>> [round(f(s), 3) for s in (0, 1, 2, 6, 10)]
[0.0, 0.5, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["warmup_cosine", "make_scheduler"]


def warmup_cosine(total_steps: int, *, warmup_fraction: float = 0.2,
                  warmup_min_ratio: float = 0.0, min_ratio: float = 1e-3) -> Callable[[int], float]:
    """Multiplier of the base learning rate at each step.

    Linear from ``warmup_min_ratio`` to 1 over the first ``round(warmup_fraction * total)``
    steps, then a half cosine from 1 down to ``min_ratio`` at ``total_steps`` (the official
    ``SequentialLR(LinearLR, CosineAnnealingLR(eta_min=lr * min_lr_ratio))``).
    """
    warmup = int(round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return warmup_min_ratio + (1.0 - warmup_min_ratio) * step / warmup
        span = max(total_steps - warmup, 1)
        progress = min((step - warmup) / span, 1.0)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, *,
                   warmup_fraction: float, min_ratio: float = 1e-3
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`warmup_cosine`, stepped once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total_steps, warmup_fraction=warmup_fraction, min_ratio=min_ratio))
