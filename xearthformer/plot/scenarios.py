"""The PreDiff figure: context, truth and one row per knowledge-control scenario."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ._figure import (
    add_colorbar,
    axes_grid,
    default_projection,
    draw_field,
    new_figure,
    panel_aspect,
)
from ._validate import (
    PlotInputError,
    check_leads,
    check_no_extra_dims,
    field_label,
    format_time,
    lead_label,
    select_init,
    spatial_dims,
    valid_time,
)
from .colormaps import choose_style

__all__ = ["plot_scenarios", "kc_label"]

MAX_COLUMNS = 8


def kc_label(k: float) -> str:
    r"""Row label of a knowledge-control scenario: ``mu + k sigma`` in mathtext.

    Examples
    --------
    >>> from xearthformer.plot import kc_label
    >>> kc_label(2), kc_label(0), kc_label(-1.5)
    ('$\\mu + 2\\sigma$', '$\\mu$', '$\\mu - 1.5\\sigma$')
    """
    k = float(k)
    if k == 0:
        return r"$\mu$"
    return rf"$\mu {'+' if k > 0 else '-'} {abs(k):g}\sigma$"


def _row_label(ax: Any, text: str) -> None:
    ax.text(-0.06, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center",
            fontsize=11, gid="xearthformer-row-label")


def _truth_frames(
    truth: xr.DataArray, sc: xr.DataArray, init: Any, leads: list[Any]
) -> xr.DataArray:
    """Truth at the forecast's valid times, with a ``lead`` dim."""
    if "lead" in truth.dims:
        truth = select_init(truth, init if "init" in truth.dims else None)
        return truth.sel(lead=leads)
    if "time" not in truth.dims:
        raise PlotInputError(
            f"truth needs a 'time' dim (observations) or a 'lead' dim (forecast layout); "
            f"dims found: {tuple(truth.dims)}"
        )
    times = [valid_time(sc, lead) for lead in leads]
    missing = [format_time(t) for t in times if t is None or t not in truth["time"].values]
    if missing:
        raise PlotInputError(
            f"truth has no data at valid times {missing}; its times run from "
            f"{format_time(truth['time'].values[0])} to {format_time(truth['time'].values[-1])}"
        )
    out = truth.sel(time=times)
    return out.rename(time="lead").assign_coords(lead=leads)


def _context_frames(context: xr.DataArray, init_value: Any, n: int) -> xr.DataArray:
    if "time" not in context.dims:
        raise PlotInputError(
            f"context needs a 'time' dim; dims found: {tuple(context.dims)}"
        )
    if init_value is not None and context["time"].dtype == np.asarray(init_value).dtype:
        context = context.sel(time=context["time"] <= init_value)
    if context.sizes["time"] == 0:
        raise PlotInputError(f"context has no times at or before init {format_time(init_value)}")
    return context.isel(time=slice(-n, None))


