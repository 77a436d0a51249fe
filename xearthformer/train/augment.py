"""Data augmentation of training windows for :func:`xearthformer.fit` (pure torch).

``"flip_rotate"`` applies one of the 8 symmetries of the square to each training window (a
random quarter turn, then a random flip of ``x``), the same to its context and its target:
for radar storms, whose flow has no preferred direction, every turned or mirrored window is
as likely as the original. It needs a square ``y``/``x`` grid (a turned lat/lon field would
put the tropics at the poles).

The randomness of each window is a pure function of ``(seed, step, position in the global
batch)`` (:func:`window_generator`): a resumed run, or a run whose batch is split over DDP
ranks, transforms every window exactly as one uninterrupted process does.

Examples
--------
>>> import torch
>>> x = torch.arange(4.0).reshape(1, 2, 2, 1)  # "t h w c"
>>> y = x + 10
>>> x2, y2 = flip_rotate(x, y, window_generator(0, 0, 0))
>>> sorted(x2.flatten().tolist()), bool(torch.equal(y2 - 10, x2))
([0.0, 1.0, 2.0, 3.0], True)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["AUGMENTS", "flip_rotate", "window_generator", "augment_batch"]

#: The built-in augmentations, by the name ``fit(augment=...)`` takes.
AUGMENTS = ("flip_rotate",)

AugmentFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator],
                     tuple[torch.Tensor, torch.Tensor]]

_TAG = 0x6175676D  # "augm": keeps these streams apart from the sampler's


def window_generator(seed: int, step: int, position: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, step, position)`` only."""
    state = np.random.SeedSequence([_TAG, int(seed), int(step), int(position)])
    return torch.Generator().manual_seed(int(state.generate_state(1, dtype=np.uint64)[0]))


def flip_rotate(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random quarter turn (0-3) and a random flip of one window's ``"t h w c"`` context
    ``x`` and target ``y``, the same for both."""
    k = int(torch.randint(4, (1,), generator=generator))
    flip = bool(torch.randint(2, (1,), generator=generator))
    out = []
    for a in (x, y):
        a = torch.rot90(a, k, dims=(1, 2))
        if flip:
            a = torch.flip(a, dims=(2,))
        out.append(a.contiguous())
    return out[0], out[1]


def augment_batch(fn: AugmentFn, x: torch.Tensor, y: torch.Tensor, *, seed: int, step: int,
                  first_position: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``fn`` to every window of a ``"b t h w c"`` batch; window ``i`` has the global
    position ``first_position + i`` (this rank's share starts there)."""
    xs, ys = [], []
    for i in range(x.shape[0]):
        xi, yi = fn(x[i], y[i], window_generator(seed, step, first_position + i))
        if (not isinstance(xi, torch.Tensor) or not isinstance(yi, torch.Tensor)
                or xi.shape != x[i].shape or yi.shape != y[i].shape):
            from .errors import TrainingError

            raise TrainingError(
                "an augment callable must return (x, y), tensors of the shapes it was given "
                f"({tuple(x[i].shape)} and {tuple(y[i].shape)}, 't h w c')."
            )
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)
