"""Validation during training: the model against persistence, with a score that fits the data.

* every model: ``mse`` (physical units squared; anomalies for anomaly models) and
  ``mse_normalised`` (the model's scale, what the official code logs);
* radar data on the 0..255 scale: ``csi_m`` (CSI-M over the SEVIR thresholds, pooled counts,
  :func:`xearthformer.metrics.csi_m`);
* monthly anomaly models whose grid covers the Nino3.4 box (and ``out_len >= 3``):
  ``c_nino34_m`` (C-Nino3.4-M, :func:`xearthformer.metrics.enso_skill` on the unweighted box
  mean, the official definition).

Persistence repeats the last context frame for every lead.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Callable, Literal

import numpy as np
import torch
import xarray as xr

from ..zoo.model_dir import InputContract
from .windows import WindowDataset

__all__ = ["ScoreKind", "score_kind", "MONITORS", "validate", "better"]

ScoreKind = Literal["radar", "enso", "mse"]

#: Score used for model selection and whether larger is better.
MONITORS: dict[str, tuple[str, bool]] = {
    "radar": ("csi_m", True), "enso": ("c_nino34_m", True), "mse": ("mse", False),
}


def _field(values: np.ndarray, contract: InputContract) -> xr.DataArray:
    ydim, xdim = contract.spatial_dims
    coords: dict[str, Any] = {"lead": np.arange(1, values.shape[1] + 1)}
    for dim in (ydim, xdim):
        if dim in contract.coords:
            coords[dim] = contract.coords[dim]
    da = xr.DataArray(values, dims=("init", "lead", ydim, xdim), coords=coords)
    if ydim in da.coords:
        da[ydim].attrs.update(standard_name="latitude", units="degrees_north")
        da[xdim].attrs.update(standard_name="longitude", units="degrees_east")
    return da


def score_kind(contract: InputContract) -> ScoreKind:
    """Which validation score fits the model's data."""
    if contract.valid_range == (0.0, 255.0):
        return "radar"
    if contract.step_units == "months" and contract.anomaly and contract.out_len >= 3:
        from ..metrics import box_mean
        from ..metrics._validate import GridError, MetricsInputError

        probe = np.zeros((1, 1, *contract.grid_shape))
        try:
            box_mean(_field(probe, contract), weights=None)
        except (GridError, MetricsInputError):
            return "mse"
        return "enso"
    return "mse"


def better(kind: ScoreKind, new: float, old: float | None) -> bool:
    """Whether score ``new`` beats ``old`` for this kind of data."""
    if old is None:
        return True
    if not np.isfinite(new):
        return False
    return new > old if MONITORS[kind][1] else new < old


def _scores(pred: np.ndarray, target: np.ndarray, pred_norm: np.ndarray, target_norm: np.ndarray,
            contract: InputContract, kind: ScoreKind) -> dict[str, float]:
    out = {"mse": float(np.nanmean((pred - target) ** 2)),
           "mse_normalised": float(np.mean((pred_norm - target_norm) ** 2))}
    if kind == "radar":
        from ..metrics import SEVIR_THRESHOLDS, csi_m

        out["csi_m"] = float(csi_m(_field(pred, contract), _field(target, contract),
                                   SEVIR_THRESHOLDS))
    elif kind == "enso":
        from ..metrics import box_mean, enso_skill
        from ..metrics.enso import forward_mean

        p = box_mean(_field(pred, contract), weights=None)
        y = forward_mean(box_mean(_field(target, contract), weights=None))
        out["c_nino34_m"] = float(enso_skill(p, y)["C_Nino34_M"])
    return out


def validate(
    model: torch.nn.Module,
    dataset: WindowDataset,
    indices: Sequence[int],
    *,
    device: torch.device,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager],
    kind: ScoreKind,
) -> dict[str, dict[str, float]]:
    """Scores of ``model`` and of persistence on the windows ``indices`` of ``dataset``.

    Returns ``{"model": {...}, "persistence": {...}}``.
    """
    contract: InputContract = dataset.transform.contract  # type: ignore[attr-defined]
    preds, targets, lasts = [], [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for first in range(0, len(indices), batch_size):
                items = [dataset[int(i)] for i in indices[first:first + batch_size]]
                x = torch.stack([it[0] for it in items]).to(device)
                with autocast():
                    y_hat = model(x)
                preds.append(y_hat.float().cpu().numpy()[..., 0])
                targets.append(torch.stack([it[1] for it in items]).numpy()[..., 0])
                lasts.append(x[:, -1].cpu().numpy()[..., 0])
    finally:
        model.train(was_training)
    pred_n, target_n = np.concatenate(preds), np.concatenate(targets)
    persist_n = np.repeat(np.concatenate(lasts)[:, None], target_n.shape[1], axis=1)

    def physical(a: np.ndarray) -> np.ndarray:
        y = contract.denormalise(a.astype(np.float64))
        if contract.land_mask is not None:
            y[..., contract.land_mask] = np.nan
        return y

    target = physical(target_n)
    return {
        "model": _scores(physical(pred_n), target, pred_n, target_n, contract, kind),
        "persistence": _scores(physical(persist_n), target, persist_n, target_n, contract, kind),
    }
