"""Derive a model's :class:`~xearthformer.zoo.model_dir.InputContract` from training data, and
apply it to windows.

Everything that :func:`xearthformer.forecast` later inverts is computed here from the TRAINING
split only: the land mask (cells missing at every training time), the monthly climatology
(monthly data), and the normalisation (z-score of float data; ``offset 0, scale 255`` for
0..255 ``uint8`` radar data). Reductions go through xarray, so dask-backed data are reduced
chunk by chunk and never loaded whole.

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> t = pd.date_range("2000-01-01", periods=36, freq="MS")
>>> da = xr.DataArray(np.random.default_rng(0).normal(size=(36, 2, 3)).astype("float32"),
...     dims=("time", "lat", "lon"), coords={"time": t, "lat": [0.0, 5.0],
...     "lon": [0.0, 5.0, 10.0]}, attrs={"units": "K"}, name="sst")
>>> prepared = prepare_training_data(da, in_len=3, out_len=2)
>>> c = prepared.contract
>>> c.step_units, c.anomaly, c.climatology.shape, len(prepared.windows)
('months', True, (12, 2, 3), 32)
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from .. import _reader as reader
from .._precision import coordinate_tolerance
from .._layout import (
    Dims,
    MissingDataError,
    TimeStepError,
    find_dims,
    normalise_units,
    time_index,
)
from ..zoo.model_dir import InputContract
from .errors import GridMismatchError, NotEnoughDataError, TrainingError, ValidationOverlapWarning
from .windows import WindowSet

__all__ = [
    "Preprocessor",
    "PreparedData",
    "select_variable",
    "infer_step",
    "prepare_training_data",
    "prepare_validation_data",
    "input_is_anomaly",
]


def select_variable(data: xr.DataArray | xr.Dataset, var: str | None) -> xr.DataArray:
    """The DataArray to train on: ``data`` itself, or ``data[var]`` of a Dataset."""
    if isinstance(data, xr.DataArray):
        if var is not None and data.name is not None and data.name != var:
            raise TrainingError(
                f"var={var!r} was given but the DataArray is named {data.name!r}; pass the "
                "Dataset, or drop var=."
            )
        return data if data.name is not None or var is None else data.rename(var)
    if not isinstance(data, xr.Dataset):
        raise TrainingError(
            f"training data must be an xarray DataArray or Dataset, not {type(data).__name__}; "
            "open files with xarray.open_dataset or open_mfdataset first."
        )
    names = [str(v) for v in reader.data_variables(data)]  # bounds variables never count
    if var is None:
        if len(names) != 1:
            raise TrainingError(
                f"the Dataset has variables {names}; choose the one to train on with var=."
            )
        var = names[0]
    if var not in data.data_vars:
        found = reader.find_variable(data, var)  # by name in any case, or CF standard_name
        if found is None:
            raise TrainingError(f"no variable {var!r} in the Dataset; it has {names}. Pass var=.")
        return data[found].rename(var)
    return data[var]


def infer_step(times: xr.DataArray) -> tuple[int, str]:
    """``(step, step_units)`` of a time coordinate: ``(1, "months")`` for monthly calendar
    dates, else the median spacing in whole minutes.

    Raises :class:`~xearthformer._layout.TimeStepError` for fewer than two stamps or a
    spacing that is not a whole number of minutes.
    """
    if times.size < 2:
        raise TimeStepError(
            f"the time axis has {times.size} stamp(s); at least two are needed to tell the step."
        )
    values = times.values
    calendar = np.issubdtype(values.dtype, np.datetime64) or values.dtype == object
    if calendar:
        months = np.diff(time_index(times, "months"))
        if np.median(months) == 1:
            return 1, "months"
    minutes = np.diff(np.asarray(time_index(times, "minutes"), dtype=float))
    step = float(np.median(minutes))
    if step <= 0 or step != round(step):
        raise TimeStepError(
            f"the time step is {step:g} minutes; expected monthly dates or a step of whole "
            "minutes. Sort the data by time (da.sortby('time')) or resample it."
        )
    return int(step), "minutes"


@dataclasses.dataclass
class Preprocessor:
    """Physical window ("t h w") -> the model's scale: anomalies (if the contract has a
    climatology and the input is absolute), land filled, normalised."""

    contract: InputContract
    subtract_climatology: bool = True

    def __call__(self, values: np.ndarray, months: np.ndarray | None) -> np.ndarray:
        c = self.contract
        x = np.asarray(values, dtype=np.float32)
        if c.climatology is not None and self.subtract_climatology:
            if months is None:
                raise TimeStepError("a model with a monthly climatology needs monthly data.")
            x = x - c.climatology[np.asarray(months) - 1].astype(np.float32)
        if c.land_mask is not None and c.land_mask.any():
            x = x.copy()
            x[:, c.land_mask] = c.fill_value
        if np.isnan(x).any():
            raise MissingDataError(
                f"a window holds {int(np.isnan(x).sum())} NaN value(s) outside the land mask; "
                "fill or drop the missing values first."
            )
        return ((x - c.offset) / c.scale).astype(np.float32)


@dataclasses.dataclass
class PreparedData:
    """A split ready for training: its DataArray, windows, contract and preprocessing."""

    data: xr.DataArray
    dims: Dims
    windows: WindowSet
    contract: InputContract
    preprocess: Preprocessor
    notes: list[str]

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for the model card."""
        times = self.data[self.dims.time].values
        return {
            "variable": str(self.data.name),
            "sizes": {str(k): int(v) for k, v in self.data.sizes.items()},
            "first_time": str(times[0])[:19], "last_time": str(times[-1])[:19],
            "windows": len(self.windows), "runs": len(self.windows.runs),
            "notes": list(self.notes),
        }


