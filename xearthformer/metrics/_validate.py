"""Input checks shared by the metrics: typed errors, coordinate lookup, alignment.

numpy + xarray only (the metrics layer never imports torch).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .. import _reader as reader
from .._precision import coordinate_tolerance

__all__ = [
    "MetricsInputError",
    "GridError",
    "BasePeriodError",
    "CoordinateMismatchError",
    "ArchiveGapError",
    "ThresholdScaleWarning",
]

class MetricsInputError(ValueError):
    """Base class of the input errors raised by :mod:`xearthformer.metrics`."""


class GridError(MetricsInputError):
    """The grid lacks latitude/longitude, or a region is outside it."""


class BasePeriodError(MetricsInputError):
    """A climatology base period is not covered by the data."""


class CoordinateMismatchError(MetricsInputError):
    """Forecast and observation coordinates differ."""


class ArchiveGapError(MetricsInputError):
    """An archive has missing time steps."""


class ThresholdScaleWarning(UserWarning):
    """A threshold looks like it is on another scale than the data."""


def is_dask(obj: xr.DataArray | xr.Dataset) -> bool:
    """Whether an xarray object is backed by dask arrays."""
    if isinstance(obj, xr.Dataset):
        return any(is_dask(v) for v in obj.data_vars.values())
    return hasattr(obj.data, "dask")


def find_time_dim(obj: xr.DataArray | xr.Dataset) -> Hashable | None:
    """The time dim of observations (``time``, ``TIME``, ``t``, CF attrs...), None if none.

    Forecast dims (``init``, ``lead``) are never taken for it.
    """
    return reader.find_time(obj)


def find_lat_lon(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, Hashable]:
    """Names of the 1-D latitude and longitude coordinates of ``obj``.

    Found by the package's one reader (:mod:`xearthformer._reader`): CF attributes first, then
    the usual names in any case. Raises :class:`GridError` when either is missing or not
    one-dimensional.
    """
    lat = reader.find_lat(obj, dims_only=False)
    lon = reader.find_lon(obj, dims_only=False)
    if lat is None or lon is None:
        missing = " and ".join(n for n, v in (("latitude", lat), ("longitude", lon)) if v is None)
        raise GridError(
            f"no {missing} coordinate found; coordinates are {list(obj.coords)} and dims "
            f"{list(obj.dims)}. Expected coordinates named 'lat'/'lon' (or 'latitude'/"
            "'longitude', or with standard_name 'latitude'/'longitude'). Rename them, e.g. "
            "data.rename(y='lat', x='lon'), and assign the degree values as coordinates."
        )
    for name in (lat, lon):
        if name not in obj.coords or obj[name].ndim != 1:
            raise GridError(
                f"coordinate {name!r} must be a 1-D coordinate with degree values; got "
                f"{'no coordinate values' if name not in obj.coords else obj[name].dims}. "
                "Assign 1-D latitude and longitude coordinates (curvilinear grids are not "
                "supported)."
            )
    return lat, lon


def as_list(value: Any) -> list[Any]:
    """``value`` as a list (scalars become a one-element list)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        return [value]
    return list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)


def reduce_dims(obj: xr.DataArray, dim: str | Sequence[Hashable] | None,
                keep: Iterable[Hashable] = ()) -> list[Hashable]:
    """The dims to reduce: ``dim`` (checked), or every dim not in ``keep`` when None."""
    keep = set(keep)
    if dim is None:
        return [d for d in obj.dims if d not in keep]
    dims = [dim] if isinstance(dim, str) else list(dim)
    unknown = [d for d in dims if d not in obj.dims]
    if unknown:
        raise MetricsInputError(
            f"dimensions {unknown} do not exist; expected one or more of {list(obj.dims)}. "
            "Pass dim= with names of the data's dimensions (or None to reduce over all)."
        )
    return dims


