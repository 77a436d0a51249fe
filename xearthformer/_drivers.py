"""Forecasts of models with auxiliary drivers (EarthNet2021's Earthformer), from a Dataset.

The model's contract names its drivers (``contract.auxiliary``): *static* ones (two spatial
dims, e.g. the elevation) and *dynamic* ones (a time dim and two spatial dims, e.g. the
E-OBS weather). They are read from the same Dataset as the frames, by name:

* each driver may be on its own grid (EarthNet's meso variables are 80 x 80): it is resized
  onto the frames' grid by legacy ``"nearest"`` interpolation, as the official pipeline does;
* a dynamic driver is needed at every context time and at every forecast time (the weather of
  the forecast period is an input): for an init ``t0`` the times ``t0 + k * step`` for
  ``k = 1 - in_len .. out_len`` are selected exactly from its time dim, which may be the frames'
  time dim or its own (e.g. ``time_meso`` holding daily values);
* NaN are set to 0 and the frames clipped to ``valid_range``, as the official data loader does
  (EarthNet cubes have NaN under clouds; the official scores mask them with the cube's mask).

Everything here is called by :func:`xearthformer.forecast` when the model has drivers.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from . import _postprocess as post
from . import _preprocess as pre
from ._layout import LayoutError
from ._preprocess import LeadError, MissingVariableError

__all__ = ["DriverError", "driver_arrays", "forecast_with_drivers"]


class DriverError(LayoutError):
    """A driver variable is missing, has the wrong dims, or lacks the times a forecast needs."""


def _step(contract) -> np.timedelta64:
    return np.timedelta64(int(contract.step), "m")


def _driver_layout(da: xr.DataArray, name: str, dynamic: bool, sample: Sequence[Hashable]
                   ) -> tuple[Hashable | None, Hashable, Hashable]:
    """(time dim or None, y dim, x dim) of a driver: its last two non-sample dims are spatial."""
    own = [d for d in da.dims if d not in sample]
    want = 3 if dynamic else 2
    if len(own) != want:
        kind = ("a time dim and two spatial dims" if dynamic else "two spatial dims")
        raise DriverError(f"the driver {name!r} has dims {da.dims}; a {'dynamic' if dynamic else 'static'} "
                          f"driver needs {kind} (plus, optionally, the frames' sample dims {tuple(sample)}).")
    if not dynamic:
        return None, own[0], own[1]
    times = [d for d in own if d in da.coords and (np.issubdtype(da[d].dtype, np.datetime64)
                                                   or da[d].dtype == object)]
    if len(times) != 1:
        raise DriverError(f"the dynamic driver {name!r} needs one time dim with datetime "
                          f"coordinates among {tuple(own)}; found {times or 'none'}.")
    rest = [d for d in own if d != times[0]]
    return times[0], rest[0], rest[1]


def _stack_samples(da: xr.DataArray, data: xr.Dataset, sample: Sequence[Hashable]) -> xr.DataArray:
    for d in sample:
        if d not in da.dims:
            da = da.expand_dims({d: data.sizes[d]})
    if sample:
        return da.stack(_sample=tuple(sample), create_index=False)
    return da.expand_dims("_sample")


def driver_arrays(data: xr.Dataset, contract, inits: np.ndarray, sample: Sequence[Hashable] = ()
                  ) -> list[xr.DataArray]:
    """One array ``(_sample, init, t, y_d, x_d)`` per driver, in the contract's channel order.

    Static drivers have ``t = 1``; dynamic ones ``t = in_len + out_len`` (the context times,
    then the forecast times of each init). Lazy for dask-backed drivers.
    """
    aux = contract.auxiliary or {}
    if not isinstance(data, xr.Dataset):
        raise MissingVariableError(
            f"this model needs its driver variables {list(aux.get('order', []))} besides "
            f"{list(contract.variables)}: pass a Dataset holding them all.")
    missing = [n for n in aux["order"] if n not in data.data_vars]
    if missing:
        raise DriverError(
            f"the Dataset lacks the driver variable(s) {missing}; the model needs "
            f"{list(aux['order'])} (static: {list(aux['static'])}; dynamic, at every context and "
            f"forecast time: {list(aux['dynamic'])}). It holds {list(data.data_vars)}. Rename "
            "yours, e.g. ds.rename({'rr': 'precipitation'}).")
    offsets = np.arange(1 - contract.in_len, contract.out_len + 1) * _step(contract)
    out = []
    for name in aux["order"]:
        dynamic = name in aux["dynamic"]
        da = data[name]
        tdim, ydim, xdim = _driver_layout(da, name, dynamic, sample)
        if da.dtype.kind not in "fiu":
            raise DriverError(f"the driver {name!r} has dtype {da.dtype}; expected numbers.")
        if not dynamic:
            da = da.expand_dims(init=len(inits), t=1)
        else:
            want = np.asarray(inits, "datetime64[ns]")[:, None] + offsets[None, :]
            have = pd.DatetimeIndex(np.asarray(da[tdim].values, "datetime64[ns]"))
            lacking = ~pd.DatetimeIndex(want.ravel()).isin(have)
            if lacking.any():
                first = pd.DatetimeIndex(want.ravel())[lacking]
                raise DriverError(
                    f"the dynamic driver {name!r} lacks {int(lacking.sum())} of the times the "
                    f"forecast needs (each init's {contract.in_len} context and {contract.out_len} "
                    f"forecast steps of {contract.step} {contract.step_units}), e.g. "
                    f"{', '.join(str(t)[:16] for t in first[:3])}; its {tdim!r} runs "
                    f"{str(have.min())[:16]} .. {str(have.max())[:16]}. The weather of the forecast "
                    "period is an input of this model: extend the driver, or choose earlier inits.")
            index = xr.DataArray(want, dims=("init", "t"))
            da = da.sel({tdim: index})
        da = _stack_samples(da.reset_coords(drop=True), data, sample)
        out.append(da.transpose("_sample", "init", "t", ydim, xdim).astype(np.float32))
    return out


def _resize(values: np.ndarray, t: int, h: int, w: int):
    """``"s n t_d y x"`` numpy -> torch ``"(s n) t h w"`` by legacy nearest (official)."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415
    from einops import rearrange  # noqa: PLC0415

    v = torch.from_numpy(np.nan_to_num(np.ascontiguousarray(values, np.float32), nan=0.0))
    v = rearrange(v, "s n t y x -> (s n) 1 t y x")
    return F.interpolate(v, size=(t, h, w), mode="nearest")[:, 0]


