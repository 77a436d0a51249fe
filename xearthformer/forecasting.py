"""Forecasts of labelled data with an Earthformer: :func:`forecast` (PreDiff: :mod:`.ensembles`).

The path of the data (DESIGN.md section 1), each step in its own function:

1. :func:`xearthformer._preprocess.prepare`: variables, dims, dtype, time step, grid (exact
   match, crop, or ``regrid=``), units, anomaly vs climatology;
2. :func:`~xearthformer._quality.normalised_context`: contexts for a set of inits, land and
   all-missing cells filled, other NaN an error;
3. the torch model, rolled forward on its own output when ``lead`` exceeds its output length;
4. :func:`~xearthformer._postprocess.to_physical` and :func:`~xearthformer._postprocess.wrap`:
   back to physical values and labelled coordinates.

Dask-backed input gives a dask-backed result: one task per chunk of ``batch_size`` inits, each
loading the model through the zoo's per-process cache; nothing runs until ``.compute()``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from . import _postprocess as post
from . import _preprocess as pre
from . import _quality as quality
from ._layout import LayoutError, MissingDataError, MissingDimError, TimeStepError, UnitsError
from ._quality import BadValueError
from ._preprocess import (
    AnomalyError,
    DtypeError,
    GridError,
    InitError,
    LeadError,
    MissingVariableError,
    RegridDependencyError,
)
from .zoo import LoadedModel, ModelSpec, load_model, resolve
from .zoo.model_dir import InputContract

__all__ = [
    "forecast", "ForecastPlan", "plan_forecast", "normalised_contexts",
    "wrap_output", "AnomalyError", "DtypeError", "GridError", "InitError", "LeadError",
    "LayoutError", "MissingDataError", "MissingDimError", "MissingVariableError",
    "RegridDependencyError", "TimeStepError", "UnitsError", "ModelKindError", "BadValueError",
]

DEFAULT_MODEL = "earthformer-demo-enso"


class ModelKindError(LayoutError):
    """The model cannot make this kind of forecast (e.g. a PreDiff model in ``forecast``)."""


def _device(device: str) -> str:
    if device != "auto":
        return str(device)
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclasses.dataclass
class ForecastPlan:
    """Everything a forecast call needs after validation (shared by forecast and ensemble)."""

    prep: pre.Prepared
    model: LoadedModel
    spec: ModelSpec | LoadedModel
    positions: np.ndarray  # init positions on the time axis
    inits: np.ndarray  # init times
    lead_values: np.ndarray  # in step units
    lead_steps: np.ndarray  # in model steps
    device: str
    missing: str = "context"  # policy for missing cells in a context (see normalised_context)
    bad_values: str = "raise"  # policy for infinite / far-out values

    def where(self) -> tuple | None:
        """((y name, values), (x name, values)) of the model's grid, for messages."""
        d, coords = self.prep.dims, self.prep.spatial_coords
        if d.y in coords and d.x in coords:
            return ((d.y, np.asarray(coords[d.y].values)), (d.x, np.asarray(coords[d.x].values)))
        return None

    def policy_attrs(self, stats: dict | None) -> dict[str, Any]:
        """The missing/bad-value policies and (numpy input) their counts, for the attrs."""
        n_sea = int((~self.prep.land).sum())
        attrs: dict[str, Any] = {
            "missing_policy": (f"{self.missing}: " + (
                "cells missing at any time of a context are missing for that whole context "
                "(filled for the model, NaN in the forecast)" if self.missing == "context" else
                "only cells missing at every context time are filled; other NaN raise")),
            "bad_values": self.bad_values,
        }
        if stats is not None:
            attrs["missing_cells"] = int(stats.get("missing_cells", 0))
            attrs["missing_cells_note"] = (f"(init, cell) pairs filled outside the model's land "
                                           f"mask, summed over inits and samples ({n_sea} sea "
                                           "cells per context)")
            if stats.get("bad_values"):
                attrs["bad_values_fixed"] = int(stats["bad_values"])
        return attrs

    @property
    def contract(self) -> InputContract:
        return self.prep.contract

    def out_months(self, positions: np.ndarray, steps: np.ndarray) -> np.ndarray | None:
        months = self.prep.month_index()
        if months is None:
            return None
        return months[positions][:, None] + steps[None, :] * self.contract.step