def check_matching_coords(forecast: xr.DataArray, observed: xr.DataArray,
                          skip: Iterable[Hashable] = ()) -> None:
    """Raise :class:`CoordinateMismatchError` when shared index coordinates differ.

    Compares every dimension coordinate the two objects share (except ``skip``) and
    names the coordinate and the first values that differ.
    """
    skip = set(skip)
    for name in forecast.dims:
        if name in skip or name not in observed.dims:
            continue
        if forecast.sizes[name] != observed.sizes[name]:
            raise CoordinateMismatchError(
                f"coordinate {name!r} differs in length between forecast ({forecast.sizes[name]}) "
                f"and observation ({observed.sizes[name]}). Expected the same {name!r} values; "
                "select the common values first (e.g. xr.align(forecast, observed, join='inner'))."
            )
        if name not in forecast.coords or name not in observed.coords:
            continue
        a, b = forecast[name].values, observed[name].values
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            # equal up to the rounding of the coarser of the two (float32 files: 359.9 is
            # 359.899993896...), see xearthformer._precision.coordinate_tolerance
            same = np.isclose(a.astype(float), b.astype(float), rtol=0,
                              atol=coordinate_tolerance(a, b))
        else:
            same = a == b
        if not np.all(same):
            where = np.flatnonzero(~np.asarray(same))[:3]
            pairs = ", ".join(f"{a[i]} vs {b[i]}" for i in where)
            raise CoordinateMismatchError(
                f"coordinate {name!r} differs between forecast and observation at "
                f"{int((~np.asarray(same)).sum())} position(s) (forecast vs observation: "
                f"{pairs}). "
                f"Expected identical {name!r} values; regrid or select matching values first."
            )


def check_threshold_scale(thresholds: Sequence[float], *objs: xr.DataArray,
                          stacklevel: int = 3) -> None:
    """Warn (:class:`ThresholdScaleWarning`) when a threshold exceeds the data maximum.

    Only checked for numpy-backed data, so lazy (dask) inputs stay lazy.
    """
    if not thresholds or any(is_dask(o) for o in objs):
        return
    maxima = [float(np.nanmax(o.values)) for o in objs if o.size and np.isfinite(o.values).any()]
    if not maxima:
        return
    top = max(maxima)
    above = [t for t in thresholds if float(t) > top]
    if above:
        warnings.warn(
            f"threshold(s) {above} are above the data maximum {top:g}: no event can occur. "
            "Are the thresholds on the data's scale? The SEVIR thresholds are on the 0-255 VIL "
            "scale: multiply data scaled to [0, 1] by 255, or pass thresholds on the data's "
            "scale.",
            ThresholdScaleWarning,
            stacklevel=stacklevel,
        )


def missing_times(times: Any) -> tuple[list[str], str]:
    """Missing steps of a 1-D time axis: (missing dates as text, step description).

    Monthly data (median step 28-31 days) are checked month by month, other data
    against their most common step.
    """
    import pandas as pd

    values = np.asarray(times)
    if len(values) < 2:
        return [], "single step"
    if not np.issubdtype(values.dtype, np.datetime64):  # cftime dates: months only
        months = np.array([d.year * 12 + d.month - 1 for d in values])
        monthly = True
    else:
        t = pd.DatetimeIndex(values)
        days = np.diff(t.values).astype("timedelta64[s]").astype(np.int64) / 86400.0
        monthly = 28 <= float(np.median(days)) <= 31
        months = np.asarray(t.year * 12 + t.month - 1)
    if monthly:
        gone = np.setdiff1d(np.arange(months.min(), months.max() + 1), months)
        return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in gone], "1 month"
    if 365 <= float(np.median(days)) <= 366:  # yearly (e.g. seasonal means): by calendar year
        years = np.asarray(t.year)
        gone = np.setdiff1d(np.arange(years.min(), years.max() + 1), years)
        return [f"{y:04d}" for y in gone], "1 year"
    step = pd.Timedelta(np.median(np.diff(t.values)))
    gone = pd.date_range(t[0], t[-1], freq=step).difference(t)
    return [str(g) for g in gone], str(step)