def _run_chunk(frames: np.ndarray, drivers: list[np.ndarray], positions: np.ndarray, offset: int,
               job: Any) -> np.ndarray:
    """Physical frames ``"s time h w c"`` and drivers -> physical forecasts ``"s n l h w c"``."""
    import torch  # noqa: PLC0415
    from einops import rearrange  # noqa: PLC0415

    from .zoo import LoadedModel, load_model  # noqa: PLC0415

    model = job.spec if isinstance(job.spec, LoadedModel) else load_model(job.spec, device=job.device)
    c = job.contract
    x = pre.context_windows(np.asarray(frames, np.float64), positions, c.in_len, offset)
    x = c.normalise(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0))  # official loader
    if c.valid_range is not None:
        x = np.clip(x, *sorted(c.normalise(np.asarray(c.valid_range, np.float64))))
    s, n = x.shape[:2]
    h, w = c.grid_shape
    total = c.in_len + c.out_len
    aux = torch.stack([_resize(np.asarray(d), total, h, w) for d in drivers], dim=-1)  # "b t h w k"
    xt = torch.from_numpy(np.ascontiguousarray(rearrange(x, "s n t h w c -> (s n) t h w c"), np.float32))
    outs = []
    with torch.no_grad():
        for start in range(0, xt.shape[0], job.batch_size):
            sl = slice(start, start + job.batch_size)
            a = aux[sl].to(job.device)
            y = model.module(xt[sl].to(job.device), a[:, :c.in_len], a[:, c.in_len:])
            outs.append(y.float().cpu().numpy())
    y = rearrange(np.concatenate(outs), "(s n) l h w c -> s n l h w c", s=s, n=n)[:, :, job.lead_steps - 1]
    if c.valid_range is not None:
        y = np.clip(y, *sorted(c.normalise(np.asarray(c.valid_range, np.float64))))
    land = np.zeros((s, n, h, w, y.shape[-1]), bool)
    return post.to_physical(y, c, None, None, land, job.unit_shift)


