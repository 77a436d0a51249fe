"""Labelled data <-> the model's arrays: the only place that maps dim names to tensor axes.

Shared by :func:`xearthformer.fit` (which derives an :class:`~xearthformer.zoo.model_dir.InputContract`
from training data) and :func:`xearthformer.forecast` (which checks data against one). Everything
here is numpy + xarray; tensors are made by the callers.

The model's layout is ``"t h w c"`` per sample (``c`` = the contract's variables in order).

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> t = pd.date_range("2000-01-01", periods=4, freq="MS")
>>> da = xr.DataArray(np.zeros((4, 2, 3)), dims=("time", "latitude", "longitude"),
...                   coords={"time": t, "latitude": [0.0, 5.0], "longitude": [0.0, 5.0, 10.0]})
>>> find_dims(da)
Dims(time='time', y='latitude', x='longitude', sample=())
>>> check_time_step(da["time"], step=1, step_units="months")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from . import _reader as reader

__all__ = [
    "Dims",
    "LayoutError",
    "MissingDimError",
    "TimeStepError",
    "UnitsError",
    "MissingDataError",
    "find_dims",
    "time_index",
    "check_time_step",
    "contiguous_runs",
    "normalise_units",
    "sample_windows",
    "CELSIUS_UNITS",
    "KELVIN_UNITS",
]

_TIME_NAMES = reader.TIME_NAMES
_LAT_NAMES = reader.LAT_NAMES
_LON_NAMES = reader.LON_NAMES
_Y_NAMES = reader.Y_NAMES
_X_NAMES = reader.X_NAMES
# Common spellings (the reader accepts every UDUNITS spelling through pint; these stay for callers)
KELVIN_UNITS = ("K", "k", "kelvin", "Kelvin", "degK", "deg_K", "degrees_K")
CELSIUS_UNITS = ("degC", "C", "°C", "celsius", "Celsius", "deg_C", "degree_Celsius",
                 "degrees_Celsius", "degrees_C", "degrees C", "deg C")


class LayoutError(ValueError):
    """The data's layout (dims, time axis, units, missing values) does not fit the model."""


class MissingDimError(LayoutError):
    """A time, latitude or longitude dimension is missing."""


class TimeStepError(LayoutError):
    """Time is not monotonic, or its step is irregular or not the model's step."""


class UnitsError(LayoutError):
    """The variable's units are unknown or incompatible with the model."""


class MissingDataError(LayoutError):
    """NaNs where the model needs data (outside the land mask), or an all-NaN context."""


@dataclasses.dataclass(frozen=True)
class Dims:
    """Names of the data's dims: ``time``, the spatial ``y`` (lat) and ``x`` (lon), and any
    extra ``sample`` dims (e.g. ``event``) over which samples are independent."""

    time: Hashable
    y: Hashable
    x: Hashable
    sample: tuple[Hashable, ...] = ()


def find_dims(da: xr.DataArray, *, spatial: Literal["lat/lon", "y/x", "any"] = "any") -> Dims:
    """Find the time and spatial dims with :mod:`xearthformer._reader` (CF attributes through
    cf_xarray, then common names in any case: ``TIME``, ``LAT``, ``COADSX`` with units
    ``degrees_east``...).

    Parameters
    ----------
    da : xarray.DataArray
    spatial : {"any", "lat/lon", "y/x"}
        ``"lat/lon"`` requires geographic dims (``standard_name`` latitude/longitude, units
        degrees_north/east, or names like ``lat``/``latitude``); ``"y/x"`` accepts image-like
        dims; ``"any"`` tries geographic first.

    Raises
    ------
    MissingDimError
        With the dims found and how to rename.
    """
    time = reader.find_time(da)
    lat, lon = reader.find_lat(da), reader.find_lon(da)
    if spatial != "lat/lon" and (lat is None or lon is None):
        lat, lon = reader.find_y(da) or lat, reader.find_x(da) or lon
    missing = [n for n, v in (("time", time), ("latitude/y", lat), ("longitude/x", lon)) if v is None]
    if missing:
        expected = "time, lat, lon" if spatial == "lat/lon" else "time, lat, lon (or time, y, x)"
        raise MissingDimError(
            f"no {' and no '.join(missing)} dimension found in dims {list(da.dims)}; expected "
            f"{expected}. Rename yours, e.g. da.rename({{'valid': 'time', 'rows': 'lat'}}), or set "
            "CF attributes (standard_name 'time' / 'latitude' / 'longitude')."
        )
    sample = tuple(d for d in da.dims if d not in (time, lat, lon))
    return Dims(time=time, y=lat, x=lon, sample=sample)


def time_index(times: xr.DataArray | np.ndarray, step_units: str) -> np.ndarray:
    """Integer position of each time stamp on the model's clock.

    Months: ``year * 12 + month`` (any day or hour within a month is that month, any calendar).
    Minutes: minutes since the first stamp (``datetime64`` or ``timedelta64`` stamps).
    """
    times = times if isinstance(times, xr.DataArray) else xr.DataArray(np.asarray(times), dims="time")
    if step_units == "months":
        if np.issubdtype(times.dtype, np.timedelta64):
            raise TimeStepError(
                "a monthly model needs calendar dates, but the time coordinate holds durations "
                "(timedelta64). Assign dates to the time coordinate."
            )
        return (times.dt.year.values.astype(np.int64) * 12 + times.dt.month.values - 1)
    values = times.values
    if values.dtype == object:  # cftime
        values = np.asarray([np.datetime64(pd.Timestamp(v.isoformat())) for v in values])
    if values.size == 0:
        return np.zeros(0, np.int64)
    delta = (values - values[0]).astype("timedelta64[s]").astype(np.int64)
    return delta // 60 if np.all(delta % 60 == 0) else delta / 60.0


