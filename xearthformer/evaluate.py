"""Hindcast evaluation over archives that do not fit in memory.

:func:`evaluate` splits the inits of an archive into chunks, makes one dask task
per chunk (forecast, match observations through ``valid_time``, reduce to additive
partial sums by lead), adds the partial sums in a fixed binary tree and turns the
totals into scores. Only one chunk's forecasts are in memory per worker at a time.
Counts are integers (exact whatever the chunking); correlations come from sums of
``p, y, p*y, p^2, y^2, n``, so they agree across chunkings to rounding (< 1e-12).

torch-using code (``xearthformer.forecasting``) is imported only when a model name is
given; the metrics layer below never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from . import _reader as reader
from ._score_sums import _GROUP, _SPECS
from .metrics import _validate as V
from .metrics.baselines import BASELINES, lead_units, valid_times
from .metrics.categorical import SEVIR_THRESHOLDS
from .metrics.indices import box_mean, monthly_climatology

__all__ = ["evaluate", "parse_leads", "METRICS", "ForecastLayoutError", "StoreMismatchError",
           "ModelUnavailableError"]

#: Metric names :func:`evaluate` understands.
METRICS = ("mse", "rmse", "mae", "correlation", "enso", "contingency", "crps", "spread_skill")

ForecastFn = Callable[[xr.DataArray, Any, Sequence[int]], xr.DataArray]


class ForecastLayoutError(ValueError):
    """A forecast function returned data in the wrong layout."""


class StoreMismatchError(ValueError):
    """A ``store=`` holds partial results of a different evaluation."""


class ModelUnavailableError(NotImplementedError, ValueError):
    """A model name cannot be resolved (the forecasting module is missing)."""


def parse_leads(leads: int | str | Sequence[int]) -> list[int]:
    """Leads as a list: ``12`` -> 1..12, ``"1-12"`` or ``"1,3,6"`` -> those leads.

    Examples
    --------
    >>> parse_leads("1-3"), parse_leads(2), parse_leads("1,6")
    ([1, 2, 3], [1, 2], [1, 6])
    """
    if isinstance(leads, str):
        out: list[int] = []
        try:
            for part in leads.split(","):
                lo, _, hi = part.strip().partition("-")
                out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise V.MetricsInputError(
                f"leads={leads!r} is not understood; expected e.g. '1-12' or '1,3,6'."
            ) from None
    elif np.ndim(leads) == 0:
        out = list(range(1, int(leads) + 1))
    else:
        out = [int(v) for v in leads]
    if not out or min(out) < 1 or len(set(out)) != len(out):
        raise V.MetricsInputError(
            f"leads {out} must be distinct integers >= 1 (lead 1 is one step after the init)."
        )
    return sorted(out)


# --- one chunk -----------------------------------------------------------------------------


def _check_forecast(fc: Any, inits: np.ndarray, leads: list[int], window: xr.DataArray) -> None:
    if not isinstance(fc, xr.DataArray) or "init" not in fc.dims or "lead" not in fc.dims:
        raise ForecastLayoutError(
            f"the forecast function returned {type(fc).__name__} with dims "
            f"{getattr(fc, 'dims', None)}; expected a DataArray with dims ('init', 'lead', ...) "
            "and a valid_time(init, lead) coordinate (see metrics.persistence_forecast)."
        )
    if fc.sizes["init"] != len(inits) or not np.array_equal(fc["init"].values, inits):
        raise ForecastLayoutError(
            f"the forecast's init values {fc['init'].values[:3]}... differ from the inits asked "
            f"for {inits[:3]}...; expected one forecast per requested init, in order."
        )
    if [int(v) for v in fc["lead"].values] != leads:
        raise ForecastLayoutError(
            f"the forecast's leads {fc['lead'].values.tolist()} differ from leads {leads}."
        )
    V.check_matching_coords(fc, window, skip=["init", "lead", "member", "time"])


class _Window:
    """A chunk's slice of the archive, hidden from dask's graph traversal.

    Handing the lazy slice itself to ``dask.delayed`` would make its reads graph tasks
    that the scheduler may run well ahead of the forecasts; read inside the task instead,
    a worker holds one window at a time, whatever the archive length.
    """

    __slots__ = ("data",)

    def __init__(self, data: xr.DataArray) -> None:
        self.data = data

    def load(self) -> xr.DataArray:
        return self.data.compute(scheduler="synchronous") if V.is_dask(self.data) else self.data


def _chunk_partials(lazy_window: _Window, inits: np.ndarray, leads: list[int], fn: ForecastFn,
                    groups: list[str], opts: dict, store: str | None, key: str) -> xr.Dataset:
    window = lazy_window.load()
    last = window.indexes["time"].get_loc(inits[-1])
    fc = fn(window.isel(time=slice(0, last + 1)), inits, leads)
    _check_forecast(fc, inits, leads, window)
    fc = fc.compute(scheduler="synchronous") if V.is_dask(fc) else fc
    if "lead" in fc.coords and "units" not in fc["lead"].attrs:
        fc["lead"].attrs["units"] = lead_units(window["time"])
    ob = V.at_valid_time(window, fc)
    fc_det = fc.mean(opts["member_dim"]) if opts["member_dim"] in fc.dims else fc
    parts: dict[str, xr.DataArray] = {}
    for group in groups:
        partial, _, members = _SPECS[group]
        if members and opts["member_dim"] not in fc.dims:
            raise ForecastLayoutError(
                f"metric {group!r} needs an ensemble, but the forecast has no "
                f"{opts['member_dim']!r} dimension (dims {list(fc.dims)})."
            )
        parts.update(partial(fc if members else fc_det, ob, opts))
    out = xr.Dataset({k: v.reset_coords(drop=True) for k, v in parts.items()})
    if store is not None:
        _write_partial(out, store, key)
    return out


def _add(a: xr.Dataset, b: xr.Dataset) -> xr.Dataset:
    out = {}
    for name in a.data_vars:
        if name.startswith("max_"):
            out[name] = np.fmax(a[name], b[name])
        elif name == "ss_members":
            out[name] = a[name]
        else:
            out[name] = a[name] + b[name]
    return xr.Dataset(out)


def _tree_sum(parts: list[Any]) -> Any:
    add = dask.delayed(_add, pure=True)
    while len(parts) > 1:
        parts = [add(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


# --- store (resumable runs) ----------------------------------------------------------------


def _write_partial(ds: xr.Dataset, store: str, key: str) -> None:
    tmp = os.path.join(store, f".tmp-{key}-{uuid.uuid4().hex}")
    ds.to_zarr(tmp, mode="w", consolidated=False)
    try:
        os.replace(tmp, os.path.join(store, key))
    except OSError:  # another run finished the same chunk first
        shutil.rmtree(tmp, ignore_errors=True)


def _read_partial(store: str, key: str) -> xr.Dataset:
    with xr.open_zarr(os.path.join(store, key), consolidated=False) as ds:
        return ds.load()


def _open_store(store: str, config: dict) -> set[str]:
    os.makedirs(store, exist_ok=True)
    path = os.path.join(store, "evaluation.json")
    if os.path.exists(path):
        with open(path) as fh:
            old = json.load(fh)
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise StoreMismatchError(
                f"store {store!r} holds partial results of another evaluation (differing "
                f"settings: {diff}). Expected the same settings to resume; use a new store path "
                "or delete this one."
            )
    else:
        with open(path, "w") as fh:
            json.dump(config, fh, indent=1)
    return {n for n in os.listdir(store) if n.startswith("chunk-")}


# --- the public function ---------------------------------------------------------------------


def _resolve(model: str | ForecastFn, archive: xr.DataArray, base_period: Any) -> tuple[
        ForecastFn, str]:
    if callable(model):
        return model, getattr(model, "__name__", type(model).__name__)
    if not isinstance(model, str):
        raise V.MetricsInputError(
            f"model_or_forecast_fn must be a model name or a callable, not {type(model).__name__}."
        )
    if model in BASELINES:
        if model == "climatology":
            return BASELINES[model](archive, base_period), model
        return BASELINES[model](archive), model
    try:
        from .forecasting import forecast  # noqa: PLC0415 (torch-using, imported lazily)
    except ImportError as err:
        raise ModelUnavailableError(
            f"model {model!r} needs xearthformer.forecast, which is not available ({err}). "
            f"Pass a forecast function, or one of the baselines {sorted(BASELINES)}."
        ) from err

    def model_forecast(context, inits, leads):
        return forecast(context, model=model, init=inits, lead=leads)

    return model_forecast, model


def _check_step(times: np.ndarray, units: str) -> None:
    """Refuse archives whose step is neither monthly nor sub-daily (e.g. yearly means)."""
    if units != "minutes" or len(times) < 2 or not np.issubdtype(times.dtype, np.datetime64):
        return
    days = float(np.median(np.diff(times)).astype("timedelta64[s]").astype(np.int64)) / 86400.0
    if days >= 1.0:
        raise V.MetricsInputError(
            f"the archive's time step is {days:g} days; evaluate scores monthly archives (leads "
            "in months) and nowcasting archives (leads in minutes). Resample the archive to "
            "months (archive.resample(time='MS').mean()), or evaluate your own forecasts with "
            "the functions of xearthformer.metrics."
        )


def _position(index: Any, when: Any, units: str) -> int:
    """Position of ``when`` on the archive's time axis; monthly archives match by calendar
    month (stamps at month start, middle or end, any calendar, as ``at_valid_time`` does)."""
    pos = int(index.get_indexer([when])[0])
    if pos < 0 and units == "months":
        months = [t.year * 12 + t.month for t in index]
        pos = months.index(when.year * 12 + when.month) if (
            when.year * 12 + when.month) in months else -1
    return pos


def _select_archive(archive: xr.DataArray | xr.Dataset, variable: str | None) -> xr.DataArray:
    """The archive's variable, decoded, with its time dim (found by the package's one reader:
    ``time``, ``TIME``, ``t``, CF attributes) named ``time`` for the chunk tasks."""
    if isinstance(archive, xr.Dataset):
        names = reader.data_variables(archive)  # bounds variables (time_bnds...) never count
        if variable is None and len(names) != 1:
            raise V.MetricsInputError(
                f"the archive holds variables {names}; pass variable= to say which to evaluate."
            )
        if variable is not None and variable not in archive.data_vars:
            raise V.MetricsInputError(
                f"variable={variable!r} is not in the archive, which holds {names}."
            )
        archive = archive[variable or names[0]]
    if not isinstance(archive, xr.DataArray):
        raise V.MetricsInputError(
            f"archive must be an xarray DataArray or Dataset, not {type(archive).__name__}."
        )
    archive, _ = reader.decode(archive)
    time = reader.find_time(archive)
    if time is not None and time != "time":
        if "time" in archive.dims or "time" in archive.coords:
            raise V.MetricsInputError(
                f"the archive's time dimension is {time!r}, but it also has a 'time' "
                f"{'dimension' if 'time' in archive.dims else 'coordinate'}; rename one of them."
            )
        archive = archive.rename({time: "time"})
    return archive


def _select_inits(times: np.ndarray, init: Any, leads: list[int], units: str, context: int
                  ) -> np.ndarray:
    import pandas as pd

    index = pd.Index(times)
    if init is None:
        candidates = times[context - 1:]
    elif isinstance(init, slice):
        candidates = pd.Series(np.arange(len(times)), index=index).loc[init].index.values
    else:
        candidates = np.asarray(init, dtype=times.dtype)
        gone = candidates[index.get_indexer(candidates) < 0]
        if len(gone):
            raise V.MetricsInputError(
                f"inits {[str(g)[:10] for g in gone[:10]]} are not time steps of the archive "
                f"({str(times[0])[:10]} .. {str(times[-1])[:10]}); expected archive times."
            )
    vt = valid_times(candidates, leads, units) if len(candidates) else np.empty((0, 0))
    ok = (vt <= times[-1]).all(axis=1) if len(candidates) else np.zeros(0, bool)
    ok &= index.get_indexer(candidates) >= context - 1
    if init is not None and not isinstance(init, slice) and not ok.all():
        raise V.MetricsInputError(
            f"inits {[str(g)[:10] for g in candidates[~ok][:10]]} lack context or verifying "
            f"data for leads up to {max(leads)} in the archive ({str(times[0])[:10]} .. "
            f"{str(times[-1])[:10]}); choose inits with {context} step(s) before and "
            f"{max(leads)} after them."
        )
    if not ok.any():
        raise V.MetricsInputError(
            f"no init of the archive ({str(times[0])[:10]} .. {str(times[-1])[:10]}) has "
            f"verifying data for leads up to {max(leads)}; use a longer archive or shorter leads."
        )
    return candidates[ok]


def _model_context(model: Any) -> int:
    """Context length a forecast needs: the model's ``in_len`` for a zoo name, else 1."""
    if not isinstance(model, (str, os.PathLike)) or model in BASELINES:
        return 1
    try:
        from .zoo import entries  # noqa: PLC0415 (torch-using, imported lazily)
    except ImportError:
        return 1
    from .zoo.model_dir import is_model_dir, load_model_dir  # noqa: PLC0415

    if str(model) in entries():
        return int(entries()[str(model)].contract().in_len)
    if is_model_dir(model):
        return int(load_model_dir(model)[0].contract.in_len)
    return 1