def forecast_with_drivers(plan: Any, data: xr.Dataset, *, batch_size: int, progress: Any,
                          seed: int | None) -> xr.DataArray | xr.Dataset:
    """The body of :func:`xearthformer.forecast` for a model with drivers (see module doc)."""
    from .forecasting import _ChunkJob, wrap_output  # noqa: PLC0415

    loaded, c = plan.model, plan.contract
    if int(plan.lead_steps.max()) > c.out_len:
        raise LeadError(f"lead up to {int(plan.lead_values.max())} {c.step_units} exceeds what "
                        f"{loaded.name!r} forecasts in one pass ({c.out_len} steps of {c.step} "
                        f"{c.step_units}); it is not rolled out, since its drivers are needed for "
                        "every forecast step. Ask for a shorter lead.")
    stack = pre.stacked(plan.prep)
    drivers = driver_arrays(data, c, plan.inits, plan.prep.dims.sample)
    n_samples = stack.sizes["_sample"]
    per_chunk = max(1, batch_size // max(n_samples, 1))
    job = _ChunkJob(spec=plan.spec, device=plan.device, contract=c, land=plan.prep.land, clim=None,
                    months=None, times=plan.prep.times, lead_steps=plan.lead_steps,
                    unit_shift=plan.prep.unit_shift, batch_size=batch_size)
    h, w = c.grid_shape
    n_lead, n_ch = len(plan.lead_steps), stack.sizes["_channel"]
    lazy = hasattr(stack.data, "dask") or any(hasattr(d.data, "dask") for d in drivers)
    parts = []
    for k in range(0, len(plan.positions), per_chunk):
        pos = plan.positions[k:k + per_chunk]
        first = int(pos[0]) - c.in_len + 1
        slab = stack.data[:, first:int(pos[-1]) + 1]
        drv = [d.data[:, k:k + per_chunk] for d in drivers]
        if lazy:
            import dask  # noqa: PLC0415
            import dask.array as dsa  # noqa: PLC0415

            task = dask.delayed(_run_chunk, pure=True)(slab, drv, pos, first, job)
            parts.append(dsa.from_delayed(task, shape=(n_samples, len(pos), n_lead, h, w, n_ch),
                                          dtype=np.float32))
        else:
            parts.append(_run_chunk(np.asarray(slab), [np.asarray(d) for d in drv], pos, first, job))
    if lazy:
        import dask.array as dsa  # noqa: PLC0415

        values = dsa.concatenate(parts, axis=1)
    else:
        values = np.concatenate(parts, axis=1)
    out = wrap_output(plan, values)
    call = (f"forecast(model={loaded.name!r}, lead={list(map(int, plan.lead_values))}, "
            f"inits={len(plan.inits)}, device={plan.device!r}, drivers={list(c.auxiliary['order'])})")
    plan.prep.notes.append("NaN set to 0 and frames clipped to the valid range, as the official "
                           "data loader does")
    attrs = post.provenance(plan.prep, loaded, lead_values=plan.lead_values, device=plan.device,
                            seed=seed, rollout="none", call=call)
    attrs["drivers"] = ", ".join(c.auxiliary["order"])
    if isinstance(out, xr.Dataset):
        for name in out.data_vars:
            out[name].attrs = dict(attrs, **{k: v for k, v in data[name].attrs.items()
                                             if k in ("units", "long_name", "standard_name")})
    else:
        out.attrs = attrs
    return out
