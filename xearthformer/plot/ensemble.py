"""Ensemble maps: members, mean, spread and probability of exceeding a threshold."""

from __future__ import annotations

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
    MissingMemberError,
    check_leads,
    check_no_extra_dims,
    field_label,
    format_time,
    lead_label,
    select_init,
    spatial_dims,
    valid_time,
)
from .colormaps import Style, choose_style, is_vil

__all__ = ["plot_ensemble"]


def _default_threshold(frame: xr.DataArray) -> float:
    values = np.asarray(frame.values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0
    if is_vil(frame):  # SEVIR's 74 (of 255) threshold, on the data's scale
        return 74.0 if values.max() > 1.0 else 74.0 / 255.0
    q = float(np.percentile(values, 75))
    return float(f"{q:.2g}")


def plot_ensemble(
    ens: xr.DataArray,
    lead: Any = None,
    *,
    init: Any = None,
    n_members: int = 4,
    threshold: float | None = None,
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
) -> tuple[Any, dict[str, Any]]:
    """Maps of an ensemble forecast at one lead: members, mean, spread, exceedance probability.

    The first rows show the first ``n_members`` members; the last row the
    ensemble mean (same colour scale as the members), the spread (standard
    deviation over ``member``) and the fraction of members above ``threshold``.

    Parameters
    ----------
    ens : xarray.DataArray
        Ensemble forecast with dims ``(init, member, lead, lat, lon)`` (or ``y, x``).
    lead : optional
        The lead to draw (a value of ``ens.lead``); default the first.
    init : optional
        The initialisation to draw; default the first.
    n_members : int
        How many member maps to draw (the first ones).
    threshold : float, optional
        Exceedance threshold in the data's units. Default: 74 (of 255) for
        SEVIR VIL, else the 75th percentile of all members' values at that
        lead, rounded to 2 significant digits (shown in the panel title).
    fig, projection, transform, cmap, norm, vmin, vmax, robust, coastlines, **kwargs
        As in :func:`plot_forecast`.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : dict
        ``"members"`` (list of Axes), ``"mean"``, ``"spread"``, ``"probability"``.

    Raises
    ------
    MissingMemberError
        ``ens`` has no ``member`` dim.
    LeadNotFoundError
        ``lead`` is not in the forecast (the message lists the available leads).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> import matplotlib.pyplot as plt
    >>> import xearthformer.plot as xfp
    >>> rng = np.random.default_rng(0)
    >>> ens = xr.DataArray(
    ...     rng.normal(size=(1, 5, 2, 9, 18)), dims=("init", "member", "lead", "lat", "lon"),
    ...     coords={"init": pd.to_datetime(["2021-01-01"]), "member": np.arange(5),
    ...             "lead": ("lead", [1, 2], {"units": "months"}),
    ...             "lat": np.linspace(-20, 20, 9), "lon": np.arange(120, 300, 10.0)},
    ...     name="sst_anomaly", attrs={"units": "K"})
    >>> fig, axes = xfp.plot_ensemble(ens, lead=2, n_members=3, threshold=0.5)
    >>> len(axes["members"]), axes["probability"].get_title()
    (3, 'P(sst_anomaly > 0.5 K)')
    >>> plt.close(fig)
    """
    sd = spatial_dims(ens)
    if "member" not in ens.dims:
        raise MissingMemberError(
            f"plot_ensemble needs a 'member' dimension; dims found: {tuple(ens.dims)}. "
            "Use plot_forecast for a deterministic forecast, or xearthformer's ensemble() "
            "to make members"
        )
    leads = check_leads(ens, None if lead is None else [lead])
    lead = leads[0]
    one = select_init(ens, init).sel(lead=lead)
    check_no_extra_dims(one, ("member", sd.y, sd.x), "plot_ensemble")
    one = one.transpose("member", sd.y, sd.x)

    members = one.isel(member=slice(0, max(int(n_members), 0)))
    mean = one.mean("member", keep_attrs=True)
    spread = one.std("member", keep_attrs=True)
    if threshold is None:
        threshold = _default_threshold(one)
    valid = one.notnull().any("member")
    probability = (one > threshold).mean("member").where(valid)

    style = choose_style(one, np.concatenate([members.values.ravel(), mean.values.ravel()]),
                         cmap=cmap, norm=norm, vmin=vmin, vmax=vmax, robust=robust)
    from matplotlib.colors import Normalize

    spread_max = float(np.nanmax(spread.values)) if np.isfinite(spread.values).any() else 1.0
    spread_style = Style(_cmap("Purples"), Normalize(0.0, spread_max or 1.0), "sequential")
    prob_style = Style(_cmap("YlOrRd"), Normalize(0.0, 1.0), "sequential")

    k = members.sizes["member"]
    ncols = max(3, min(k, 4))
    nrows = -(-k // ncols) + 1
    projection = projection if projection is not None else default_projection(ens, sd)
    aspect = panel_aspect(ens, sd, projection)
    horizontal = aspect > 1.5
    fig = new_figure(fig, nrows, ncols, aspect, extra_h=1.0 if horizontal else 0.5,
                     extra_w=0.0 if horizontal else 2.0)
    grid = axes_grid(fig, nrows, ncols, projection)
    member_axes = list(grid[:-1].ravel()[:k])
    for ax in list(grid[:-1].ravel()[k:]) + list(grid[-1, 3:]):
        fig.delaxes(ax)
    ax_mean, ax_spread, ax_prob = grid[-1, :3]

    draw = {"transform": transform, "coastlines": coastlines, **kwargs}
    mesh = None
    for ax, m in zip(member_axes, members["member"].values, strict=True):
        mesh = draw_field(ax, members.sel(member=m), sd, style, **draw)
        ax.set_title(f"member {m}", fontsize=10)
    mesh = draw_field(ax_mean, mean, sd, style, **draw)
    ax_mean.set_title(f"ensemble mean ({one.sizes['member']} members)", fontsize=10)
    spread_mesh = draw_field(ax_spread, spread, sd, spread_style, **draw)
    ax_spread.set_title("spread (std over members)", fontsize=10)
    prob_mesh = draw_field(ax_prob, probability, sd, prob_style, **draw)
    units = ens.attrs.get("units")
    name = ens.attrs.get("long_name") or ens.name or "value"
    ax_prob.set_title(f"P({name} > {threshold:g}{' ' + units if units else ''})", fontsize=10)

    # each summary panel gets its colorbar under it (wide maps) or beside it (square maps),
    # so the bottom row stays aligned; the mean's colorbar is also the members' scale
    small = {"orientation": "horizontal" if horizontal else "vertical", "shrink": 0.8,
             "aspect": 20}
    add_colorbar(fig, mesh, [ax_mean], field_label(ens) + " (members, mean)", style, **small)
    add_colorbar(fig, spread_mesh, [ax_spread], f"std{' (' + units + ')' if units else ''}",
                 spread_style, **small)
    add_colorbar(fig, prob_mesh, [ax_prob], "probability", prob_style, **small)

    lead_units = str(ens["lead"].attrs.get("units", ""))
    init_value = one["init"].values if "init" in one.coords else None
    fig.suptitle(
        f"{field_label(ens) or 'ensemble'}, init {format_time(init_value, lead_units)}, "
        f"{lead_label(lead, ens)} (valid {format_time(valid_time(one, lead), lead_units)})"
    )
    return fig, {"members": member_axes, "mean": ax_mean, "spread": ax_spread,
                 "probability": ax_prob}


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="0.85")
