"""Line plots: an index forecast plume (e.g. Nino3.4) and skill scores against lead."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ._validate import (
    ExtraDimsError,
    PlotInputError,
    check_no_extra_dims,
    field_label,
    format_time,
    select_init,
    valid_time,
)

__all__ = ["plot_index_plume", "plot_skill"]


def _new_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def plot_index_plume(
    index_fc: xr.DataArray,
    obs: xr.DataArray | None = None,
    *,
    init: Any = None,
    thresholds: tuple[float, float] | None = (-0.5, 0.5),
    quantiles: tuple[float, float] = (0.05, 0.95),
    n_obs_before: int = 12,
    ax: Any = None,
) -> tuple[Any, Any]:
    """A forecast plume of an index (Nino3.4 or any scalar series) against valid time.

    Members are thin lines, the ensemble mean a thick line, the ``quantiles``
    (5-95 percent) a band; observations are overlaid, and the El Nino / La Nina
    ranges beyond ``thresholds`` are shaded.

    Parameters
    ----------
    index_fc : xarray.DataArray
        Index forecast with dims ``(init, [member,] lead)`` and ``valid_time(init, lead)``.
    obs : xarray.DataArray, optional
        Observed index with a ``time`` dim; drawn from ``n_obs_before`` steps
        before init to the last valid time.
    init : optional
        The initialisation to draw; default the first.
    thresholds : (float, float) or None
        La Nina / El Nino thresholds, shaded below / above; None for none.
    quantiles : (float, float)
        Band of the member distribution.
    n_obs_before : int
        Observed steps shown before init.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> import matplotlib.pyplot as plt
    >>> import xearthformer.plot as xfp
    >>> rng = np.random.default_rng(0)
    >>> vt = pd.date_range("2021-02-01", periods=6, freq="MS").values
    >>> fc = xr.DataArray(
    ...     rng.normal(0.8, 0.3, size=(1, 10, 6)), dims=("init", "member", "lead"),
    ...     coords={"init": pd.to_datetime(["2021-01-01"]), "member": np.arange(10),
    ...             "lead": ("lead", np.arange(1, 7), {"units": "months"}),
    ...             "valid_time": (("init", "lead"), vt[None])},
    ...     name="nino34", attrs={"long_name": "Nino3.4 index", "units": "K"})
    >>> fig, ax = xfp.plot_index_plume(fc)
    >>> ax.get_title()
    'Nino3.4 index forecast, init 2021-01'
    >>> len(ax.lines) >= 10
    True
    >>> plt.close(fig)
    """
    one = select_init(index_fc, init)
    if "lead" not in one.dims:
        raise PlotInputError(
            f"plot_index_plume needs a 'lead' dimension; dims found: {tuple(index_fc.dims)}"
        )
    check_no_extra_dims(one, ("member", "lead"), "plot_index_plume")
    units = str(index_fc["lead"].attrs.get("units", ""))
    leads = one["lead"].values
    times = [valid_time(one, lead) for lead in leads]
    x = np.asarray(times) if all(t is not None for t in times) else leads

    fig, ax = _new_axes(ax, (8.0, 4.2))
    import matplotlib.dates as mdates

    colour = "C0"
    if "member" in one.dims:
        members = one.transpose("member", "lead").values
        for i, row in enumerate(members):
            ax.plot(x, row, color=colour, lw=0.6, alpha=0.35,
                    label="members" if i == 0 else None)
        lo, hi = np.nanquantile(members, quantiles, axis=0)
        ax.fill_between(x, lo, hi, color=colour, alpha=0.2,
                        label=f"{quantiles[0]:.0%}-{quantiles[1]:.0%} range")
        mean = np.nanmean(members, axis=0)
        ax.plot(x, mean, color=colour, lw=2.2, label=f"ensemble mean ({members.shape[0]})")
    else:
        ax.plot(x, one.values, color=colour, lw=2.2, marker="o", ms=3, label="forecast")

    init_value = one["init"].values if "init" in one.coords else None
    if obs is not None:
        if "time" not in obs.dims:
            raise PlotInputError(f"obs needs a 'time' dim; dims found: {tuple(obs.dims)}")
        check_no_extra_dims(obs, ("time",), "plot_index_plume (obs)")
        tvals = obs["time"].values
        start = 0
        if init_value is not None and tvals.dtype == np.asarray(init_value).dtype:
            start = max(int(np.searchsorted(tvals, init_value)) - n_obs_before, 0)
        stop = len(tvals)
        if x.dtype.kind == "M":
            stop = int(np.searchsorted(tvals, x[-1], side="right"))
        seg = obs.isel(time=slice(start, stop))
        ax.plot(seg["time"].values, seg.values, color="k", lw=1.6, marker="o", ms=2.5,
                label="observed")
    if init_value is not None and x.dtype.kind == "M":
        ax.axvline(init_value, color="0.4", lw=0.8, ls=":", label="init")

    if thresholds is not None:
        low, high = thresholds
        ymin, ymax = ax.get_ylim()
        ymin, ymax = min(ymin, low - 0.3), max(ymax, high + 0.3)
        ax.axhspan(high, ymax + 100, color="tab:red", alpha=0.08, lw=0,
                   label=f"El Niño (> {high:g})")
        ax.axhspan(ymin - 100, low, color="tab:blue", alpha=0.08, lw=0,
                   label=f"La Niña (< {low:g})")
        for y in thresholds:
            ax.axhline(y, color="0.3", lw=0.7, ls="--")
        ax.set_ylim(ymin, ymax)
    ax.axhline(0.0, color="0.5", lw=0.5)

    if x.dtype.kind == "M":
        locator = mdates.AutoDateLocator(maxticks=10)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel("valid time")
    else:
        ax.set_xlabel(f"lead ({units})" if units else "lead")
    ax.set_ylabel(field_label(index_fc) or "index")
    name = index_fc.attrs.get("long_name") or index_fc.name or "index"
    ax.set_title(f"{name} forecast, init {format_time(init_value, units)}")
    ax.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
    ax.grid(True, lw=0.3, alpha=0.5)
    return fig, ax


_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_skill(
    scores: xr.DataArray | xr.Dataset,
    *,
    dim: str = "lead",
    hue: str | None = None,
    threshold_dim: str = "threshold",
    ax: Any = None,
    title: str | None = None,
) -> tuple[Any, Any]:
    """Skill score against lead: one line per model / baseline, one per CSI threshold.

    Parameters
    ----------
    scores : xarray.DataArray or xarray.Dataset
        Scores with dim ``dim`` (default ``lead``) and optionally a model dim
        (``hue``, default ``"model"`` when present) and a ``threshold`` dim
        (for CSI and other categorical scores). A Dataset is read as one data
        variable per model (e.g. ``earthformer``, ``persistence``).
    dim : str
        The x-axis dim.
    hue : str, optional
        Dim giving one line (colour) per model; default ``"model"`` if present.
    threshold_dim : str
        Dim of thresholds; each threshold gets its own line. With both a model
        dim and thresholds, colour shows the threshold and line style the model.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new figure.
    title : str, optional
        Axes title; default the score's ``long_name`` or name.

    Returns
    -------
    fig : matplotlib.figure.Figure
    ax : matplotlib.axes.Axes

    Raises
    ------
    ExtraDimsError
        ``scores`` has dims other than ``dim``, ``hue`` and ``threshold_dim``
        (average them first, e.g. over ``init``).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> import matplotlib.pyplot as plt
    >>> import xearthformer.plot as xfp
    >>> lead = xr.DataArray(np.arange(1, 13), dims="lead", attrs={"units": "months"})
    >>> acc = xr.Dataset({"earthformer": 0.95 - 0.03 * lead,
    ...                   "persistence": 0.9 - 0.06 * lead}).assign_coords(lead=lead)
    >>> fig, ax = xfp.plot_skill(acc, title="Nino3.4 correlation")
    >>> [line.get_label() for line in ax.lines]
    ['earthformer', 'persistence']
    >>> plt.close(fig)
    """
    if isinstance(scores, xr.Dataset):
        names = list(scores.data_vars)
        scores = scores.to_dataarray("model") if hasattr(scores, "to_dataarray") \
            else scores.to_array("model")
        scores = scores.assign_coords(model=names)
        hue = hue or "model"
    if dim not in scores.dims:
        raise PlotInputError(f"scores have no {dim!r} dim to plot against; dims found: "
                             f"{tuple(scores.dims)}")
    if hue is None and "model" in scores.dims:
        hue = "model"
    allowed = tuple(d for d in (dim, hue, threshold_dim) if d is not None)
    try:
        check_no_extra_dims(scores, allowed, "plot_skill")
    except ExtraDimsError as err:
        raise ExtraDimsError(f"{err}; or average them, e.g. scores.mean('init')") from None

    fig, ax = _new_axes(ax, (6.5, 4.2))
    x = scores[dim].values
    models = list(scores[hue].values) if hue in scores.dims else [None]
    thresholds = list(scores[threshold_dim].values) if threshold_dim in scores.dims else [None]
    both = len(models) > 1 and thresholds != [None]
    if both:
        import matplotlib

        cmap = matplotlib.colormaps["viridis"]
    for i, model in enumerate(models):
        for j, thr in enumerate(thresholds):
            sel = {}
            if model is not None:
                sel[hue] = model
            if thr is not None:
                sel[threshold_dim] = thr
            y = scores.sel(sel).values if sel else scores.values
            parts = [str(model)] if model is not None else []
            if thr is not None:
                parts.append(f"{threshold_dim} {thr:g}" if isinstance(thr, (int, float, np.number))
                             else str(thr))
            label = ", ".join(parts) or (scores.name or "score")
            if both:
                colour = cmap(j / max(len(thresholds) - 1, 1) * 0.9)
                style = {"color": colour, "ls": _LINESTYLES[i % len(_LINESTYLES)]}
            else:
                k = i if len(models) > 1 else j
                style = {"color": f"C{k % 10}", "ls": "-"}
            ax.plot(x, y, marker=_MARKERS[(i if both else j) % len(_MARKERS)], ms=3.5, lw=1.5,
                    label=label, **style)
    units = str(scores[dim].attrs.get("units", "")) if dim in scores.coords else ""
    ax.set_xlabel(f"{dim} ({units})" if units else dim)
    ax.set_ylabel(field_label(scores) or "score")
    name = scores.attrs.get("long_name") or scores.name
    ax.set_title(title if title is not None else (str(name) if name else "skill"))
    ax.grid(True, lw=0.3, alpha=0.5)
    if len(ax.lines) > 1:
        ax.legend(fontsize=8, frameon=False, ncols=2 if len(ax.lines) > 6 else 1)
    return fig, ax