def check_no_gaps(obj: xr.DataArray | xr.Dataset, time_dim: str = "time") -> None:
    """Raise :class:`ArchiveGapError` naming missing dates when ``time_dim`` has gaps."""
    if time_dim not in obj.dims:
        raise MetricsInputError(
            f"no {time_dim!r} dimension; dims are {list(obj.dims)}. Expected observations or an "
            f"archive with a {time_dim!r} dimension; rename the time dimension."
        )
    gone, step = missing_times(obj[time_dim].values)
    if gone:
        shown = ", ".join(map(str, gone[:10])) + (" ..." if len(gone) > 10 else "")
        raise ArchiveGapError(
            f"the time axis has {len(gone)} missing step(s) (step {step}): {shown}. Expected a "
            "complete, regular time axis; fill the gaps (e.g. reindex and interpolate, or insert "
            "NaN fields) or evaluate the contiguous parts separately."
        )


def _time_keys(values: xr.DataArray, monthly: bool) -> np.ndarray:
    if monthly:
        return np.asarray(values.dt.year * 12 + values.dt.month - 1).ravel()
    return np.asarray(values.values).ravel()


def at_valid_time(observed: xr.DataArray, forecast: xr.DataArray,
                  time_dim: str = "time") -> xr.DataArray:
    """Observations at the forecast's ``valid_time(init, lead)`` (dims ``init``, ``lead``).

    Monthly leads (``lead.attrs["units"] == "months"``) match by calendar month, so
    month-start and mid-month time stamps align; other data match exactly. Raises
    :class:`CoordinateMismatchError` naming the valid times missing from the observations.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from xearthformer.metrics import persistence_forecast
    >>> t = pd.date_range("2000-01-01", periods=6, freq="MS")
    >>> obs = xr.DataArray(np.arange(6.0), dims="time", coords={"time": t})
    >>> fc = persistence_forecast(obs, t[:2], [1, 2])
    >>> at_valid_time(obs, fc).values
    array([[1., 2.],
           [2., 3.]])
    """
    if "valid_time" not in forecast.coords:
        raise CoordinateMismatchError(
            f"the forecast has no 'valid_time' coordinate (coords {list(forecast.coords)}); "
            "expected a 2-D valid_time(init, lead) as xearthformer forecasts carry."
        )
    if time_dim not in observed.dims:
        raise MetricsInputError(
            f"observations need a {time_dim!r} dimension to be matched to the forecast's "
            f"valid_time; dims are {list(observed.dims)}."
        )
    import pandas as pd

    vt = forecast["valid_time"]
    if is_dask(vt):  # a chunked coordinate (e.g. after .chunk()): small, load it
        vt = vt.compute()
    monthly = "lead" in forecast.coords and forecast["lead"].attrs.get("units") == "months"
    obs_keys = _time_keys(observed[time_dim], monthly)
    vt_keys = _time_keys(vt, monthly)
    pos = pd.Index(obs_keys).get_indexer(vt_keys)
    if (pos < 0).any():
        gone = np.unique(np.asarray(vt.values).ravel()[pos < 0])
        shown = ", ".join(str(g)[:19] for g in gone[:10]) + (" ..." if len(gone) > 10 else "")
        raise CoordinateMismatchError(
            f"coordinate 'valid_time' has {len(gone)} value(s) missing from the observations' "
            f"{time_dim!r} ({str(observed[time_dim].values[0])[:10]} .. "
            f"{str(observed[time_dim].values[-1])[:10]}): {shown}. Expected observations "
            "covering every valid time; select inits and leads inside the observed period."
        )
    indexer = xr.DataArray(pos.reshape(vt.shape), dims=vt.dims, coords=vt.coords)
    out = observed.isel({time_dim: indexer})
    return out.drop_vars(time_dim, errors="ignore")