def plot_scenarios(
    sc: xr.DataArray,
    *,
    context: xr.DataArray | None = None,
    truth: xr.DataArray | None = None,
    init: Any = None,
    leads: Sequence[Any] | None = None,
    member: Any = None,
    n_context: int | None = None,
    fig: Any = None,
    projection: Any = None,
    transform: Any = None,
    cmap: Any = None,
    norm: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    robust: bool = False,
    coastlines: bool = True,
    **kwargs: Any,
) -> tuple[Any, np.ndarray]:
    r"""The PreDiff figure: rows context / truth / one per ``kc_sigma`` scenario, columns time.

    Parameters
    ----------
    sc : xarray.DataArray
        Forecast with dims ``(init, [member,] [kc_sigma,] lead, lat, lon)`` (or
        ``y, x``); each ``kc_sigma`` value is a row labelled ``mu + k sigma``.
    context : xarray.DataArray, optional
        Observations with a ``time`` dim; the last ``n_context`` frames at or
        before ``init`` are drawn in the first row.
    truth : xarray.DataArray, optional
        Observations with a ``time`` dim (taken at the forecast's valid times)
        or in forecast layout with a ``lead`` dim; drawn as the second row.
    init : optional
        The initialisation to draw; default the first.
    leads : sequence, optional
        Leads (columns); default all, or 8 evenly spaced when there are more.
    member : optional
        Member label to draw when ``sc`` has a ``member`` dim; default the first
        (one sample, as in the PreDiff paper, not the blurred mean).
    n_context : int, optional
        Context frames to show; default as many as there are lead columns.
    fig, projection, transform, cmap, norm, vmin, vmax, robust, coastlines, **kwargs
        As in :func:`plot_forecast`; one colour scale covers every panel.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : numpy.ndarray
        ``(rows, columns)`` object array of Axes, ``None`` where a row has
        fewer frames than columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> import matplotlib.pyplot as plt
    >>> import xearthformer.plot as xfp
    >>> rng = np.random.default_rng(0)
    >>> t0 = np.datetime64("2019-07-01T12:00", "ns")
    >>> sc = xr.DataArray(
    ...     rng.uniform(0, 255, size=(1, 3, 2, 16, 16)),
    ...     dims=("init", "kc_sigma", "lead", "y", "x"),
    ...     coords={"init": [t0], "kc_sigma": [-1.0, 0.0, 1.0],
    ...             "lead": ("lead", [10, 20], {"units": "minutes"})},
    ...     name="vil", attrs={"long_name": "VIL", "units": "1"})
    >>> fig, axes = xfp.plot_scenarios(sc)
    >>> axes.shape
    (3, 2)
    >>> [t.get_text() for t in axes[2, 0].texts]
    ['$\\mu + 1\\sigma$']
    >>> plt.close(fig)
    """
    sd = spatial_dims(sc)
    all_leads = check_leads(sc, leads)
    if leads is None and len(all_leads) > MAX_COLUMNS:
        pick = np.unique(np.linspace(0, len(all_leads) - 1, MAX_COLUMNS).round().astype(int))
        all_leads = [all_leads[i] for i in pick]
    leads = all_leads
    one = select_init(sc, init)
    member_note = ""
    if "member" in one.dims:
        one = one.isel(member=0) if member is None else one.sel(member=member)
        member_note = f"member {one['member'].values.item()}"
    one = one.sel(lead=leads)
    allowed = ("kc_sigma", "lead", sd.y, sd.x)
    check_no_extra_dims(one, allowed, "plot_scenarios")
    init_value = one["init"].values if "init" in one.coords else None
    units = str(sc["lead"].attrs.get("units", ""))

    rows: list[tuple[str, xr.DataArray, str]] = []  # (label, frames with a frame dim, kind)
    if context is not None:
        ctx = _context_frames(context, init_value, n_context or len(leads))
        check_no_extra_dims(ctx, ("time", sd.y, sd.x), "plot_scenarios (context)")
        rows.append(("context", ctx.rename(time="frame"), "context"))
    if truth is not None:
        tr = _truth_frames(truth, one, init, leads)
        check_no_extra_dims(tr, ("lead", sd.y, sd.x), "plot_scenarios (truth)")
        rows.append(("truth", tr.rename(lead="frame"), "lead"))
    if "kc_sigma" in one.dims:
        for k in one["kc_sigma"].values:
            rows.append((kc_label(k), one.sel(kc_sigma=k).rename(lead="frame"), "lead"))
    else:
        rows.append(("forecast", one.rename(lead="frame"), "lead"))

    values = np.concatenate([np.asarray(r[1].values, dtype=float).ravel() for r in rows])
    style = choose_style(sc, values, cmap=cmap, norm=norm, vmin=vmin, vmax=vmax, robust=robust)
    ncols = max(r[1].sizes["frame"] for r in rows)
    nrows = len(rows)
    projection = projection if projection is not None else default_projection(sc, sd)
    aspect = panel_aspect(sc, sd, projection)
    horizontal = aspect > 1.5
    fig = new_figure(fig, nrows, ncols, aspect, extra_h=1.2 if horizontal else 0.6,
                     extra_w=0.4 if horizontal else 1.4)
    grid = axes_grid(fig, nrows, ncols, projection)

    first_lead_row = next(i for i, r in enumerate(rows) if r[2] == "lead")
    mesh = None
    for i, (label, frames, kind) in enumerate(rows):
        n = frames.sizes["frame"]
        for j in range(ncols):
            ax = grid[i, j]
            if j >= n:
                fig.delaxes(ax)
                grid[i, j] = None
                continue
            mesh = draw_field(ax, frames.isel(frame=j), sd, style, transform=transform,
                              coastlines=coastlines, **kwargs)
            if kind == "context":
                ax.set_title(format_time(frames["frame"].values[j], units), fontsize=9)
            elif i == first_lead_row:
                lead = leads[j]
                vt = format_time(valid_time(one, lead), units)
                ax.set_title(f"{lead_label(lead, sc)}\n{vt}", fontsize=9)
        _row_label(grid[i, 0], label)

    add_colorbar(fig, mesh, [a for a in grid.ravel() if a is not None], field_label(sc), style,
                 orientation="horizontal" if horizontal else "vertical")
    parts = [field_label(sc) or "forecast", f"init {format_time(init_value, units)}"]
    if member_note:
        parts.append(member_note)
    fig.suptitle(", ".join(parts))
    return fig, grid