def _check_windows(windows: WindowSet, window: int, in_len: int, out_len: int, what: str) -> None:
    if len(windows) == 0:
        raise NotEnoughDataError(
            f"the {what} data are too short for one sample: in_len + out_len = {in_len} + "
            f"{out_len} = {window} consecutive time steps are needed, but the longest run of "
            f"consecutive steps has {windows.longest_run} ({len(windows.runs)} run(s), split by "
            "gaps in time and by events). Give more data, or smaller in_len/out_len."
        )


def _nan_outside(da: xr.DataArray, dims: Dims, land: np.ndarray, what: str) -> None:
    land_da = xr.DataArray(land, dims=(dims.y, dims.x))
    bad = da.isnull() & ~land_da
    per_time = bad.sum([d for d in bad.dims if d != dims.time]).values
    total = int(per_time.sum())
    if total == 0:
        return
    per_cell = bad.sum([d for d in bad.dims if d not in (dims.y, dims.x)]).transpose(
        dims.y, dims.x).values
    times = da[dims.time].values[np.flatnonzero(per_time)[:3]]
    cells = np.argwhere(per_cell)[:3]
    where_cells = ", ".join(
        f"{dims.y}={_coord(da, dims.y, i)}, {dims.x}={_coord(da, dims.x, j)}" for i, j in cells)
    raise MissingDataError(
        f"the {what} data have {total} NaN value(s) outside the land mask (cells that are NaN "
        f"at some but not all times), at {int((per_time > 0).sum())} time(s) starting "
        f"{', '.join(str(t)[:19] for t in times)} and {int((per_cell > 0).sum())} cell(s) such "
        f"as ({where_cells}). Expected values everywhere except permanently missing (land) "
        "cells; fill the gaps (e.g. da.interpolate_na('time')) or drop those times."
    )


def _coord(da: xr.DataArray, dim: Hashable, i: int) -> str:
    return f"{da[dim].values[i]:g}" if dim in da.coords else str(i)


def _spatial_coords(da: xr.DataArray, dims: Dims) -> dict[str, np.ndarray]:
    return {str(d): np.asarray(da[d].values) for d in (dims.y, dims.x) if d in da.coords}


def _near_zero(contract: InputContract) -> bool:
    """Whether the contract's climatology is a near-zero residual (anomaly training data):
    its mean is below 0.1 of the scale (forecast's rule, ``xearthformer._preprocess``)."""
    return abs(float(np.nanmean(contract.climatology))) <= 0.1 * abs(contract.scale)


def input_is_anomaly(da: xr.DataArray, climatology: np.ndarray, land: np.ndarray | None) -> bool:
    """Whether ``da``'s mean is closer to 0 than to the climatology's mean (forecast's rule)."""
    keep = ~land if land is not None else np.ones(climatology.shape[1:], bool)
    clim_mean = float(np.nanmean(climatology[:, keep]))
    mean = float(da.mean(skipna=True).values)
    return abs(mean) <= abs(mean - clim_mean)