def _resolve_model(model: Any, weights: Any, config: str | None, device: str
                   ) -> tuple[LoadedModel, ModelSpec | LoadedModel]:
    if isinstance(model, LoadedModel):  # already placed: run it where it is
        return model, model
    spec = resolve(model, weights=weights, config=config)
    return load_model(spec, device=device), spec


def plan_forecast(data: xr.DataArray | xr.Dataset, *, lead: int | Sequence[int], model: Any,
                  init: Any = None, var: Any = None, regrid: str | None = None,
                  anomalies: bool | None = None, climatology: xr.DataArray | None = None,
                  units: str | None = None, device: str = "auto", weights: Any = None,
                  config: str | None = None, missing: str = "context",
                  bad_values: str = "raise") -> ForecastPlan:
    """Validate the input and the options and load the model: a :class:`ForecastPlan`.

    The first step of :func:`forecast` and :func:`ensemble`, public for custom model loops.

    Examples
    --------
    >>> import xearthformer
    >>> sst = xearthformer.tutorial.open_dataset("enso", n_years=2)["sst"]
    >>> plan = plan_forecast(sst, lead=3, model="earthformer-demo-enso", device="cpu")
    >>> plan.inits.astype("datetime64[M]"), plan.lead_values.tolist()
    (array(['1951-12'], dtype='datetime64[M]'), [1, 2, 3])
    """
    quality.check_policies(missing, bad_values)
    device = _device(device)
    loaded, spec = _resolve_model(model, weights, config, device)
    if isinstance(model, LoadedModel):
        first = next(iter(loaded.modules.values()))
        device = str(next(first.parameters()).device)
    contract = loaded.card.contract
    lead_values, lead_steps = pre.parse_lead(lead, contract)
    prep = pre.prepare(data, contract, var=var, regrid=regrid, anomalies=anomalies,
                       climatology=climatology, units=units)
    pre.check_all_nan_context(prep)
    positions = pre.select_inits(prep.times, init, contract.in_len, contract.step_units)
    return ForecastPlan(prep=prep, model=loaded, spec=spec, positions=positions,
                        inits=prep.times[positions], lead_values=lead_values,
                        lead_steps=lead_steps, device=device, missing=missing,
                        bad_values=bad_values)