def evaluate(
    model_or_forecast_fn: str | ForecastFn,
    archive: xr.DataArray | xr.Dataset,
    *,
    leads: int | str | Sequence[int],
    metrics: Sequence[str] = ("mse", "rmse", "correlation"),
    init: Any = None,
    client: Any = None,
    store: str | os.PathLike | None = None,
    thresholds: float | Sequence[float] = SEVIR_THRESHOLDS,
    climatology: xr.DataArray | float | None = None,
    base_period: Any = None,
    index_weights: Any = None,
    variable: str | None = None,
    chunk_size: int = 12,
    context: int | None = None,
    member_dim: str = "member",
    scheduler: str = "threads",
    num_workers: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Hindcast an archive init by init and reduce to scores by lead.

    Parameters
    ----------
    model_or_forecast_fn : str or callable
        A callable ``fn(context, inits, leads) -> DataArray (init, lead, ...)`` with a
        ``valid_time(init, lead)`` coordinate — e.g.
        :func:`xearthformer.metrics.persistence_forecast` — or a name: ``"persistence"``,
        ``"climatology"`` (computed once over ``base_period``), or a model name, resolved
        lazily through ``xearthformer.forecasting.forecast`` (:class:`ModelUnavailableError`
        until that module exists). ``context`` holds the archive up to the chunk's last init:
        the function must use, for each init, only times up to that init.
    archive : xarray.DataArray or xarray.Dataset
        Observations with a time dim (``time``, ``TIME``, ``t`` or CF attributes; the forecast
        function sees it named ``time``), opened lazily (e.g. with ``open_mfdataset`` or
        ``open_zarr``): both the forecasts' context and their verification. Gaps in time
        raise :class:`~xearthformer.metrics.ArchiveGapError`.
    leads : int, str or sequence of int
        ``12`` or ``"1-12"`` for leads 1..12 (months for monthly archives, minutes otherwise).
    metrics : sequence of str
        Any of ``mse``, ``rmse``, ``mae`` (over init and space, by lead); ``correlation``
        (Pearson over init at each grid point, by lead); ``enso`` (the ICAR-ENSO Nino3.4 scores,
        see :func:`~xearthformer.metrics.enso_skill`); ``contingency`` or ``csi`` (counts, CSI,
        POD, FAR, bias, HSS by lead and threshold, and CSI-M); ``crps``, ``spread_skill``
        (ensembles). Deterministic scores use the ensemble mean.
    init : slice or sequence, optional
        The inits to evaluate; default every archive time with ``context`` steps before it
        and verifying data for the longest lead.
    client : distributed.Client, optional
        Run on this cluster; default the local ``scheduler`` (threads). No client is created.
    store : path, optional
        A directory where each chunk's partial sums are written (a zarr store per chunk) as
        they finish; a rerun with the same settings skips finished chunks.
    thresholds : float or sequence
        Event thresholds of ``contingency`` (SEVIR thresholds by default).
    climatology, base_period, index_weights
        For ``enso``: the Nino3.4 climatology (default: from the archive over ``base_period``;
        ``0`` for anomaly archives) and the box weights (None: unweighted, as ICAR-ENSO).
    chunk_size : int
        Inits per task. Scores do not depend on it.
    context : int, optional
        Time steps each forecast needs up to and including its init. Default: the model's
        context length (``in_len``) for a zoo name or model directory, 1 otherwise.

    Returns
    -------
    xarray.Dataset
        Scores by ``lead`` (and ``threshold``, grid point for ``correlation``); attrs record
        the model, number of inits, chunks and metrics.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2000-01-01", periods=36, freq="MS")
    >>> rng = np.random.default_rng(0)
    >>> obs = xr.DataArray(rng.normal(size=(36, 2, 3)), dims=("time", "lat", "lon"),
    ...                    coords={"time": t, "lat": [0.0, 1.0], "lon": [0.0, 1.0, 2.0]})
    >>> scores = evaluate("persistence", obs, leads=3, metrics=["rmse", "correlation"])
    >>> scores["rmse"].dims, scores["correlation"].dims
    (('lead',), ('lead', 'lat', 'lon'))
    """
    da = _select_archive(archive, variable)
    V.check_no_gaps(da, "time")
    lead_list = parse_leads(leads)
    unknown = [m for m in metrics if m not in _GROUP]
    if unknown or not metrics:
        raise V.MetricsInputError(f"unknown metrics {unknown}; expected some of {list(_GROUP)}.")
    groups = list(dict.fromkeys(_GROUP[m] for m in metrics))
    if context is None:
        context = _model_context(model_or_forecast_fn)
    if chunk_size < 1 or context < 1:
        raise V.MetricsInputError("chunk_size and context must be >= 1.")
    times = da["time"].values
    units = lead_units(times)
    _check_step(times, units)
    inits = _select_inits(times, init, lead_list, units, context)
    fn, name = _resolve(model_or_forecast_fn, da, base_period)
    da = da.assign_coords(time=da["time"].assign_attrs(lead_units=units))  # for 1-step contexts
    opts = {"thresholds": [float(t) for t in V.as_list(thresholds)], "member_dim": member_dim,
            "index_weights": index_weights, "running_mean": 3, "climatology": climatology}
    if "enso" in groups and climatology is None:
        index = box_mean(da, weights=index_weights)
        opts["climatology"] = monthly_climatology(index, base_period).compute()
    if "enso" in groups and (units != "months" or lead_list != list(
            range(lead_list[0], lead_list[-1] + 1)) or len(lead_list) < 3):
        raise V.MetricsInputError(
            f"metric 'enso' needs monthly data and at least 3 consecutive leads; got {units} "
            f"leads {lead_list}."
        )
    chunks = [inits[i:i + chunk_size] for i in range(0, len(inits), chunk_size)]
    done: set[str] = set()
    store_path = os.fspath(store) if store is not None else None
    if store_path is not None:
        config = {"model": name, "leads": lead_list, "metrics": sorted(groups),
                  "thresholds": opts["thresholds"], "chunk_size": chunk_size,
                  "inits": hashlib.sha256(np.asarray(inits).astype("U32").tobytes()).hexdigest(),
                  "member_dim": member_dim}
        done = _open_store(store_path, config)
    time_index = da.indexes["time"]
    tasks = []
    task = dask.delayed(_chunk_partials, pure=False)
    for k, chunk in enumerate(chunks):
        key = f"chunk-{k:06d}"
        if key in done:
            tasks.append(dask.delayed(_read_partial, pure=False)(store_path, key))
            continue
        first = time_index.get_loc(chunk[0]) - (context - 1)
        end = _position(time_index, valid_times(chunk[-1:], lead_list[-1:], units)[0][0], units)
        window = da.isel(time=slice(first, end + 1))
        tasks.append(task(_Window(window), chunk, lead_list, fn, groups, opts, store_path, key,
                          dask_key_name=f"evaluate-{key}-{uuid.uuid4().hex[:8]}"))
    root = _tree_sum(tasks)
    from .progress import show_progress  # noqa: PLC0415

    progress = show_progress(progress)
    if client is not None:
        future = client.compute(root)
        if progress:
            from distributed import progress as show  # noqa: PLC0415

            show(future)
        total = future.result()
    elif progress:
        from dask.diagnostics import ProgressBar  # noqa: PLC0415

        with ProgressBar():
            (total,) = dask.compute(root, scheduler=scheduler, num_workers=num_workers)
    else:
        (total,) = dask.compute(root, scheduler=scheduler, num_workers=num_workers)
    scores: dict[str, xr.DataArray] = {}
    for group in groups:
        scores.update(_SPECS[group][1](total, opts))
    for extra in {"mse", "rmse", "mae"} - set(metrics):
        scores.pop(extra, None)
    out = xr.Dataset(scores)
    if "contingency" in groups:
        _warn_empty_thresholds(total, opts["thresholds"])
    out["lead"].attrs = {"units": units, "standard_name": "forecast_period"}
    out.attrs = {"model": name, "n_inits": len(inits), "first_init": str(inits[0]),
                 "last_init": str(inits[-1]), "chunks": len(chunks), "chunk_size": chunk_size,
                 "metrics": " ".join(metrics)}
    return out


def _warn_empty_thresholds(total: xr.Dataset, thresholds: list[float]) -> None:
    top = float(total["max_data"])
    V.check_threshold_scale(thresholds, xr.DataArray([top]), stacklevel=4)

