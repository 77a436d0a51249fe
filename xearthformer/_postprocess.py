"""The model's arrays -> labelled forecasts (used by forecast/ensemble).

:func:`to_physical` undoes the normalisation, the anomaly and the unit conversion and puts the
land back as NaN; :func:`wrap` turns ``"s n [extra] l h w c"`` arrays (numpy or dask) into a
DataArray with dims ``(*sample, init, [extra], lead, y, x)``, the coordinate
``valid_time(init, lead)`` and the input's spatial coordinates and attributes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._preprocess import Prepared
from .metrics.baselines import valid_times as _calendar_valid_times
from .zoo.model_dir import InputContract

__all__ = ["to_physical", "wrap", "valid_time", "regrid_back", "provenance"]


def to_physical(y: np.ndarray, contract: InputContract, clim: np.ndarray | None,
                out_months: np.ndarray | None, land: np.ndarray, unit_shift: float) -> np.ndarray:
    """Normalised ``"s n l h w c"`` -> physical float32 in the user's units, land NaN.

    ``out_months`` (``"n l"``, year*12+month-1) picks the climatology added back; ``land`` is
    ``"s n h w c"``.
    """
    out = contract.denormalise(np.asarray(y, dtype=np.float64))  # a new array: updated in place
    if clim is not None:
        out += clim[out_months % 12][None, ..., None]
    if unit_shift:
        out += unit_shift
    out = out.astype(np.float32)
    np.putmask(out, np.broadcast_to(land[:, :, None], out.shape), np.float32(np.nan))
    return out


def valid_time(inits: np.ndarray, lead_values: Sequence[int], units: str) -> np.ndarray:
    """``init + lead`` (calendar months, or minutes; also for timedelta ``init``)."""
    inits = np.asarray(inits)
    if units == "minutes" and np.issubdtype(inits.dtype, np.timedelta64):
        return inits[:, None] + np.asarray(lead_values, "timedelta64[m]")[None, :]
    return _calendar_valid_times(inits, lead_values, units)


def wrap(prep: Prepared, values: Any, inits: np.ndarray, lead_values: Sequence[int],
         extra: Mapping[str, Sequence[Any]] | None = None) -> xr.DataArray | xr.Dataset:
    """Arrays ``"s n *extra l h w c"`` -> DataArray (one channel) or Dataset (several)."""
    extra = dict(extra or {})
    dims, contract = prep.dims, prep.contract
    sample_sizes = [prep.source.sizes[d] for d in dims.sample]
    out_dims = (*dims.sample, "init", *extra, "lead", dims.y, dims.x)
    units = contract.step_units
    coords: dict[Hashable, Any] = {
        "init": ("init", np.asarray(inits), {"standard_name": "forecast_reference_time",
                                             "long_name": "initialisation (last context time)"}),
        "lead": ("lead", np.asarray(lead_values, dtype=np.int64),
                 {"units": units, "standard_name": "forecast_period",
                  "long_name": f"lead time in {units}"}),
        "valid_time": (("init", "lead"), valid_time(inits, lead_values, units),
                       {"standard_name": "time", "long_name": "valid time (init + lead)"}),
    }
    for name, vals in extra.items():
        attrs = {"standard_name": "realization"} if name == "member" else {}
        coords[name] = (name, np.asarray(vals), attrs)
    for d in dims.sample:
        if d in prep.source.coords:
            coords[d] = prep.source[d].variable
    coords.update({k: v.variable for k, v in prep.spatial_coords.items()})
    coords.update(prep.extra_coords)
    names = prep.variables
    outs = {}
    for c, name in enumerate(names):
        arr = values[..., c]
        arr = arr.reshape(tuple(sample_sizes) + tuple(arr.shape[1:])) if dims.sample else arr[0]
        da = xr.DataArray(arr, dims=out_dims, coords=coords, name=name)
        if prep.user_order is not None:
            oy, ox = prep.user_order
            da = da.isel({dims.y: oy, dims.x: ox})
        outs[name] = da
    return outs[names[0]] if len(names) == 1 else xr.Dataset(outs)


def regrid_back(out: xr.DataArray, prep: Prepared) -> xr.DataArray:
    """The forecast on the user's grid: NaN over the user's missing cells and outside the model's
    domain (points the model does not cover)."""
    dims, source = prep.dims, prep.source
    user = {d: source[d] for d in (dims.y, dims.x)}
    if prep.regrid is not None:
        target = {}
        for d in (dims.y, dims.x):
            values = np.asarray(user[d].values, float)
            model_v = np.asarray(out[d].values, float)
            if "lon" in str(d).lower() or user[d].attrs.get("standard_name") == "longitude":
                ref = model_v.min() - (360.0 - np.ptp(model_v)) / 2.0
                values = (values - ref) % 360.0 + ref
            target[d] = xr.DataArray(values, dims=d)
        method = "nearest" if prep.regrid == "nearest" else "linear"
        back = out.interp(target, method=method)
    else:
        back = out.reindex({d: user[d].values for d in (dims.y, dims.x)})
    back = back.assign_coords({d: user[d].variable for d in (dims.y, dims.x)})
    missing = source.isnull().all(dims.time)
    for d in dims.sample:
        missing = missing.all(d) if d in missing.dims else missing
    back = back.where(~missing.reset_coords(drop=True))
    back.attrs = out.attrs
    return back.rename(out.name)


def provenance(prep: Prepared, model: Any, *, lead_values: Sequence[int], device: str,
               seed: int | None, rollout: str, call: str) -> dict[str, Any]:
    """The variable's attrs plus provenance (netCDF-safe: str and numbers only)."""
    from ._version import __version__  # noqa: PLC0415

    card = model.card
    attrs = dict(prep.attrs)
    attrs["units"] = prep.user_units if prep.user_units is not None else prep.contract.units
    attrs.update({
        "forecast_model": card.name,
        "forecast_model_kind": card.kind,
        "forecast_model_demo": "yes: a small demo model trained on synthetic data" if card.demo
        else "no",
        "checkpoint_sha256": model.sha256,
        "checkpoint_verified": "yes" if model.verified else "no (no published sha256 to check)",
        "xearthformer_version": __version__,
        "seed": "none" if seed is None else int(seed),
        "device": device,
        "rollout": rollout,
        "input_kind": prep.input_kind,
        "preprocessing": "; ".join(prep.notes) or "none",
    })
    valid = getattr(prep.contract, "valid_range", None)
    if valid is not None:  # forecast() and ensemble() clip a bounded variable to its range
        low, high = sorted(float(v) for v in valid)
        attrs["postprocessing"] = (f"clipped to the model's valid range [{low:g}, {high:g}] "
                                   "(decoded values outside it are unphysical)")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp} xearthformer {__version__}: {call}"
    attrs["history"] = line + ("\n" + prep.attrs["history"] if "history" in prep.attrs else "")
    return attrs
