"""ICAR-ENSO skill: per-lead Nino3.4 correlation, C-Nino3.4-M, C-Nino3.4-WM and MSE.

Formulas of the official Earthformer evaluation (``compute_enso_score``):

* the predicted index at lead ``l`` is the mean of the box index at leads ``l, l+1, l+2``
  (a forward 3-month mean: 14 forecast months give 12 index leads);
* ``cor_l = sum_n p~ y~ / (sqrt(sum_n p~^2 * sum_n y~^2) + 1e-6)`` with ``p~``, ``y~``
  centred over the evaluation samples ``n`` (the ``init`` dimension);
* ``C-Nino3.4-M = mean_l cor_l``; ``C-Nino3.4-WM = mean_l w_l cor_l`` with
  ``w_l = a_l ln(l)``, ``a = [1.5]*4 + [2]*7 + [3]*7 + [4]*(L-18)``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import xarray as xr

from ._validate import (
    GridError,
    MetricsInputError,
    at_valid_time,
    check_matching_coords,
    find_lat_lon,
    find_time_dim,
)
from .indices import nino34

__all__ = ["enso_skill", "icar_lead_weights", "forward_mean"]


def icar_lead_weights(n_leads: int = 12) -> np.ndarray:
    """The ICAR-ENSO lead weights ``w_l = a_l ln(l)`` for leads ``1..n_leads``.

    Examples
    --------
    >>> icar_lead_weights(12).round(4)[:4]
    array([0.    , 1.0397, 1.6479, 2.0794])
    """
    a = np.array([1.5] * 4 + [2.0] * 7 + [3.0] * 7 + [4.0] * max(n_leads - 18, 0))[:n_leads]
    return a * np.log(np.arange(1, n_leads + 1))


def _check_leads(obj: xr.DataArray) -> None:
    if "lead" not in obj.dims:
        raise MetricsInputError(f"expected a 'lead' dimension; dims are {list(obj.dims)}.")
    leads = np.asarray(obj["lead"].values)
    if leads.size > 1 and not np.all(np.diff(leads) == 1):
        raise MetricsInputError(
            f"leads must be consecutive integers to take a running mean; got {leads.tolist()}."
        )


def forward_mean(index: xr.DataArray, window: int = 3, dim: str = "lead") -> xr.DataArray:
    """Mean over ``dim`` positions ``i .. i+window-1``, labelled by position ``i``.

    The last ``window - 1`` positions (without a full window) are dropped for
    ``dim="lead"`` and NaN for other dims.

    Examples
    --------
    >>> import xarray as xr
    >>> da = xr.DataArray([1.0, 2.0, 3.0, 4.0], dims="lead", coords={"lead": [1, 2, 3, 4]})
    >>> forward_mean(da).values
    array([2., 3.])
    """
    if window <= 1:
        return index
    out = index.rolling({dim: window}).mean().shift({dim: -(window - 1)})
    if dim == "lead":
        out = out.isel(lead=slice(None, -(window - 1)))
    out.attrs = index.attrs
    return out


def _as_index(data: xr.DataArray, climatology: Any, weights: Any) -> tuple[xr.DataArray, bool]:
    try:
        find_lat_lon(data)
    except GridError:
        return data, False
    return nino34(data, climatology=climatology, weights=weights), True


def _observed_index(observed: xr.DataArray, p: xr.DataArray, window: int) -> xr.DataArray:
    time = find_time_dim(observed)
    if time is not None:
        return at_valid_time(forward_mean(observed, window, dim=time), p, time_dim=time)
    if "lead" in observed.dims:
        missing = sorted(set(p["lead"].values.tolist()) - set(observed["lead"].values.tolist()))
        if missing:
            raise MetricsInputError(
                f"the observed labels lack leads {missing}; expected labels for every index lead "
                f"{p['lead'].values.tolist()}."
            )
        return observed.sel(lead=p["lead"])
    raise MetricsInputError(
        f"observed has dims {list(observed.dims)}; expected a 'time' dimension (an index or "
        "SST series, matched through valid_time) or 'init' and 'lead' (labels per sample)."
    )


def enso_skill(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    dim: str = "init",
    running_mean: int = 3,
    lead_weights: Literal["icar"] | np.ndarray = "icar",
    climatology: xr.DataArray | float | None = 0.0,
    weights: Literal["coslat"] | xr.DataArray | None = None,
    eps: float = 1e-6,
    member_dim: str = "member",
) -> xr.Dataset:
    """ICAR-ENSO scores by lead, as the official Earthformer evaluation defines them.

    Parameters
    ----------
    forecast : xarray.DataArray
        Nino3.4 index forecasts (dims ``init``, ``lead``, coord ``valid_time``), or SST
        forecasts with latitude/longitude (the index is then taken with :func:`nino34`
        using ``climatology`` and ``weights``). An ensemble is averaged over ``member_dim``.
    observed : xarray.DataArray
        The observed index or SST with dim ``time`` (its forward ``running_mean`` is
        matched through ``valid_time``), or labels with dims ``init``, ``lead`` that are
        already the target of each index lead (the ICAR ``nino`` labels).
    dim : str
        The sample dimension the correlation is taken over.
    running_mean : int
        The forward running mean applied to the forecast index along ``lead`` (3 officially).
    lead_weights : {"icar"} or numpy.ndarray
        Weights of C-Nino3.4-WM; ``"icar"`` is ``a_l ln(l)`` (:func:`icar_lead_weights`).
    climatology, weights
        Passed to :func:`nino34` for SST inputs. The defaults (``0``, unweighted box mean)
        are the official ones: ICAR-ENSO SST are already anomalies.
    eps : float
        Added to the correlation's denominator (1e-6 officially).

    Returns
    -------
    xarray.Dataset
        ``correlation(lead)``, ``C_Nino34_M``, ``C_Nino34_WM``, ``lead_weight(lead)``,
        ``index_mse(lead)``, ``index_rmse(lead)``, ``nino_rmse`` (mean of the per-lead RMSE)
        and, for SST inputs, ``mse(lead)`` and ``MSE`` of the field in data units squared.
        The official code logs the field MSE of min-max normalised SST: divide by
        ``26.74809741973877 ** 2`` (= 715.46) to compare with it.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> t = pd.date_range("2000-01-01", periods=60, freq="MS")
    >>> obs = xr.DataArray(rng.normal(size=60), dims="time", coords={"time": t})
    >>> inits, leads = t[:40], np.arange(1, 15)
    >>> vt = np.array([[t[i + l] for l in leads] for i in range(40)])
    >>> fc = xr.DataArray(
    ...     np.array([[obs.values[i + l] for l in leads] for i in range(40)]),
    ...     dims=("init", "lead"), coords={"init": inits, "lead": leads,
    ...     "valid_time": (("init", "lead"), vt)})
    >>> fc["lead"].attrs["units"] = "months"
    >>> skill = enso_skill(fc, obs)  # a perfect forecast
    >>> skill["correlation"].values.round(4).tolist() == [1.0] * 12
    True
    >>> round(float(skill["C_Nino34_WM"]), 3)
    3.406
    """
    if running_mean < 1:
        raise MetricsInputError(f"running_mean must be >= 1, got {running_mean}.")
    p_raw, is_field = _as_index(forecast, climatology, weights)
    if member_dim in p_raw.dims:
        p_raw = p_raw.mean(member_dim)
    _check_leads(p_raw)
    if dim not in p_raw.dims:
        raise MetricsInputError(
            f"dimension {dim!r} not found in the forecast (dims {list(p_raw.dims)}); pass dim=."
        )
    p = forward_mean(p_raw, running_mean)
    y_src, _ = _as_index(observed, climatology, weights)
    y = _observed_index(y_src, p, running_mean)
    check_matching_coords(p, y)
    p, y = xr.align(p.reset_coords(drop=True), y.reset_coords(drop=True), join="override")
    valid = p.notnull() & y.notnull()
    p, y = p.where(valid), y.where(valid)
    pc = p - p.mean(dim)
    yc = y - y.mean(dim)
    cor = (pc * yc).sum(dim) / (np.sqrt((pc**2).sum(dim) * (yc**2).sum(dim)) + eps)
    n_leads = cor.sizes["lead"]
    w = icar_lead_weights(n_leads) if isinstance(lead_weights, str) else np.asarray(lead_weights)
    if w.shape != (n_leads,):
        raise MetricsInputError(
            f"lead_weights has shape {w.shape}; expected ({n_leads},), one weight per index lead."
        )
    w_da = xr.DataArray(w, dims="lead", coords={"lead": cor["lead"]})
    mse_l = ((p - y) ** 2).mean(dim)
    out = xr.Dataset({
        "correlation": cor.assign_attrs(long_name="Nino3.4 correlation skill"),
        "C_Nino34_M": cor.mean("lead").assign_attrs(long_name="C-Nino3.4-M"),
        "C_Nino34_WM": (w_da * cor).mean("lead").assign_attrs(long_name="C-Nino3.4-WM"),
        "lead_weight": w_da,
        "index_mse": mse_l,
        "index_rmse": np.sqrt(mse_l),
        "nino_rmse": np.sqrt(mse_l).mean("lead"),
    })
    if is_field and find_time_dim(observed) is not None:
        fc = forecast.mean(member_dim) if member_dim in forecast.dims else forecast
        ob = at_valid_time(observed, fc, time_dim=find_time_dim(observed))
        err = (fc.reset_coords(drop=True) - ob.reset_coords(drop=True)) ** 2
        others = [d for d in err.dims if d != "lead"]
        out = out.merge(xr.Dataset({"mse": err.mean(others), "MSE": err.mean()}),
                        join="outer", compat="override")
    out["lead"].attrs = dict(forecast["lead"].attrs)
    out.attrs = {"definition": "ICAR-ENSO (Earthformer compute_enso_score)",
                 "running_mean": f"forward {running_mean}-month mean along lead",
                 "correlation_dim": dim, "eps": eps}
    return out