def prepare_training_data(
    da: xr.DataArray,
    *,
    in_len: int,
    out_len: int,
    base: InputContract | None = None,
    units: str | None = None,
) -> PreparedData:
    """Validate the training split and derive (or, when fine-tuning, reuse) the contract.

    Parameters
    ----------
    da : xarray.DataArray
        Training data with dims time, two spatial dims and optional sample dims (``event``).
    in_len, out_len : int
        Context and target lengths.
    base : InputContract, optional
        The contract of a model being fine-tuned: its normalisation, climatology, land mask
        and grid are kept, and the data must match its grid and step.
    units : str, optional
        Units of the data when the ``units`` attribute is missing or wrong.

    Raises
    ------
    MissingDimError, TimeStepError, UnitsError, MissingDataError, NotEnoughDataError,
    GridMismatchError
    """
    da, notes = reader.decode(da)  # packed integers, undecoded CF time
    dims = find_dims(da)
    step, step_units = infer_step(da[dims.time])
    if base is not None:
        step, step_units = _check_against_base(da, dims, base, step, step_units)
        da, note = normalise_units(da, base.units, units=units, anomaly=base.anomaly)
        if note:
            notes.append(note)
    window = in_len + out_len
    windows = WindowSet(da, dims, window=window, step=step, step_units=step_units)
    _check_windows(windows, window, in_len, out_len, "training")
    reduce_dims = [d for d in da.dims if d not in (dims.y, dims.x)]
    land = da.isnull().all(reduce_dims).transpose(dims.y, dims.x).values
    if land.all():
        raise MissingDataError("the training data are NaN everywhere; expected values.")
    if base is not None:  # fine-tuning: the model's land mask decides what may be missing
        land = (base.land_mask if base.land_mask is not None
                else np.zeros(base.grid_shape, bool))
    _nan_outside(da, dims, land, "training")
    if base is not None:
        contract = dataclasses.replace(base, in_len=in_len, out_len=out_len)
        subtract = True
        if contract.climatology is not None:
            subtract = not input_is_anomaly(da, contract.climatology, contract.land_mask)
            notes.append("input taken as " + ("absolute values" if subtract else "anomalies"))
        prep = Preprocessor(contract, subtract_climatology=subtract)
        return PreparedData(da, dims, windows, contract, prep, notes)

    found_units = units if units is not None else str(da.attrs.get("units", ""))
    is_uint8 = da.dtype == np.uint8
    climatology = None
    if step_units == "months" and not is_uint8:
        from ..metrics.indices import monthly_climatology

        clim = monthly_climatology(da, time_dim=dims.time)
        clim = clim.transpose("month", dims.y, dims.x).values.astype(np.float32)
        climatology = np.where(land[None], 0.0, clim).astype(np.float32)
        notes.append("monthly climatology of the training split removed (stored with the model)")
    if is_uint8:
        offset, scale, fill, valid_range = 0.0, 255.0, 0.0, (0.0, 255.0)
        notes.append("uint8 0..255 data: offset 0, scale 255")
    else:
        values = da.astype(np.float64)
        if climatology is not None:
            clim_da = xr.DataArray(climatology, dims=("month", dims.y, dims.x),
                                   coords={"month": np.arange(1, 13)})
            values = values - clim_da.sel(month=da[dims.time].dt.month).drop_vars("month")
        land_da = xr.DataArray(land, dims=(dims.y, dims.x))
        values = values.where(~land_da)
        stats = xr.Dataset({"m": values.mean(skipna=True), "s": values.std(skipna=True)})
        mean, std = (float(v) for v in stats.compute().to_array().values)
        if not np.isfinite(std) or std == 0:
            std = 1.0
            notes.append("the training data are constant: scale set to 1")
        offset, scale, valid_range = mean, std, None
        fill = 0.0 if climatology is not None else mean
        notes.append(f"z-score normalisation: offset {mean:.6g}, scale {std:.6g}")
    contract = InputContract(
        variables=(str(da.name) if da.name is not None else "x",), in_len=in_len,
        out_len=out_len, step=step, step_units=step_units,  # type: ignore[arg-type]
        spatial_dims=(str(dims.y), str(dims.x)), grid_shape=land.shape,
        coords=_spatial_coords(da, dims), units=found_units, offset=offset, scale=scale,
        anomaly=climatology is not None, fill_value=fill, valid_range=valid_range,
        land_mask=land if land.any() else None, climatology=climatology)
    return PreparedData(da, dims, windows, contract, Preprocessor(contract), notes)


