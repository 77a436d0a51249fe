"""Training losses of :func:`xearthformer.fit` (pure torch).

Every loss takes the prediction and the target in the model's scale, ``"b t h w c"``, and
returns a scalar tensor:

* ``"mse"``: mean squared error;
* ``"mae"``: mean absolute error;
* ``"mse+mae"``: their sum;
* ``"balanced"``: the intensity-weighted MSE + MAE of radar nowcasting (Shi et al. 2017,
  *Deep learning for precipitation nowcasting: a benchmark and a new model*, NeurIPS): each
  cell's ``err**2 + |err|`` is weighted by the *target's* physical VIL (0..255), 1 below 16,
  then 2 / 5 / 10 / 20 at VIL >= 16 / 74 / 133 / 181 (:func:`storm_weights`), so that the
  rare strong cells count.

With a land mask (``ocean``: True for cells that are fitted) land cells are left out and the
mean runs over ocean cells only, so the land fill value is never fitted.

Examples
--------
>>> import torch
>>> pred, target = torch.zeros(1, 1, 1, 2, 1), torch.tensor([1.0, 3.0]).reshape(1, 1, 1, 2, 1)
>>> float(mse(pred, target)), float(mae(pred, target)), float(mse_mae(pred, target))
(5.0, 2.0, 7.0)
>>> ocean = torch.tensor([[True, False]])  # the second cell is land
>>> float(mse(pred, target, ocean=ocean))
1.0
>>> storm_weights(torch.tensor([0.0, 16.0, 80.0, 140.0, 200.0])).tolist()
[1.0, 2.0, 5.0, 10.0, 20.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = [
    "LOSSES",
    "STORM_THRESHOLDS",
    "STORM_WEIGHTS",
    "storm_weights",
    "mse",
    "mae",
    "mse_mae",
    "balanced",
    "make_loss",
    "loss_name",
]

#: The built-in losses, by the name ``fit(loss=...)`` takes.
LOSSES = ("mse", "mae", "mse+mae", "balanced")
#: VIL thresholds (physical 0..255 scale) and the weights from each on (below: weight 1).
STORM_THRESHOLDS = (16.0, 74.0, 133.0, 181.0)
STORM_WEIGHTS = (2.0, 5.0, 10.0, 20.0)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def storm_weights(vil: torch.Tensor) -> torch.Tensor:
    """Weights of the balanced loss for physical VIL values (0..255): 1, 2, 5, 10, 20 at
    VIL below 16, >= 16, >= 74, >= 133, >= 181."""
    w = torch.ones_like(vil)
    for thr, weight in zip(STORM_THRESHOLDS, STORM_WEIGHTS):
        w = torch.where(vil >= thr, torch.full_like(vil, weight), w)
    return w


def _mean(values: torch.Tensor, ocean: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``"b t h w c"`` values over all cells, or over ocean cells only."""
    if ocean is None:
        return values.mean()
    mask = ocean.to(values.device, values.dtype)[None, None, :, :, None]
    n_ocean = mask.sum() * values.shape[0] * values.shape[1] * values.shape[-1]
    return (values * mask).sum() / n_ocean.clamp_min(1.0)


def mse(pred: torch.Tensor, target: torch.Tensor, *, ocean: torch.Tensor | None = None
        ) -> torch.Tensor:
    """Mean squared error (over ocean cells when ``ocean`` is given)."""
    return _mean((pred - target) ** 2, ocean)


def mae(pred: torch.Tensor, target: torch.Tensor, *, ocean: torch.Tensor | None = None
        ) -> torch.Tensor:
    """Mean absolute error (over ocean cells when ``ocean`` is given)."""
    return _mean((pred - target).abs(), ocean)


def mse_mae(pred: torch.Tensor, target: torch.Tensor, *, ocean: torch.Tensor | None = None
            ) -> torch.Tensor:
    """MSE + MAE (over ocean cells when ``ocean`` is given)."""
    err = pred - target
    return _mean(err**2 + err.abs(), ocean)


def balanced(pred: torch.Tensor, target: torch.Tensor, *, offset: float = 0.0,
             scale: float = 255.0, ocean: torch.Tensor | None = None) -> torch.Tensor:
    """Intensity-weighted MSE + MAE: ``mean(storm_weights(vil) * (err**2 + |err|))`` with
    ``vil = target * scale + offset`` the target in physical units (model scale in, the
    SEVIR scaling ``offset 0, scale 255`` by default)."""
    err = pred - target
    with torch.no_grad():
        weights = storm_weights(target * scale + offset)
    return _mean(weights * (err**2 + err.abs()), ocean)


def loss_name(loss: Any) -> str:
    """How a loss is recorded: its name, or a callable's qualified name."""
    if isinstance(loss, str):
        return loss
    module = getattr(loss, "__module__", None) or ""
    qualname = getattr(loss, "__qualname__", None) or type(loss).__qualname__
    return f"{module}.{qualname}" if module else qualname


class _Callable:
    """A user's ``loss(pred, target)``; land cells of ``pred`` take the target's values so
    that they add no error and no gradient; the result is checked to be a scalar tensor."""

    def __init__(self, fn: LossFn, ocean: torch.Tensor | None) -> None:
        self.fn, self.ocean = fn, ocean

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.ocean is not None:
            mask = self.ocean.to(pred.device)[None, None, :, :, None]
            pred = torch.where(mask, pred, target)
        value = self.fn(pred, target)
        if not isinstance(value, torch.Tensor) or value.ndim != 0:
            from .errors import TrainingError

            got = (f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
                   else type(value).__name__)
            raise TrainingError(
                f"loss={loss_name(self.fn)} returned {got}; a loss callable must return a "
                "scalar tensor (reduce it, e.g. with .mean())."
            )
        return value


def make_loss(loss: str | LossFn, *, land_mask: np.ndarray | None = None, offset: float = 0.0,
              scale: float = 1.0) -> LossFn:
    """The loss function ``(pred, target) -> scalar`` of ``fit(loss=...)``.

    ``land_mask`` (True on land) restricts the built-in losses to ocean cells; ``offset`` and
    ``scale`` (the contract's normalisation) give ``"balanced"`` the physical target. The
    name is assumed valid (``fit`` checks it first).
    """
    ocean = None
    if land_mask is not None and np.asarray(land_mask).any():
        ocean = torch.from_numpy(~np.asarray(land_mask, dtype=bool))
    if callable(loss) and not isinstance(loss, str):
        return _Callable(loss, ocean)
    if loss == "mse":
        return lambda p, t: mse(p, t, ocean=ocean)
    if loss == "mae":
        return lambda p, t: mae(p, t, ocean=ocean)
    if loss == "mse+mae":
        return lambda p, t: mse_mae(p, t, ocean=ocean)
    if loss == "balanced":
        return lambda p, t: balanced(p, t, offset=offset, scale=scale, ocean=ocean)
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES} or a callable")
