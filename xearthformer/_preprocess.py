"""Labelled input -> the model's context arrays, step by visible step (used by forecast/ensemble).

:func:`prepare` checks the data against a model's :class:`~xearthformer.zoo.model_dir.InputContract`
and returns a :class:`Prepared` plan: the data on the model's grid in the model's units, the
climatology to subtract, the inits, and what to undo on the way out. :func:`normalised_context`
(:mod:`xearthformer._quality`, with the ``missing=`` and ``bad_values=`` policies) turns a block
of contexts into the model's normalised ``"s n t h w c"`` array with land filled.
Everything is numpy + xarray; dask arrays stay lazy here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from . import _reader as reader
from ._precision import coordinate_tolerance
from ._layout import (
    Dims,
    LayoutError,
    MissingDataError,
    MissingDimError,
    TimeStepError,
    UnitsError,
    check_time_step,
    find_dims,
    normalise_units,
    time_index,
)
from .zoo.model_dir import InputContract

__all__ = [
    "GridError", "DtypeError", "InitError", "LeadError", "AnomalyError", "MissingVariableError",
    "RegridDependencyError", "Prepared", "prepare", "parse_lead", "select_inits",
]

_NEAR_ZERO = 0.1  # climatology mean below this fraction of the scale: "near zero"
_ANOMALY_MAX = 5.0  # |mean| above this (contract units) cannot be an anomaly field


class GridError(LayoutError):
    """The data's grid is not the model's grid (and no ``regrid=`` was asked for)."""


class DtypeError(LayoutError):
    """The data are not floating point (or integer digital levels for models with a valid range)."""


class InitError(LayoutError):
    """An init is not a time of the data, or lacks a full context before it."""


class LeadError(LayoutError):
    """A lead is zero, negative, or not a multiple of the model's step."""


class AnomalyError(LayoutError):
    """The data look absolute but the model has no climatology to form anomalies."""


