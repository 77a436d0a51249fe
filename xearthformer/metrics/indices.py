"""ENSO indices: Nino3.4 and the Oceanic Nino Index (ONI), for observations and forecasts."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Literal

import numpy as np

from .._precision import coordinate_tolerance
import xarray as xr

from .. import _reader as reader
from ._validate import BasePeriodError, GridError, MetricsInputError, find_lat_lon, find_time_dim

__all__ = ["NINO34_REGION", "nino34", "oni", "monthly_climatology", "box_mean"]

#: The Nino3.4 box as (south, north, west, east) in degrees: 5S-5N, 170W-120W.
NINO34_REGION: tuple[float, float, float, float] = (-5.0, 5.0, -170.0, -120.0)



def _spacing(values: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 0.0


def box_mean(
    field: xr.DataArray,
    region: tuple[float, float, float, float] = NINO34_REGION,
    *,
    weights: Literal["coslat"] | xr.DataArray | None = "coslat",
) -> xr.DataArray:
    """Mean of ``field`` over a latitude/longitude box found by coordinates.

    Both longitude conventions (0..360 and -180..180), either latitude order and any
    resolution are accepted; grid points on the box edges are included.

    Parameters
    ----------
    field : xarray.DataArray
        Data with 1-D latitude and longitude coordinates.
    region : tuple of float
        ``(south, north, west, east)`` in degrees; west/east in either convention.
    weights : {"coslat"} or xarray.DataArray or None
        ``"coslat"`` weights by cos(latitude); None gives the plain (unweighted) mean;
        a DataArray gives explicit weights.

    Returns
    -------
    xarray.DataArray
        ``field`` without its latitude and longitude dims (NaNs, e.g. land, skipped).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.ones((3, 4)), dims=("lat", "lon"),
    ...                   coords={"lat": [-5.0, 0.0, 5.0], "lon": [185.0, 190.0, 240.0, 245.0]})
    >>> float(box_mean(da))
    1.0
    """
    lat, lon = find_lat_lon(field)
    south, north, west, east = region
    # region edges compared with the rounding slack of the grid's own coordinates (float32
    # files: a few 1e-5 degrees), so a grid point on the edge stays in on any machine
    tol = coordinate_tolerance(np.asarray(field[lat].values), np.asarray(field[lon].values), 360.0)
    lat_v = np.asarray(field[lat].values, dtype=float)
    lon_v = np.asarray(field[lon].values, dtype=float) % 360.0
    west360, east360 = west % 360.0, east % 360.0
    width = (east360 - west360) % 360.0
    in_lat = (lat_v >= south - tol) & (lat_v <= north + tol)
    in_lon = ((lon_v - west360) % 360.0) <= width + tol
    grid = (f"latitude {lat_v.min():g}..{lat_v.max():g}, longitude "
            f"{np.asarray(field[lon].values).min():g}..{np.asarray(field[lon].values).max():g}")
    box = f"{south:g}..{north:g}N, {west:g}..{east:g}E"
    if not in_lat.any() or not in_lon.any():
        raise GridError(
            f"the region {box} is outside the grid ({grid}). Expected a grid covering the region; "
            "pass data that include it (a global or tropical Pacific grid) or another region=."
        )
    dlat, dlon = _spacing(lat_v), _spacing(np.sort(lon_v))
    sel_lat, sel_lon = lat_v[in_lat], lon_v[in_lon]
    offsets = (sel_lon - west360) % 360.0
    if (sel_lat.min() > south + dlat + tol or sel_lat.max() < north - dlat - tol
            or offsets.min() > dlon + tol or offsets.max() < width - dlon - tol):
        raise GridError(
            f"the grid ({grid}) covers only part of the region {box}. Expected the whole region "
            "inside the grid; pass data covering it, or a smaller region=."
        )
    sub = field.isel({lat: np.flatnonzero(in_lat), lon: np.flatnonzero(in_lon)})
    if isinstance(weights, str):
        if weights != "coslat":
            raise MetricsInputError(
                f"weights={weights!r} is not known; expected 'coslat', None or a DataArray."
            )
        w = np.cos(np.deg2rad(sub[lat])).clip(0.0)
        return sub.weighted(w).mean((lat, lon))
    if weights is None:
        return sub.mean((lat, lon))
    return sub.weighted(weights.reindex_like(sub).fillna(0.0)).mean((lat, lon))


def _period_slice(base_period: Any) -> slice:
    if isinstance(base_period, slice):
        return base_period
    try:
        start, end = base_period
    except (TypeError, ValueError):
        raise BasePeriodError(
            f"base_period={base_period!r} is not understood; expected (start, end), e.g. "
            "('1991', '2020') or (1991, 2020)."
        ) from None
    return slice(str(start), str(end))


def _covers(first: Any, last: Any, period: slice) -> bool:
    """Whether months first..last contain the whole period (by calendar month)."""
    import pandas as pd

    def month(value: Any) -> int:
        return int(value.year) * 12 + int(value.month) - 1

    try:
        lo = pd.Period(str(period.start)) if period.start is not None else None
        hi = pd.Period(str(period.stop)) if period.stop is not None else None
        t0 = first if hasattr(first, "year") else pd.Timestamp(first)
        t1 = last if hasattr(last, "year") else pd.Timestamp(last)
    except (ValueError, TypeError):
        raise BasePeriodError(
            f"base_period {period.start}..{period.stop} is not understood; expected years or "
            "dates, e.g. ('1991', '2020')."
        ) from None
    ok = lo is None or month(lo.start_time) >= month(t0)
    return ok and (hi is None or month(hi.end_time) <= month(t1))


def monthly_climatology(
    data: xr.DataArray, base_period: Any = None, *, time_dim: Hashable | None = None
) -> xr.DataArray:
    """Mean of each calendar month over ``base_period`` (default: the whole record).

    ``time_dim`` defaults to the data's time dim as the package's reader finds it (``time``,
    ``TIME``, ``t``, CF attributes).

    Raises :class:`BasePeriodError` when the period is not covered by the data or
    lacks a calendar month.

    Examples
    --------
    >>> import pandas as pd, numpy as np, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=24, freq="MS")
    >>> da = xr.DataArray(np.arange(24.0), dims="time", coords={"time": t})
    >>> monthly_climatology(da, ("2000", "2001")).values[:3]
    array([6., 7., 8.])
    """
    if time_dim is None:
        time_dim = find_time_dim(data) or "time"
    if time_dim not in data.dims:
        raise MetricsInputError(
            f"no {time_dim!r} dimension to compute a climatology over; dims are {list(data.dims)}."
            " Expected a time dimension (named time/TIME/t or with CF attributes); pass time_dim=."
        )
    if base_period is not None:
        period = _period_slice(base_period)
        sub = data.sel({time_dim: period})
        first, last = data[time_dim].values[0], data[time_dim].values[-1]
        if not _covers(first, last, period):
            raise BasePeriodError(
                f"base_period {period.start}..{period.stop} is outside the data, which cover "
                f"{str(first)[:10]} .. {str(last)[:10]}. Expected a period inside the record; "
                "pass a base_period within it, or climatology= computed from a longer record."
            )
    else:
        sub = data
    clim = sub.groupby(f"{time_dim}.month").mean(time_dim)
    if clim.sizes["month"] != 12:
        raise BasePeriodError(
            f"the base period has data for months {list(clim['month'].values)} only; expected all "
            "12 calendar months. Use a base period of whole years."
        )
    return clim


def _months(index: xr.DataArray) -> xr.DataArray:
    time = find_time_dim(index)
    if time is not None:
        return index[time].dt.month
    if "valid_time" in index.coords:
        return index["valid_time"].dt.month
    raise MetricsInputError(
        f"cannot tell the calendar month of the data (dims {list(index.dims)}); expected a 'time' "
        "dimension (observations) or a 'valid_time' coordinate (forecasts)."
    )


def _index_climatology(climatology: Any, index: xr.DataArray, region, weights,
                       base_period: Any) -> tuple[xr.DataArray | float, str]:
    if climatology is None:
        if find_time_dim(index) is None:
            raise MetricsInputError(
                f"a forecast needs climatology= (no time dimension found in dims "
                f"{list(index.dims)}, so the data are taken for a forecast): pass the observed SST "
                "(with a time dim), its monthly climatology (dim 'month'), or 0 when the forecast "
                "already holds anomalies. Observations need a time dim named time/TIME/t or "
                "with CF attributes (axis='T' or standard_name='time')."
            )
        return monthly_climatology(index, base_period), "the data themselves"
    if isinstance(climatology, (int, float, np.number)):
        return float(climatology), f"constant {float(climatology):g}"
    if not isinstance(climatology, xr.DataArray):
        raise MetricsInputError(
            f"climatology must be a DataArray or a number, not {type(climatology).__name__}."
        )
    clim = climatology
    try:
        find_lat_lon(clim)
        clim = box_mean(clim, region, weights=weights)
    except GridError:
        pass  # already an index
    if "month" in clim.dims:
        return clim, "given monthly climatology"
    if find_time_dim(clim) is not None:
        return monthly_climatology(clim, base_period), "the given observations"
    raise MetricsInputError(
        f"climatology has dims {list(climatology.dims)}; expected a 'month' dimension (a monthly "
        "climatology) or a 'time' dimension (observations to compute it from)."
    )


def nino34(
    sst: xr.DataArray,
    *,
    climatology: xr.DataArray | float | None = None,
    base_period: Any = None,
    weights: Literal["coslat"] | xr.DataArray | None = "coslat",
    region: tuple[float, float, float, float] = NINO34_REGION,
) -> xr.DataArray:
    """Nino3.4 index: SST anomaly averaged over 5S-5N, 170W-120W.

    The box is found by coordinates (either longitude convention, either latitude order,
    any resolution); the mean is cos(latitude)-weighted by default. The anomaly is taken
    against a monthly climatology, matched by calendar month of the time dim (observations:
    ``time``, ``TIME``, ``t`` or CF attributes, found by the package's one reader)
    or of ``valid_time`` (forecasts; dims ``init``, ``lead``, ``member`` are kept).

    Parameters
    ----------
    sst : xarray.DataArray
        Sea-surface temperature (or its anomaly) with latitude/longitude coordinates.
    climatology : xarray.DataArray or float, optional
        A monthly climatology (dim ``month``, field or box index), observations (dim
        ``time``) to compute it from over ``base_period``, or a number (``0`` when ``sst``
        already holds anomalies, as in ICAR-ENSO). Default: computed from ``sst`` itself
        over ``base_period`` (observations only; forecasts must pass it).
    base_period : (start, end), optional
        Years or dates of the climatology, e.g. ``("1991", "2020")``. Default: whole record.
    weights : {"coslat"} or xarray.DataArray or None
        Area weights of the box mean; None gives the unweighted mean of the official
        ICAR-ENSO evaluation (on its 5-degree grid it differs from cos-lat weighting by
        0.085 % of the contrast between the equator row and the outer rows).
    region : tuple of float
        ``(south, north, west, east)``; the Nino3.4 box by default.

    Returns
    -------
    xarray.DataArray
        ``nino34`` without latitude/longitude dims; attrs record region, weights, base period.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=24, freq="MS")
    >>> sst = xr.DataArray(
    ...     np.tile(np.arange(24.0)[:, None, None], (1, 3, 3)), dims=("time", "lat", "lon"),
    ...     coords={"time": t, "lat": [-5.0, 0.0, 5.0], "lon": [-170.0, -145.0, -120.0]})
    >>> nino34(sst, base_period=("2000", "2001")).values[:3]
    array([-6., -6., -6.])
    """
    sst, _ = reader.decode(sst)  # undecoded CF time, packed integers
    index = box_mean(sst, region, weights=weights)
    clim, source = _index_climatology(climatology, index, region, weights, base_period)
    if isinstance(clim, float):
        anomaly = index - clim
    else:
        anomaly = index - clim.sel(month=_months(index)).drop_vars("month")
    south, north, west, east = region
    anomaly.name = "nino34"
    anomaly.attrs = {
        "long_name": "Nino 3.4 index (SST anomaly)",
        "units": sst.attrs.get("units", "K"),
        "region": f"{-south:g}S-{north:g}N, {-west:g}W-{-east:g}W" if region == NINO34_REGION
        else f"lat {south:g}..{north:g}, lon {west:g}..{east:g}",
        "region_bounds": [float(v) for v in region],
        "weights": "cos(latitude)" if isinstance(weights, str) else
        ("none" if weights is None else "given"),
        "climatology": source,
        "base_period": "whole record" if base_period is None else
        f"{_period_slice(base_period).start}..{_period_slice(base_period).stop}",
    }
    return anomaly


def oni(
    sst: xr.DataArray,
    *,
    window: int = 3,
    dim: Hashable | None = None,
    **kwargs: Any,
) -> xr.DataArray:
    """Oceanic Nino Index: centred ``window``-month running mean of Nino3.4.

    ``sst`` is either an SST field (then :func:`nino34` is applied with ``kwargs``) or
    a Nino3.4 index. Observations are smoothed along ``time``, forecasts along ``lead``;
    edges without a full window are NaN.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=5, freq="MS")
    >>> idx = xr.DataArray([0.0, 3.0, 6.0, 3.0, 0.0], dims="time", coords={"time": t})
    >>> oni(idx).values
    array([nan,  3.,  4.,  3., nan])
    """
    try:
        find_lat_lon(sst)
        index = nino34(sst, **kwargs)
    except GridError:
        if kwargs:
            raise MetricsInputError(
                f"options {sorted(kwargs)} apply to an SST field, but the input has no "
                "latitude/longitude: it is taken as a Nino3.4 index already."
            ) from None
        index = sst
    if dim is None:
        dim = find_time_dim(index) or "lead"
    if dim not in index.dims:
        raise MetricsInputError(
            f"cannot smooth along {dim!r}: dims are {list(index.dims)}; expected 'time' or 'lead'."
        )
    out = index.rolling({dim: window}, center=True).mean()
    out.name = "oni"
    out.attrs = {**index.attrs, "long_name": "Oceanic Nino Index",
                 "smoothing": f"centred {window}-month running mean along {dim}"}
    return out
