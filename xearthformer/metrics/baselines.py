"""Reference forecasts (persistence, climatology) in the layout of model forecasts.

Each takes ``(context, inits, leads)`` — the archive (or the part of it up to the
last init), the initialisation times and the leads — and returns a DataArray with
dims ``init``, ``lead`` followed by the spatial dims, and the 2-D coordinate
``valid_time(init, lead)``: the signature :func:`xearthformer.evaluate` calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._validate import MetricsInputError
from .indices import monthly_climatology

__all__ = [
    "lead_units", "valid_times", "forecast_coords", "persistence_forecast",
    "climatology_forecast", "make_climatology_forecast", "BASELINES",
]

ForecastFn = Callable[[xr.DataArray, Any, Sequence[int]], xr.DataArray]


def lead_units(times: Any) -> str:
    """``"months"`` when the time step is 28-31 days, else ``"minutes"``.

    A time coordinate with ``attrs["lead_units"]`` (set by :func:`xearthformer.evaluate`
    on the contexts it passes, which may hold a single step) gives that value.
    """
    if isinstance(times, xr.DataArray) and "lead_units" in times.attrs:
        return str(times.attrs["lead_units"])
    values = np.asarray(times)
    if values.size < 2:
        return "months"
    if not np.issubdtype(values.dtype, np.datetime64):
        return "months"  # cftime calendars: the monthly archives of climate models
    days = np.median(np.diff(values)).astype("timedelta64[s]").astype(np.int64) / 86400.0
    return "months" if 28 <= days <= 31 else "minutes"


def valid_times(inits: Any, leads: Sequence[int], units: str = "months") -> np.ndarray:
    """``valid_time[i, j] = inits[i] + leads[j]`` (calendar months, or minutes).

    Examples
    --------
    >>> valid_times(["2000-11-01"], [1, 2, 3])[0].astype("datetime64[D]")
    array(['2000-12-01', '2001-01-01', '2001-02-01'], dtype='datetime64[D]')
    """
    leads = [int(v) for v in leads]
    values = np.asarray(inits)
    if values.dtype == object and values.size and hasattr(values.ravel()[0], "calendar"):
        out = np.empty((values.size, len(leads)), dtype=object)
        for i, d in enumerate(values.ravel()):
            for j, lead in enumerate(leads):
                if units == "months":
                    m = d.year * 12 + d.month - 1 + lead
                    out[i, j] = d.replace(year=m // 12, month=m % 12 + 1, day=min(d.day, 28))
                else:
                    out[i, j] = d + pd.Timedelta(minutes=lead).to_pytimedelta()
        return out
    index = pd.DatetimeIndex(values)
    cols = []
    for lead in leads:
        if units == "months":
            cols.append((index + pd.DateOffset(months=lead)).values)
        else:
            cols.append((index + pd.Timedelta(minutes=lead)).values)
    return np.stack(cols, axis=1) if cols else np.empty((len(index), 0), "datetime64[ns]")


def forecast_coords(inits: Any, leads: Sequence[int], units: str) -> dict[str, Any]:
    """Coordinates ``init``, ``lead``, ``valid_time`` with their CF attributes."""
    return {
        "init": ("init", np.asarray(inits), {"standard_name": "forecast_reference_time",
                                             "long_name": "initialisation (last context time)"}),
        "lead": ("lead", np.asarray([int(v) for v in leads]),
                 {"units": units, "standard_name": "forecast_period"}),
        "valid_time": (("init", "lead"), valid_times(inits, leads, units),
                       {"standard_name": "time", "long_name": "valid time"}),
    }


def _select_inits(context: xr.DataArray, inits: Any, time_dim: str) -> xr.DataArray:
    if time_dim not in context.dims:
        raise MetricsInputError(
            f"the context has no {time_dim!r} dimension (dims {list(context.dims)}); expected an "
            "archive with a time dimension."
        )
    index = context.indexes[time_dim]
    wanted = np.asarray(inits)
    pos = index.get_indexer(wanted)
    if (pos < 0).any():
        gone = ", ".join(str(v)[:19] for v in wanted[pos < 0][:10])
        raise MetricsInputError(
            f"inits not in the archive's {time_dim!r}: {gone}. Expected inits that are time "
            "steps of the archive (the last context time of each forecast)."
        )
    return context.isel({time_dim: pos})


def persistence_forecast(
    context: xr.DataArray, inits: Any, leads: Sequence[int], *, time_dim: str = "time"
) -> xr.DataArray:
    """Persistence: the field at each init, repeated for every lead.

    The Earthformer ``Persistence`` baseline (last input frame repeated). Leads are
    months for monthly archives, minutes otherwise.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=6, freq="MS")
    >>> da = xr.DataArray(np.arange(6.0), dims="time", coords={"time": t})
    >>> fc = persistence_forecast(da, t[2:4], [1, 2])
    >>> fc.values
    array([[2., 2.],
           [3., 3.]])
    >>> str(fc["valid_time"].values[0, 1])[:10], fc["lead"].attrs["units"]
    ('2000-05-01', 'months')
    """
    units = lead_units(context[time_dim])
    last = _select_inits(context, inits, time_dim)
    inits_v = last[time_dim].values
    last = last.drop_vars(time_dim).rename({time_dim: "init"})
    out = last.expand_dims(lead=len(leads), axis=1).copy()
    out = out.assign_coords(forecast_coords(inits_v, leads, units))
    out.attrs = {**context.attrs, "forecast": "persistence"}
    return out.rename(context.name)


def climatology_forecast(
    context: xr.DataArray,
    inits: Any,
    leads: Sequence[int],
    *,
    climatology: xr.DataArray | None = None,
    base_period: Any = None,
    time_dim: str = "time",
) -> xr.DataArray:
    """Climatology: the monthly climatology of each valid time's calendar month.

    ``climatology`` (dim ``month``) is used when given; otherwise it is computed from
    ``context`` over ``base_period``. Non-monthly archives use the time mean.
    For evaluations, :func:`make_climatology_forecast` computes it once, beforehand.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=24, freq="MS")
    >>> da = xr.DataArray(np.arange(24.0), dims="time", coords={"time": t})
    >>> climatology_forecast(da, t[10:11], [1, 2, 3]).values  # Dec, Jan, Feb
    array([[17.,  6.,  7.]])
    """
    units = lead_units(context[time_dim])
    inits_v = _select_inits(context, inits, time_dim)[time_dim].values
    coords = forecast_coords(inits_v, leads, units)
    template = xr.DataArray(np.zeros((len(inits_v), len(leads))), dims=("init", "lead"),
                            coords=coords)
    if units == "months":
        clim = climatology if climatology is not None else monthly_climatology(
            context, base_period, time_dim=time_dim)
        out = clim.sel(month=template["valid_time"].dt.month).drop_vars("month")
    else:
        clim = climatology if climatology is not None else context.mean(time_dim)
        out = clim.expand_dims(init=len(inits_v), lead=len(leads)).copy()
    out = out.assign_coords(coords).transpose("init", "lead", ...)
    out.attrs = {**context.attrs, "forecast": "climatology"}
    return out.rename(context.name)


def make_climatology_forecast(
    archive: xr.DataArray, base_period: Any = None, *, time_dim: str = "time"
) -> ForecastFn:
    """A climatology forecast function with the climatology computed once from ``archive``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=24, freq="MS")
    >>> da = xr.DataArray(np.arange(24.0), dims="time", coords={"time": t})
    >>> fn = make_climatology_forecast(da)
    >>> fn(da.isel(time=slice(0, 11)), t[10:11], [1]).values
    array([[17.]])
    """
    if lead_units(archive[time_dim].values) == "months":
        clim = monthly_climatology(archive, base_period, time_dim=time_dim)
    else:
        clim = archive.mean(time_dim)
    return functools.partial(climatology_forecast, climatology=clim.compute(),
                             time_dim=time_dim)


#: Names the evaluation and the command line accept for the reference forecasts.
BASELINES: dict[str, Callable[..., Any]] = {
    "persistence": lambda archive: persistence_forecast,
    "climatology": make_climatology_forecast,
}
