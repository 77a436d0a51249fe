"""The plumbing shared by PreDiff's training loops: batches, histories, optimiser steps.

Pure torch; see :mod:`xearthformer.diffusion.training` for the loops themselves. Every random
draw comes from a :class:`torch.Generator` (``seed=`` or ``generator=``), never the global RNG.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

__all__ = ["TrainingDataError", "TrainingHistory", "seeded_init", "window_batches"]

class TrainingDataError(ValueError):
    """A training batch has the wrong rank, dtype or shape for the networks being trained."""



@dataclass
class TrainingHistory:
    """Loss per optimisation step of one training run.

    Attributes
    ----------
    name : str
        Which network was trained (``"autoencoder"``, ``"denoiser"``, ``"alignment"``).
    loss : list of float
        Total loss of every step.
    seconds : float
        Wall-clock time of the loop.
    extra : dict
        Other per-step series (``"reconstruction"``, ``"kl"`` for the autoencoder).
    """

    name: str
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of steps run."""
        return len(self.loss)

    def mean_loss(self, first: int | None = None, last: int | None = None) -> float:
        """Mean loss of the ``first`` or ``last`` steps (all steps by default)."""
        values = self.loss[:first] if first else self.loss[-last:] if last else self.loss
        return float(sum(values) / max(len(values), 1))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary: steps, seconds, mean loss of the first and last 10 % of steps."""
        k = max(1, self.steps // 10)
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "loss_first": round(self.mean_loss(first=k), 5),
            "loss_last": round(self.mean_loss(last=k), 5),
        }


@contextlib.contextmanager
def seeded_init(seed: int):
    """Build networks with seeded initial weights; the global RNG state is restored afterwards.

    torch's initialisers draw from the global RNG, so this forks it (CPU only), seeds the fork
    and throws it away on exit: code outside the block sees the global RNG untouched.

    Examples
    --------
    >>> with seeded_init(0):
    ...     a = torch.nn.Linear(2, 2)
    >>> with seeded_init(0):
    ...     b = torch.nn.Linear(2, 2)
    >>> torch.equal(a.weight, b.weight)
    True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    if generator is not None and seed is not None:
        raise TrainingDataError("pass either generator= or seed=, not both")
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(0 if seed is None else seed)


def window_batches(
    context: Tensor,
    target: Tensor,
    *,
    batch_size: int,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled mini-batches of stacked windows (one random permutation per epoch).

    Parameters
    ----------
    context, target : Tensor
        ``"n t h w c"`` windows (any dtype; ``transform`` may convert them, e.g. uint8 -> float).
    batch_size : int
        Windows per batch; the last incomplete batch of an epoch is dropped.
    generator, seed
        Source of the permutations (``seed=0`` if neither is given).
    transform : callable, optional
        Applied to each batch tensor (context and target) before it is yielded.

    Examples
    --------
    >>> batches = window_batches(torch.zeros(5, 2, 4, 4, 1), torch.ones(5, 3, 4, 4, 1),
    ...                          batch_size=2, seed=0)
    >>> context, target = next(batches)
    >>> tuple(context.shape), tuple(target.shape)
    ((2, 2, 4, 4, 1), (2, 3, 4, 4, 1))
    """
    if context.ndim != 5 or target.ndim != 5 or context.shape[0] != target.shape[0]:
        raise TrainingDataError(
            "context and target must be stacked windows 'n t h w c' with the same n, got "
            f"{tuple(context.shape)} and {tuple(target.shape)}"
        )
    n = context.shape[0]
    if not 1 <= batch_size <= n:
        raise TrainingDataError(
            f"batch_size must be in [1, {n}] (the number of windows), got {batch_size}"
        )
    return _shuffled(context, target, batch_size, _generator(generator, seed),
                     transform or (lambda x: x))


def _shuffled(context, target, batch_size, gen, transform) -> Iterator[tuple[Tensor, Tensor]]:
    n = context.shape[0]
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield transform(context[index]), transform(target[index])


def _check_batch(context: Tensor, target: Tensor) -> None:
    ok = (
        isinstance(context, Tensor)
        and isinstance(target, Tensor)
        and context.ndim == target.ndim == 5
        and context.is_floating_point()
        and target.is_floating_point()
        and context.shape[0] == target.shape[0]
        and context.shape[2:] == target.shape[2:]
    )
    if not ok:
        shapes = [tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                  for x in (context, target)]
        dtypes = [x.dtype if isinstance(x, Tensor) else None for x in (context, target)]
        raise TrainingDataError(
            "each batch must be (context, target), float tensors 'b t h w c' with the same "
            f"b, h, w, c; got shapes {shapes[0]} and {shapes[1]}, dtypes {dtypes[0]} and "
            f"{dtypes[1]}. Stack windows as 'b t h w c' (window_batches does it)."
        )


def _next_batch(iterator: Iterator, step: int, steps: int, device: torch.device):
    try:
        context, target = next(iterator)
    except StopIteration:
        raise TrainingDataError(
            f"batches ran out after {step} of {steps} steps; pass an endless iterator "
            "(window_batches) or fewer steps"
        ) from None
    _check_batch(context, target)
    return context.to(device), target.to(device)


def _frames(x: Tensor) -> Tensor:
    return rearrange(x, "b t h w c -> (b t) c h w")


def _video(frames: Tensor, batch: int) -> Tensor:
    return rearrange(frames, "(b t) c h w -> b t h w c", b=batch)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _optimiser(module: nn.Module, lr: float, weight_decay: float, steps: int, warmup: int):
    """AdamW with a linear warm-up and a cosine decay to 1 % of ``lr``."""
    optimiser = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def _check_steps(steps: int, lr: float) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise TrainingDataError(f"steps must be a positive int, got {steps!r}")
    if not lr > 0:
        raise TrainingDataError(f"lr must be positive, got {lr!r}")


def _optimise(module, optimiser, scheduler, loss: Tensor, grad_clip: float | None) -> None:
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(module.parameters(), grad_clip)
    optimiser.step()
    scheduler.step()


def _log(log_every: int, name: str, step: int, steps: int, loss: float, start: float) -> None:
    if log_every and (step + 1) % log_every == 0:
        seconds = time.perf_counter() - start
        print(f"[{name}] step {step + 1}/{steps} loss {loss:.5f} ({seconds:.0f} s)", flush=True)