class MissingVariableError(LayoutError, KeyError):
    """A Dataset lacks a variable the model needs."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RegridDependencyError(ImportError, ValueError):
    """``regrid="conservative"`` needs the optional package xesmf."""


@dataclasses.dataclass
class Prepared:
    """The plan for one forecast call (see :func:`prepare`).

    ``data`` has dims ``(*sample, time, y, x)`` (user dim names), the model's grid in the
    model's order, values in the contract's units (NaN kept), numpy or dask.
    """

    data: xr.DataArray | list[xr.DataArray]
    dims: Dims
    contract: InputContract
    variables: tuple[str, ...]
    land: np.ndarray  # (H, W) the model's land mask (False where none)
    clim: np.ndarray | None  # (12, H, W) subtracted from inputs, added to outputs
    input_kind: Literal["anomalies", "absolute", "physical"]
    unit_shift: float  # output (contract units) + unit_shift -> the user's units
    user_units: str | None
    notes: list[str]
    spatial_coords: dict[Hashable, xr.DataArray]  # model order, user values and attrs
    user_order: tuple[np.ndarray | slice, np.ndarray | slice] | None  # isel back to the user's order
    regrid: str | None
    source: xr.DataArray  # the user's (first) variable before regridding, for regrid_back
    attrs: dict[str, Any]
    name: Hashable
    extra_coords: dict[Hashable, xr.DataArray]  # non-index coords over sample/spatial dims

    @property
    def times(self) -> np.ndarray:
        first = self.data[0] if isinstance(self.data, list) else self.data
        return first[self.dims.time].values

    def month_index(self) -> np.ndarray | None:
        if self.contract.step_units != "months":
            return None
        return time_index(xr.DataArray(self.times, dims="time"), "months")


# --- small checks -------------------------------------------------------------------------------


def _check_dtype(da: xr.DataArray, contract: InputContract) -> None:
    kind = da.dtype.kind
    if kind == "f":
        return
    if kind in "iu" and contract.valid_range is not None:
        return  # digital levels (e.g. uint8 VIL 0..255)
    hint = ("convert it with da.astype('float32')" if kind in "iub" else
            "pass numeric data (a variable of the data set, not labels)")
    expect = ("floating point values" + (" or integer digital levels" if contract.valid_range else ""))
    raise DtypeError(
        f"the data {da.name!r} have dtype {da.dtype}; the model expects {expect}. If the values "
        f"are physical numbers, {hint}."
    )


def parse_lead(lead: int | Sequence[int], contract: InputContract) -> tuple[np.ndarray, np.ndarray]:
    """``(lead values in step_units, lead steps)``.

    ``lead=N`` means the first N steps (months 1..N; minutes step..N*step); a sequence gives
    lead values in the lead units (months, minutes), each a positive multiple of the step.

    >>> from xearthformer.zoo.registry import get_entry
    >>> parse_lead(3, get_entry("earthformer-sevir").contract())
    (array([ 5, 10, 15]), array([1, 2, 3]))
    """
    step = contract.step
    if isinstance(lead, (bool, np.bool_)):
        raise LeadError(f"lead={lead!r} is not a number of steps; expected an int >= 1.")
    if np.ndim(lead) == 0:
        try:
            n = int(lead)
        except (TypeError, ValueError):
            raise LeadError(f"lead={lead!r} is not understood; expected an int >= 1 or a list "
                            f"of leads in {contract.step_units}.") from None
        if n < 1 or n != lead:
            raise LeadError(f"lead={lead!r} must be a whole number of steps >= 1 (lead=12 "
                            f"forecasts the next 12 steps of {step} {contract.step_units}).")
        steps = np.arange(1, n + 1)
        return steps * step, steps
    values = np.asarray(list(lead))
    if values.size == 0 or values.dtype.kind not in "iuf" or np.any(values != np.round(values)):
        raise LeadError(f"lead={list(lead)!r} must be a non-empty list of integers in "
                        f"{contract.step_units}.")
    values = values.astype(np.int64)
    bad = values[(values < 1) | (values % step != 0)]
    if bad.size or len(set(values.tolist())) != values.size:
        raise LeadError(
            f"leads {values.tolist()} must be distinct positive multiples of the model's step "
            f"({step} {contract.step_units}); bad: {bad.tolist() or 'duplicates'}."
        )
    return values, values // step


def select_inits(times: np.ndarray, init: Any, in_len: int, step_units: str) -> np.ndarray:
    """Positions on the time axis of the requested inits (each with a full context)."""
    n = times.size
    if n < in_len:
        raise MissingDataError(
            f"the data have {n} time step(s) but the model needs a context of {in_len}; pass at "
            f"least {in_len} consecutive steps before the init."
        )
    first_ok = in_len - 1
    if init is None:
        return np.array([n - 1])
    if isinstance(init, (xr.DataArray, pd.Index)):  # e.g. da.time[-3:]
        init = np.asarray(init.values if isinstance(init, xr.DataArray) else init)
    index = pd.Index(times)
    if isinstance(init, slice):
        pos = pd.Series(np.arange(n), index=index).loc[init].to_numpy()
        ok = pos[pos >= first_ok]
        if ok.size == 0:
            raise InitError(
                f"no time in init={init.start!r}..{init.stop!r} has a full context of {in_len} "
                f"steps in the data ({str(times[0])[:19]} .. {str(times[-1])[:19]}); the first "
                f"possible init is {str(times[first_ok])[:19]}."
            )
        return ok
    wanted = [init] if np.ndim(init) == 0 else list(init)
    if step_units == "months" and (np.issubdtype(times.dtype, np.datetime64) or times.dtype == object):
        data_m = time_index(xr.DataArray(times, dims="t"), "months")
        try:
            if all(hasattr(w, "calendar") for w in wanted):  # cftime dates (any calendar)
                want_m = np.array([w.year * 12 + w.month - 1 for w in wanted])
            else:
                want_m = time_index(xr.DataArray(pd.DatetimeIndex(pd.to_datetime(wanted)),
                                                 dims="t"), "months")
        except (ValueError, TypeError):
            raise InitError(f"init={init!r} is not understood as times; expected dates.") from None
        lookup = {m: i for i, m in enumerate(data_m)}
        pos = np.array([lookup.get(m, -1) for m in want_m])
    else:
        try:
            pos = index.get_indexer(np.asarray(wanted, dtype=times.dtype))
        except (ValueError, TypeError):
            raise InitError(f"init={init!r} is not understood as times of dtype {times.dtype}."
                            ) from None
    missing = [str(w)[:19] for w, p in zip(wanted, pos) if p < 0]
    if missing:
        raise InitError(f"inits {missing[:10]} are not times of the data ({str(times[0])[:19]} .. "
                        f"{str(times[-1])[:19]}); expected times on the data's time axis.")
    short = [str(times[p])[:19] for p in pos if p < first_ok]
    if short:
        raise InitError(f"inits {short[:10]} lack a full context of {in_len} steps; the first "
                        f"possible init is {str(times[first_ok])[:19]}.")
    return np.asarray(pos)


# --- grid ---------------------------------------------------------------------------------------


def _is_lon(da: xr.DataArray, dim: Hashable) -> bool:
    return reader.is_longitude(da, dim) or "lon" in str(dim).lower()


def _match(user: np.ndarray, model: np.ndarray, periodic: bool) -> np.ndarray | None:
    # the same point: within 1e-4 of the grid spacing, and never tighter than the rounding of
    # the coarser coordinate (a float32 file's 0.1-degree grid is off by ~1.5e-5 at 359.9)
    rounding = coordinate_tolerance(np.asarray(user), np.asarray(model))
    u, m = np.asarray(user, float), np.asarray(model, float)
    if u.size == 0:
        return None
    diff = np.abs(u[None, :] - m[:, None])
    if periodic:
        diff = diff % 360.0
        diff = np.minimum(diff, 360.0 - diff)
    idx = diff.argmin(axis=1)
    spacing = float(np.ptp(m)) / max(m.size - 1, 1)
    ok = diff[np.arange(m.size), idx] <= max(1e-4 * max(1.0, spacing), rounding)
    return idx if ok.all() and np.unique(idx).size == idx.size else None


def as_indexer(index: np.ndarray) -> np.ndarray | slice:
    """``index`` as a slice where it is an evenly stepped run (the model's grid a window of the
    user's, or in reverse order), so that ``isel`` takes a view instead of copying the archive.

    Examples
    --------
    >>> as_indexer(np.array([3, 4, 5])), as_indexer(np.array([2, 1, 0])), as_indexer(np.array([0, 2, 1]))
    (slice(3, 6, 1), slice(2, None, -1), array([0, 2, 1]))
    """
    index = np.asarray(index)
    if index.ndim != 1 or index.size == 0:
        return index
    step = int(index[1] - index[0]) if index.size > 1 else 1
    if step == 0 or not np.array_equal(index, index[0] + step * np.arange(index.size)):
        return index
    stop = int(index[-1]) + step
    return slice(int(index[0]), None if stop < 0 else stop, step)


def _describe(values: np.ndarray) -> str:
    v = np.asarray(values, float)
    if v.size < 2:
        return f"{v.tolist()}"
    steps = np.unique(np.round(np.diff(v), 6))
    step = f"step {steps[0]:g}" if steps.size == 1 else "irregular steps"
    return f"{v[0]:g}..{v[-1]:g} ({step}, {v.size} points)"


def _expected_grid(contract: InputContract) -> str:
    return ", ".join(
        f"{d} {_describe(contract.coords[d])}" if d in contract.coords else f"{d}: {n} points"
        for d, n in zip(contract.spatial_dims, contract.grid_shape))


def _to_model_grid(da: xr.DataArray, dims: Dims, contract: InputContract, regrid: str | None
                   ) -> tuple[xr.DataArray, tuple[np.ndarray, np.ndarray] | None, str | None]:
    """Select (or interpolate onto) the model's grid; returns (data, user order, note)."""
    user_dims = (dims.y, dims.x)
    geo = all(d in contract.coords for d in contract.spatial_dims)
    found = ", ".join(
        f"{d} {_describe(da[d].values)}" if d in da.coords else f"{d}: {da.sizes[d]} points"
        for d in user_dims)
    if not geo:
        if tuple(da.sizes[d] for d in user_dims) == tuple(contract.grid_shape):
            return da, None, None
        raise GridError(
            f"the data's grid ({found}) is not the model's grid ({_expected_grid(contract)}). "
            "Crop or resample the data to the model's size first (regridding applies to "
            "latitude/longitude grids only)."
        )
    if any(d not in da.coords for d in user_dims):
        raise GridError(f"the spatial dims {list(user_dims)} have no coordinate values; the "
                        f"model's grid is {_expected_grid(contract)}. Assign coordinates.")
    lon_flags = [_is_lon(da, d) for d in user_dims]
    index = [_match(da[d].values, contract.coords[m], p)
             for d, m, p in zip(user_dims, contract.spatial_dims, lon_flags)]
    if all(i is not None for i in index):
        iy, ix = index
        out = da.isel({dims.y: as_indexer(iy), dims.x: as_indexer(ix)})
        return out, (as_indexer(np.argsort(iy)), as_indexer(np.argsort(ix))), None
    if regrid is None:
        raise GridError(
            f"the data's grid ({found}) is not the model's grid ({_expected_grid(contract)}). "
            "Pass regrid='linear' (or 'nearest', or 'conservative' with xesmf installed) to "
            "interpolate onto it, or select the model's grid points."
        )
    if regrid not in ("linear", "nearest", "conservative"):
        raise GridError(f"regrid={regrid!r} is not known; expected 'linear', 'nearest' or "
                        "'conservative'.")
    src = da
    target = {}
    for d, m, periodic in zip(user_dims, contract.spatial_dims, lon_flags):
        model_v = np.asarray(contract.coords[m], float)
        tol = coordinate_tolerance(np.asarray(da[d].values), np.asarray(contract.coords[m]))
        values = np.asarray(da[d].values, float)
        if periodic:
            ref = model_v.min() - (360.0 - np.ptp(model_v)) / 2.0
            values = (values - ref) % 360.0 + ref
            src = src.assign_coords({d: (d, values, da[d].attrs)}).sortby(d)
        lo, hi = values.min(), values.max()
        half = (np.median(np.abs(np.diff(np.sort(values)))) / 2.0) if values.size > 1 else 0.0
        if model_v.min() < lo - half - tol or model_v.max() > hi + half + tol:
            raise GridError(
                f"the data ({found}) do not cover the model's domain ({_expected_grid(contract)}); "
                "regridding cannot extrapolate. Pass data covering the whole domain."
            )
        target[d] = xr.DataArray(model_v, dims=d, attrs=da[d].attrs)
    if regrid == "conservative":
        try:
            import xesmf  # noqa: F401, PLC0415
        except ImportError:
            raise RegridDependencyError(
                "regrid='conservative' needs the optional package xesmf (conda install -c "
                "conda-forge xesmf); use regrid='linear' or 'nearest' without it."
            ) from None
        out = _conservative(src, dims, target)
    else:
        out = src.interp(target, method=regrid, kwargs={"fill_value": None})
    return out, None, f"regridded ({regrid}) from {found} onto {_expected_grid(contract)}"


def _conservative(src: xr.DataArray, dims: Dims, target: dict) -> xr.DataArray:  # pragma: no cover
    import xesmf  # noqa: PLC0415

    grid_in = xr.Dataset(coords={"lat": src[dims.y].values, "lon": src[dims.x].values})
    grid_out = xr.Dataset(coords={"lat": target[dims.y].values, "lon": target[dims.x].values})
    renamed = src.rename({dims.y: "lat", dims.x: "lon"}) if (dims.y, dims.x) != ("lat", "lon") else src
    out = xesmf.Regridder(grid_in, grid_out, "conservative")(renamed)
    out = out.rename({"lat": dims.y, "lon": dims.x}) if (dims.y, dims.x) != ("lat", "lon") else out
    return out.assign_coords({d: target[d] for d in (dims.y, dims.x)})


# --- units and anomalies ------------------------------------------------------------------------


def _kind(units: str | None) -> str | None:
    return reader.temperature_kind(units) if units is not None else None


def _absolute_shift(found: str | None, expected: str) -> float:
    """What adding converts an absolute value from ``found`` to ``expected`` units.

    Only shifts (Celsius <-> Kelvin) are undone on the way out; a scaling conversion (e.g.
    Fahrenheit) raises :class:`UnitsError` asking for the data in the model's units.
    """
    if found is None or not expected or found == expected:
        return 0.0
    conversion = reader.unit_conversion(str(found), expected)
    if conversion is None:
        return 0.0  # not convertible: normalise_units raises with the full message
    factor, shift = conversion
    if factor != 1.0:
        raise UnitsError(
            f"the data's units {found!r} convert to the model's {expected!r} by a factor "
            f"({factor:g}); xearthformer converts Celsius/Kelvin only. Convert the data to "
            f"{expected!r} first."
        )
    return shift


def _climatology_array(climatology: xr.DataArray, dims: Dims, contract: InputContract,
                       regrid: str | None, shift: float) -> np.ndarray:
    if not isinstance(climatology, xr.DataArray) or "month" not in climatology.dims:
        raise AnomalyError(
            "climatology= must be a DataArray with a 'month' dim (12 calendar months) and the "
            "data's spatial dims, e.g. data.groupby('time.month').mean('time')."
        )
    extra = [d for d in climatology.dims if d not in ("month", dims.y, dims.x)]
    if any(climatology.sizes[d] != 1 for d in extra):
        raise AnomalyError(
            f"climatology= has dims {list(climatology.dims)}; expected 'month' and the data's "
            f"spatial dims ({dims.y!r}, {dims.x!r}) only. Select or average the others first."
        )
    clim = climatology.squeeze(extra, drop=True).transpose("month", dims.y, dims.x)
    if clim.sizes["month"] != 12:
        raise AnomalyError(f"climatology= has {clim.sizes['month']} months; expected 12.")
    clim, _, _ = _to_model_grid(clim, dims, contract, regrid)
    return np.asarray(clim.values, dtype=np.float64) + shift


def _decide_kind(sample: xr.DataArray, contract: InputContract, clim: np.ndarray | None,
                 anomalies: bool | None, shift: float, user_clim: bool
                 ) -> tuple[str, np.ndarray | None, str]:
    """(input kind, climatology to subtract/add, note)."""
    if not contract.anomaly:
        if anomalies:
            raise AnomalyError("anomalies=True, but this model works on physical values, not "
                               "anomalies; pass the absolute data and anomalies=None.")
        return "physical", None, ""
    residual = (clim is not None and not user_clim
                and abs(float(np.nanmean(clim))) <= _NEAR_ZERO * abs(contract.scale))
    if anomalies is True:
        if residual:  # an anomaly-trained model: its residual seasonal mean, as in training
            return "anomalies", clim, ("input taken as anomalies (anomalies=True); the model's "
                                       "near-zero residual climatology is removed and added back")
        return "anomalies", None, "input taken as anomalies (anomalies=True)"
    if clim is None:
        if anomalies is False:
            raise AnomalyError(
                "anomalies=False, but the model has no stored climatology to form anomalies; "
                "pass climatology= (a DataArray with dim 'month') or anomalies."
            )
        if hasattr(sample.data, "dask"):  # stay lazy: trust the contract
            return "anomalies", None, "input taken as anomalies (the model has no climatology)"
        mean = float(np.nanmean(np.asarray(sample.values, dtype=np.float64)))
        if abs(mean) > _ANOMALY_MAX:
            raise AnomalyError(
                f"the data's mean is {mean:.4g}, which looks like absolute values, but the model "
                "works on anomalies and has no stored climatology. Pass climatology= (a "
                "DataArray with dim 'month') or anomalies (data minus their monthly climatology)."
            )
        return "anomalies", None, "input taken as anomalies (the model has no climatology)"
    if anomalies is False:
        return "absolute", clim, "anomalies formed against the " + (
            "given" if user_clim else "model's") + " climatology (anomalies=False)"
    clim_mean = float(np.nanmean(clim))
    if not user_clim and abs(clim_mean) <= _NEAR_ZERO * abs(contract.scale):
        return "anomalies", clim, ("input taken as anomalies; the model's (near-zero) residual "
                                   "climatology is removed and added back, as in training")
    mean = float(np.nanmean(np.asarray(sample.values, dtype=np.float64)))
    if abs(mean - 0.0) <= abs(mean + shift - clim_mean):
        return "anomalies", None, (f"input taken as anomalies (mean {mean:.4g} is closer to 0 "
                                   f"than to the climatology's mean {clim_mean:.4g})")
    return "absolute", clim, (f"input taken as absolute (mean {mean:.4g} is closer to the "
                              f"climatology's mean {clim_mean:.4g} than to 0); forecasts are "
                              "absolute (the valid month's climatology added back)")


# --- the plan -------------------------------------------------------------------------------------


def _select_variables(data: xr.DataArray | xr.Dataset, contract: InputContract,
                      var: str | Sequence[str] | None) -> list[xr.DataArray]:
    if isinstance(data, xr.Dataset):
        if var is not None:  # var= always wins
            names = [var] if isinstance(var, str) else list(var)
            missing = [n for n in names if n not in data.data_vars]
        else:
            found = [reader.find_variable(data, n) for n in contract.variables]
            missing = [n for n, f in zip(contract.variables, found) if f is None]
            names = [f for f in found if f is not None]
        if missing:
            raise MissingVariableError(
                f"the Dataset lacks the variable(s) {missing} the model needs (its variables: "
                f"{list(contract.variables)}, found by name in any case or by CF standard_name); "
                f"the Dataset holds {reader.data_variables(data)}. Pass var=NAME, rename yours "
                "(ds.rename({'tos': 'sst'})) or set its standard_name attribute."
            )
        if len(names) != len(contract.variables):
            raise MissingVariableError(f"var={var!r} gives {len(names)} variable(s); the model "
                                       f"needs {len(contract.variables)}: {list(contract.variables)}.")
        return [data[n] for n in names]
    if not isinstance(data, xr.DataArray):
        raise DtypeError(f"forecast needs an xarray DataArray or Dataset, not "
                         f"{type(data).__name__}; wrap arrays with xr.DataArray(..., dims=...).")
    if len(contract.variables) != 1:
        raise MissingVariableError(f"the model needs {len(contract.variables)} variables "
                                   f"{list(contract.variables)}; pass a Dataset holding them.")
    return [data]


def prepare(data: xr.DataArray | xr.Dataset, contract: InputContract, *, var=None,
            regrid: str | None = None, anomalies: bool | None = None,
            climatology: xr.DataArray | None = None, units: str | None = None) -> Prepared:
    """Check ``data`` against ``contract`` and plan the forecast (lazy for dask input)."""
    arrays, notes = [], []
    for da in _select_variables(data, contract, var):
        da, decoded = reader.decode(da)
        arrays.append(da)
        notes += [n for n in decoded if n not in notes]
    first = arrays[0]
    for da in arrays:
        _check_dtype(da, contract)
    dims = find_dims(first, spatial="any")
    if dims.time not in first.coords:
        raise MissingDimError(f"the time dimension {dims.time!r} has no coordinate values; "
                              "assign the time stamps (da.assign_coords(time=...)).")
    check_time_step(first[dims.time], step=contract.step, step_units=contract.step_units)
    order = (*dims.sample, dims.time, dims.y, dims.x)
    out_arrays = []
    user_order = None
    regridded = None
    user_units = units if units is not None else first.attrs.get("units")
    shift = _absolute_shift(user_units, contract.units)
    for da in arrays:
        da = da.transpose(*order)
        if da.dtype.kind != "f":
            da = da.astype(np.float32)
        da, user_order, note = _to_model_grid(da, dims, contract, regrid)
        out_arrays.append(da)
        if note and note not in notes:
            notes.append(note)
            regridded = regrid
    user_clim = climatology is not None
    clim = (_climatology_array(climatology, dims, contract, regrid, shift) if user_clim
            else contract.climatology)
    last = out_arrays[0].isel({dims.time: slice(-contract.in_len, None)})
    kind, clim_used, note = _decide_kind(last, contract, clim, anomalies, shift, user_clim)
    if note:
        notes.append(note)
    converted = []
    for da in out_arrays:
        da2, unote = normalise_units(da, contract.units, units=units, anomaly=kind == "anomalies")
        if unote:
            notes.append(unote + "; the forecast is converted back")
        converted.append(da2)
    spatial = {d: converted[0][d] for d in (dims.y, dims.x) if d in converted[0].coords}
    keep = set(dims.sample) | {dims.y, dims.x}
    extra = {name: c.variable for name, c in first.coords.items()
             if name not in first.dims and set(c.dims) <= keep}
    land = (np.asarray(contract.land_mask, bool) if contract.land_mask is not None
            else np.zeros(contract.grid_shape, bool))
    return Prepared(
        data=converted[0] if len(converted) == 1 else converted, dims=dims, contract=contract,
        variables=tuple(str(a.name) for a in arrays), land=land,
        clim=None if clim_used is None else np.asarray(clim_used, np.float64),
        input_kind=kind,  # type: ignore[arg-type]
        unit_shift=0.0 if kind == "anomalies" else -shift, user_units=user_units, notes=notes,
        spatial_coords=spatial, user_order=user_order, regrid=regridded,
        source=arrays[0].transpose(*order), attrs=dict(first.attrs), name=first.name,
        extra_coords=extra)


# --- from the plan to the model's arrays ------------------------------------------------------------


def stacked(prep: Prepared) -> xr.DataArray:
    """The data as ``(sample, time, y, x, channel)`` (sample: the flattened extra dims)."""
    arrays = prep.data if isinstance(prep.data, list) else [prep.data]
    dims = prep.dims
    parts = []
    for da in arrays:
        da = da.reset_coords(drop=True)
        if dims.sample:
            da = da.stack(_sample=dims.sample, create_index=False).transpose("_sample", ...)
        else:
            da = da.expand_dims("_sample")
        parts.append(da.transpose("_sample", dims.time, dims.y, dims.x))
    return xr.concat(parts, dim="_channel", coords="minimal", compat="override").transpose(
        "_sample", dims.time, dims.y, dims.x, "_channel")


def context_windows(values: np.ndarray, positions: np.ndarray, in_len: int, offset: int = 0
                    ) -> np.ndarray:
    """``"s time h w c"`` -> ``"s n t h w c"``: the ``in_len`` steps ending at each position.

    ``offset`` is the time position of ``values[:, 0]`` in the full series.
    """
    index = (positions - offset)[:, None] + np.arange(-in_len + 1, 1)[None, :]
    return values[:, index]


def check_all_nan_context(prep: Prepared) -> None:
    """Eager check (numpy input only) that the last context is not all NaN."""
    arrays = prep.data if isinstance(prep.data, list) else [prep.data]
    for da in arrays:
        if not hasattr(da.data, "dask"):
            last = da.isel({prep.dims.time: slice(-prep.contract.in_len, None)})
            if bool(np.isnan(last.values).all()):
                raise MissingDataError(f"the context of {da.name!r} is entirely NaN; pass data "
                                       "with values.")


__all__ += ["stacked", "context_windows", "check_all_nan_context", "TimeStepError"]