def _check_against_base(da: xr.DataArray, dims: Dims, base: InputContract, step: int,
                        step_units: str) -> tuple[int, str]:
    shape = (da.sizes[dims.y], da.sizes[dims.x])
    if shape != tuple(base.grid_shape):
        raise GridMismatchError(
            f"the data's grid is {shape} ({dims.y}, {dims.x}) but the model was trained on "
            f"{tuple(base.grid_shape)} {tuple(base.spatial_dims)}; regrid or crop the data to "
            "the model's grid."
        )
    for dim, name in zip((dims.y, dims.x), base.spatial_dims):
        if name in base.coords and dim in da.coords:
            raw = np.asarray(da[dim].values)
            ours = raw.astype(float)
            tol = coordinate_tolerance(raw, base.coords[name])  # rounding of the coarser one
            if not np.allclose(ours, base.coords[name].astype(float), rtol=0, atol=tol):
                raise GridMismatchError(
                    f"the data's {dim} coordinate ({ours.min():g}..{ours.max():g}) differs from "
                    f"the model's {name} ({base.coords[name].min():g}.."
                    f"{base.coords[name].max():g}); select the model's grid first."
                )
    if (step, step_units) != (base.step, base.step_units):
        raise TimeStepError(
            f"the data have a step of {step} {step_units}; the model needs {base.step} "
            f"{base.step_units}. Resample the data."
        )
    return step, step_units


def prepare_validation_data(
    da: xr.DataArray,
    train: PreparedData,
    *,
    units: str | None = None,
) -> PreparedData:
    """Validate the validation split against the training contract (same grid, step,
    units; NaN only on land) and warn if it overlaps the training data."""
    c = train.contract
    da, _ = reader.decode(da)
    dims = find_dims(da)
    _check_against_base(da, dims, c, *infer_step(da[dims.time]))
    da, note = normalise_units(da, c.units, units=units, anomaly=c.anomaly)
    window = c.in_len + c.out_len
    windows = WindowSet(da, dims, window=window, step=c.step, step_units=c.step_units)
    _check_windows(windows, window, c.in_len, c.out_len, "validation")
    land = c.land_mask if c.land_mask is not None else np.zeros(c.grid_shape, bool)
    _nan_outside(da, dims, land, "validation")
    _warn_overlap(train, da, dims)
    prep = dataclasses.replace(train.preprocess)
    if c.climatology is not None and not _near_zero(c):
        prep.subtract_climatology = not input_is_anomaly(da, c.climatology, c.land_mask)
    # else (a near-zero residual climatology of anomaly data): the mean cannot tell anomalies
    # from absolute values, so the validation split is treated like the training split (and
    # like forecast does: the residual is removed and added back)
    return PreparedData(da, dims, windows, c, prep, [note] if note else [])


def _same_values(a: xr.DataArray, b: xr.DataArray) -> bool:
    return bool(np.array_equal(np.asarray(a.values), np.asarray(b.values), equal_nan=True))


def _warn_overlap(train: PreparedData, da: xr.DataArray, dims: Dims) -> None:
    """Warn when validation and training share labels (events, or times of one series) AND
    the data at a few shared labels are equal: independent realisations (another ensemble
    member, another synthetic seed) over the same dates are not an overlap."""
    tda, tdims = train.data, train.dims
    shared = []
    for dim in tdims.sample:
        if dim in dims.sample and dim in da.coords and dim in tda.coords:
            common = np.intersect1d(tda[dim].values, da[dim].values)
            same = [c for c in common[:3]
                    if _same_values(tda.sel({dim: c}).isel({tdims.time: 0}),
                                    da.sel({dim: c}).isel({dims.time: 0}))]
            if same:
                shared.append(f"{common.size} {dim} label(s) such as {same[0]!r}")
    t_train, t_valid = tda[tdims.time].values, da[dims.time].values
    if not tdims.sample and not dims.sample and t_train.dtype == t_valid.dtype:
        common = np.intersect1d(t_train, t_valid)
        same = [c for c in common[:3]
                if _same_values(tda.sel({tdims.time: c}), da.sel({dims.time: c}))]
        if same:
            shared.append(f"{common.size} time step(s) of the training period "
                          f"{str(t_train.min())[:10]} .. {str(t_train.max())[:10]}, with equal "
                          "values")
    if shared:
        warnings.warn(
            "the validation data overlap the training data (" + "; ".join(shared) + "), so "
            "validation scores will be optimistic. Use a separate period or separate events.",
            ValidationOverlapWarning, stacklevel=5)