def normalised_contexts(plan: ForecastPlan, values: np.ndarray, positions: np.ndarray,
                        offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalised contexts ``"s n t h w c"`` and land ``"s n h w c"`` for inits at ``positions``.

    ``values`` is the stacked physical data ``"s time h w c"`` (or the part of it starting at
    time position ``offset``).

    Examples
    --------
    >>> import numpy as np, xearthformer
    >>> from xearthformer import _preprocess as pre
    >>> sst = xearthformer.tutorial.open_dataset("enso", n_years=2)["sst"]
    >>> plan = plan_forecast(sst, lead=3, model="earthformer-demo-enso", device="cpu")
    >>> x, land = normalised_contexts(plan, np.asarray(pre.stacked(plan.prep).values), plan.positions)
    >>> x.shape, land.shape
    ((1, 1, 12, 24, 48, 1), (1, 1, 24, 48, 1))
    """
    return quality.series_contexts(values, positions, offset, plan.contract, plan.prep.land,
                                   plan.prep.clim, plan.prep.month_index(), plan.prep.times,
                                   missing=plan.missing, bad_values=plan.bad_values,
                                   where=plan.where())


def wrap_output(plan: ForecastPlan, values: Any, extra: dict[str, Sequence[Any]] | None = None
                ) -> xr.DataArray | xr.Dataset:
    """Physical arrays ``"s n *extra l h w c"`` -> the labelled forecast (no attrs yet).

    Examples
    --------
    >>> import numpy as np, xearthformer
    >>> sst = xearthformer.tutorial.open_dataset("enso", n_years=2)["sst"]
    >>> plan = plan_forecast(sst, lead=3, model="earthformer-demo-enso", device="cpu")
    >>> out = wrap_output(plan, np.zeros((1, 1, 2, 3, 24, 48, 1), np.float32), {"member": [0, 1]})
    >>> out.dims
    ('init', 'member', 'lead', 'lat', 'lon')
    """
    return post.wrap(plan.prep, values, plan.inits, plan.lead_values, extra)


# --- the model -----------------------------------------------------------------------------------


def _rollout(module: Any, x: np.ndarray, land: np.ndarray, n_steps: int, contract: InputContract,
             device: str, batch_size: int) -> np.ndarray:
    """Normalised ``"b t h w c"`` -> ``"b n_steps h w c"``, feeding the model its own output."""
    import torch  # noqa: PLC0415

    fill = np.float32(contract.normalise(np.float64(contract.fill_value)))
    lo_hi = None
    if contract.valid_range is not None:
        lo_hi = sorted(contract.normalise(np.asarray(contract.valid_range, np.float64)))
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            ctx = x[start:start + batch_size]
            mask = land[start:start + batch_size][:, None]
            pieces, done = [], 0
            while done < n_steps:
                y = module(torch.from_numpy(np.ascontiguousarray(ctx)).to(device)).float().cpu().numpy()
                if lo_hi is not None:
                    y = np.clip(y, *lo_hi)
                y = np.where(np.broadcast_to(mask, y.shape), fill, y).astype(np.float32)
                pieces.append(y)
                done += y.shape[1]
                ctx = np.concatenate([ctx, y], axis=1)[:, -contract.in_len:]
            outs.append(np.concatenate(pieces, axis=1)[:, :n_steps])
    return np.concatenate(outs, axis=0)


@dataclasses.dataclass(frozen=True)
class _ChunkJob:
    """What one chunk of inits needs (picklable: the model travels as a spec)."""

    spec: Any
    device: str
    contract: InputContract
    land: np.ndarray
    clim: np.ndarray | None
    months: np.ndarray | None
    times: np.ndarray
    lead_steps: np.ndarray
    unit_shift: float
    batch_size: int
    missing: str = "context"
    bad_values: str = "raise"
    where: Any = None


def _run_chunk(values: np.ndarray, positions: np.ndarray, offset: int, job: _ChunkJob,
               stats: dict | None = None) -> np.ndarray:
    """Physical ``"s time h w c"`` slab -> physical forecasts ``"s n l h w c"``."""
    from einops import rearrange  # noqa: PLC0415

    model = job.spec if isinstance(job.spec, LoadedModel) else load_model(job.spec, device=job.device)
    c = job.contract
    x, land = quality.series_contexts(np.asarray(values), positions, offset, c, job.land,
                                      job.clim, job.months, job.times, missing=job.missing,
                                      bad_values=job.bad_values, where=job.where, stats=stats)
    s, n = x.shape[:2]
    n_steps = int(job.lead_steps.max())
    y = _rollout(model.module, rearrange(x, "s n t h w c -> (s n) t h w c"),
                 rearrange(land, "s n h w c -> (s n) h w c"), n_steps, c, job.device,
                 job.batch_size)
    y = rearrange(y, "(s n) l h w c -> s n l h w c", s=s, n=n)[:, :, job.lead_steps - 1]
    out_months = (None if job.months is None else
                  job.months[positions][:, None] + job.lead_steps[None, :] * c.step)
    return post.to_physical(y, c, job.clim, out_months, land, job.unit_shift)


def _progress(progress: bool | None, n_chunks: int):
    from .progress import show_progress  # noqa: PLC0415

    show = progress if progress is not None else (n_chunks > 4 and show_progress(None))
    if not show:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=n_chunks, desc="forecast", unit="chunk")


def forecast(
    data: xr.DataArray | xr.Dataset,
    *,
    lead: int | Sequence[int],
    model: str | os.PathLike | LoadedModel = DEFAULT_MODEL,
    init: Any = None,
    var: str | Sequence[str] | None = None,
    regrid: Literal["linear", "nearest", "conservative"] | None = None,
    regrid_back: bool = False,
    anomalies: bool | None = None,
    climatology: xr.DataArray | None = None,
    units: str | None = None,
    device: str = "auto",
    batch_size: int = 16,
    seed: int | None = None,
    progress: bool | None = None,
    weights: str | os.PathLike | None = None,
    config: str | None = None,
    missing: Literal["context", "strict"] = "context",
    bad_values: Literal["raise", "mask", "clip"] = "raise",
) -> xr.DataArray | xr.Dataset:
    """Forecast labelled data with an Earthformer model.

    Parameters
    ----------
    data : xarray.DataArray or xarray.Dataset
        Dims time and two spatial dims (found by CF attributes or names: ``lat``/``lon``,
        ``latitude``/``longitude``, ``y``/``x``), numpy- or dask-backed. Any other dim (e.g.
        ``event``) holds independent samples sharing the time axis: each is forecast from the
        same inits (``init=None``: the last time step, e.g. the last frame of every storm
        event), and the output keeps that dim first. A Dataset gives the model's variables by
        name (or ``var=``). Models with drivers (``earthformer-earthnet2021``) also read their
        driver variables from the Dataset by name (``docs/zoo.md``; :mod:`xearthformer._drivers`).
    lead : int or sequence of int
        ``N``: the next N steps (months 1..N; for a 5-minute model 5, 10, ... 5N minutes).
        A sequence: those leads in ``months``/``minutes`` (multiples of the step). Leads beyond
        the model's output length roll the model forward on its own output (``attrs["rollout"]``).
    model : str, path or LoadedModel
        A zoo name (:func:`xearthformer.list_models`), a model directory, a checkpoint file
        with ``config=NAME``, or a model from :func:`xearthformer.load_model`.
    init : None, time, slice or list of times
        ``None``: the last time (it must have a full context before it). A slice or list: a
        hindcast, one forecast per init with a full context. Monthly inits match by month.
    var : str or list of str, optional
        For a Dataset: the variable(s) to use in the model's channel order.
    regrid : {"linear", "nearest", "conservative"}, optional
        Interpolate a different grid onto the model's; without it a different grid raises
        :class:`GridError` naming the expected grid. Grids that contain the model's points
        (either latitude order, longitudes 0..360, -180..180 or beyond 360) need no regridding:
        the points are selected and the forecast keeps the data's coordinates and order.
    regrid_back : bool
        Return the forecast on the data's full grid: NaN over cells missing at every time of
        the data and outside the model's domain.
    anomalies : bool, optional
        For models working on anomalies: whether ``data`` are anomalies. ``None`` decides by
        whether the mean of the last context is closer to 0 or to the climatology's mean
        (absolute input gives absolute forecasts, with the valid month's climatology added).
        The decision needs no data when the model's climatology is near zero (anomaly-trained
        models) or absent; otherwise dask input has its last context read once to decide:
        pass ``anomalies=`` to keep everything lazy.
    climatology : xarray.DataArray, optional
        Monthly climatology (dim ``month``, the data's spatial dims and units) to use instead of
        the model's.
    units : str, optional
        The data's units when the attribute is missing or wrong (``"degC"``, ``"K"``).
    device : {"auto", "cpu", "cuda"}
    batch_size : int
        Inits per model call (and per dask task).
    seed : int, optional
        Recorded in the attrs (Earthformer forecasts are deterministic).
    progress : bool, optional
        Progress bar over the batches (default: when there are more than 4, on a terminal
        and in a Jupyter kernel; never in logs).
    weights, config : path, str, optional
        A local checkpoint for a zoo name (``model=NAME, weights=PATH``), or the zoo name
        giving the configuration of ``model=PATH.pt`` (``config=NAME``); both work offline.
    missing : {"context", "strict"}
        ``"context"``: a cell missing at any time of a context (sea ice, sparse observations,
        cells emptied by regridding) is missing for that whole context: filled for the model,
        NaN in the forecast, counted in ``attrs["missing_cells"]``; a context with more than half
        of the model's sea cells missing raises :class:`MissingDataError`. ``"strict"``: only
        cells missing at every context time are filled, any other NaN raises. The policy is
        recorded in ``attrs["missing_policy"]``.
    bad_values : {"raise", "mask", "clip"}
        Infinite values, values more than 50 times the model's scale from its centre
        (``_quality.MAX_NORMALISED``: far beyond any real anomaly) and values outside the model's valid
        range raise :class:`BadValueError` naming where they are; ``"mask"`` treats them as
        missing, ``"clip"`` clips them to the model's range (recorded in the attrs).

    Returns
    -------
    xarray.DataArray
        Dims ``(*sample, init, lead, y, x)``; coordinates ``valid_time(init, lead)``, the data's
        spatial coordinates and attrs; the variable's attrs plus provenance (model, checkpoint
        sha256, version, seed, device, rollout, preprocessing notes) and a ``history`` line.
        A Dataset when the model has several variables.

    Raises
    ------
    MissingDimError, TimeStepError, GridError, UnitsError, MissingDataError, DtypeError,
    InitError, LeadError, MissingVariableError, AnomalyError, BadValueError
        All :class:`ValueError`; the message says what was found, what was expected and what
        to do. With dask input, NaN checks of the contexts happen at compute time.
    xearthformer.zoo.UnknownModelError, xearthformer.zoo.WeightsUnavailableError

    Examples
    --------
    >>> import tempfile, torch, xearthformer
    >>> from xearthformer.models import Earthformer
    >>> from xearthformer.zoo import official_kwargs
    >>> path = tempfile.mkdtemp() + "/enso.pt"
    >>> torch.manual_seed(0) and None
    >>> torch.save(Earthformer.from_official_kwargs(official_kwargs("earthformer-icar-enso")).state_dict(), path)
    >>> sst = xearthformer.tutorial.open_dataset("enso", n_years=3)["sst"]
    >>> fc = xearthformer.forecast(sst, lead=3, model=path, config="earthformer-icar-enso")
    >>> fc.dims, fc["lead"].values.tolist(), str(fc["valid_time"].values[0, 0])[:7]
    (('init', 'lead', 'lat', 'lon'), [1, 2, 3], '1953-01')
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    plan = plan_forecast(data, lead=lead, model=model, init=init, var=var, regrid=regrid,
                         anomalies=anomalies, climatology=climatology, units=units,
                         device=device, weights=weights, config=config, missing=missing,
                         bad_values=bad_values)
    loaded, c = plan.model, plan.contract
    if loaded.card.kind != "earthformer":
        raise ModelKindError(f"model {loaded.name!r} is a {loaded.card.kind} model; use "
                             "xearthformer.ensemble() for probabilistic (PreDiff) forecasts.")
    if c.auxiliary:  # a model with drivers (EarthNet2021): they come from the Dataset by name
        from ._drivers import forecast_with_drivers  # noqa: PLC0415

        return forecast_with_drivers(plan, data, batch_size=batch_size, progress=progress, seed=seed)
    stack = pre.stacked(plan.prep)
    n_samples = stack.sizes["_sample"]
    per_chunk = max(1, batch_size // max(n_samples, 1))
    chunks = [plan.positions[i:i + per_chunk] for i in range(0, len(plan.positions), per_chunk)]
    job = _ChunkJob(spec=plan.spec, device=plan.device, contract=c, land=plan.prep.land,
                    clim=plan.prep.clim, months=plan.prep.month_index(), times=plan.prep.times,
                    lead_steps=plan.lead_steps, unit_shift=plan.prep.unit_shift,
                    batch_size=batch_size, missing=missing, bad_values=bad_values,
                    where=plan.where())
    stats: dict | None = None
    h, w = c.grid_shape
    n_ch, n_lead = stack.sizes["_channel"], len(plan.lead_steps)
    if hasattr(stack.data, "dask"):
        import dask  # noqa: PLC0415
        import dask.array as dsa  # noqa: PLC0415

        run = dask.delayed(_run_chunk, pure=True)
        parts = []
        for pos in chunks:
            first = int(pos[0]) - c.in_len + 1
            slab = stack.data[:, first:int(pos[-1]) + 1]
            parts.append(dsa.from_delayed(run(slab, pos, first, job),
                                          shape=(n_samples, len(pos), n_lead, h, w, n_ch),
                                          dtype=np.float32))
        values = dsa.concatenate(parts, axis=1)
    else:
        raw = np.asarray(stack.values)
        bar = _progress(progress, len(chunks))
        parts, stats = [], {}
        for pos in chunks:
            parts.append(_run_chunk(raw, pos, 0, job, stats))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        values = np.concatenate(parts, axis=1)
    out = wrap_output(plan, values)
    calls = -(-int(plan.lead_steps.max()) // c.out_len)
    rollout = ("none" if calls == 1 else f"autoregressive: {calls} model calls of {c.out_len} "
               f"steps, each fed the last {c.in_len} steps including its own output")
    call = (f"forecast(model={loaded.name!r}, lead={list(map(int, plan.lead_values))}, "
            f"inits={len(plan.inits)}, device={plan.device!r})")
    attrs = post.provenance(plan.prep, loaded, lead_values=plan.lead_values, device=plan.device,
                            seed=seed, rollout=rollout, call=call)
    attrs.update(plan.policy_attrs(stats))
    if isinstance(out, xr.Dataset):
        for name in out.data_vars:
            out[name].attrs = attrs
    else:
        out.attrs = attrs
    if regrid_back:
        if isinstance(out, xr.Dataset):
            raise ValueError("regrid_back=True supports one-variable models only.")
        out = post.regrid_back(out, plan.prep)
    return out