def _describe_step(steps: np.ndarray, step_units: str) -> str:
    unique = np.unique(steps)
    if unique.size == 1:
        return f"a step of {unique[0]:g} {step_units}"
    return f"irregular steps of {', '.join(f'{u:g}' for u in unique[:5])} {step_units}"


def check_time_step(times: xr.DataArray, *, step: int, step_units: str) -> None:
    """Raise :class:`TimeStepError` unless ``times`` increase by exactly ``step`` everywhere.

    The message names the step found and the one expected.
    """
    index = time_index(times, step_units)
    if index.size < 2:
        return
    steps = np.diff(index)
    raw = np.asarray(times.values)
    if step_units == "months" and np.any(steps == 0) and raw.size > 1 and np.all(raw[1:] > raw[:-1]):
        raise TimeStepError(
            f"the model needs monthly steps, but the data have several time steps within one "
            f"month (e.g. {str(raw[int(np.argmax(steps == 0))])[:19]} and "
            f"{str(raw[int(np.argmax(steps == 0)) + 1])[:19]}): they look daily or sub-monthly. "
            "Resample to months first, e.g. da.resample(time='MS').mean()."
        )
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0))
        raise TimeStepError(
            f"time is not increasing: step {bad} goes from {str(times.values[bad])[:19]} to "
            f"{str(times.values[bad + 1])[:19]}. Sort it first (da.sortby('time')) and drop "
            "duplicates."
        )
    if np.any(steps != step):
        where = np.flatnonzero(steps != step)[:3]
        at = ", ".join(str(times.values[i + 1])[:19] for i in where)
        raise TimeStepError(
            f"the model needs a regular step of {step} {step_units}, but the data have "
            f"{_describe_step(steps, step_units)} (first differing at {at}). Resample the data "
            f"to {step} {step_units} or select a regular period."
        )


def contiguous_runs(times: xr.DataArray, *, step: int, step_units: str) -> list[slice]:
    """Runs of consecutive stamps exactly ``step`` apart (gaps split runs).

    Raises :class:`TimeStepError` if time is not strictly increasing.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> t = pd.DatetimeIndex(["2000-01-01", "2000-02-01", "2000-03-01", "2000-06-01", "2000-07-01"])
    >>> contiguous_runs(xr.DataArray(t, dims="time"), step=1, step_units="months")
    [slice(0, 3, None), slice(3, 5, None)]
    """
    index = time_index(times, step_units)
    steps = np.diff(index)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0))
        raise TimeStepError(
            f"time is not increasing at position {bad + 1} ({str(times.values[bad + 1])[:19]} "
            f"after {str(times.values[bad])[:19]}); sort the data by time and drop duplicates."
        )
    breaks = [0, *(np.flatnonzero(steps != step) + 1).tolist(), index.size]
    return [slice(a, b) for a, b in zip(breaks[:-1], breaks[1:]) if b > a]


def normalise_units(da: xr.DataArray, expected: str, *, units: str | None = None,
                    anomaly: bool = False) -> tuple[xr.DataArray, str | None]:
    """Return ``da`` in the ``expected`` units and a note for the attrs (None if unchanged).

    Units are read with pint (:func:`xearthformer._reader.unit_conversion`): every UDUNITS
    spelling of Celsius and Kelvin (and ``"Deg C"``), and any other convertible pair (an
    anomaly converts by the factor alone); a missing ``units`` attribute is taken to be
    ``expected``. Anything else raises :class:`UnitsError`, suggesting ``units=``.

    >>> import xarray as xr
    >>> out, note = normalise_units(xr.DataArray([0.0], attrs={"units": "Deg C"}), "K")
    >>> out.values.tolist(), note
    ([273.15], 'converted from Deg C to K')
    """
    found = units if units is not None else da.attrs.get("units")
    if found is None or found == expected or not expected:
        return da, None
    conversion = reader.unit_conversion(str(found), expected, anomaly=anomaly)
    if conversion is None:
        raise UnitsError(
            f"the data's units are {found!r}, which xearthformer cannot convert to the model's "
            f"{expected!r}. If the values are in fact in {expected!r}, pass units={expected!r} "
            "(or fix the units attribute); if it is another quantity, pass the model's variable."
        )
    factor, shift = conversion
    if reader.parse_units(str(found)) == reader.parse_units(expected):
        return da, None  # another spelling of the same units
    out = da * factor + shift if factor != 1.0 else (da + shift if shift else da.copy())
    out.attrs = {**da.attrs, "units": expected}
    return out, f"converted from {found} to {expected}" + (
        " (anomaly: same values)" if anomaly and factor == 1.0 else "")


def sample_windows(lengths: Sequence[int], window: int, stride: int = 1) -> np.ndarray:
    """Start positions of windows of ``window`` steps inside runs of the given ``lengths``.

    Returns an ``(n, 2)`` int array of ``(run, start)``; runs shorter than ``window`` give none.

    Examples
    --------
    >>> sample_windows([5, 2, 4], window=3).tolist()
    [[0, 0], [0, 1], [0, 2], [2, 0], [2, 1]]
    """
    rows = [(r, s) for r, n in enumerate(lengths) for s in range(0, n - window + 1, stride)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)
