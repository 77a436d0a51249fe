"""Maps of one field and of a forecast's leads."""

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
    check_leads,
    check_no_extra_dims,
    field_label,
    format_time,
    lead_label,
    reduce_member,
    select_init,
    spatial_dims,
    valid_time,
)
from .colormaps import choose_style

__all__ = ["plot_map", "plot_forecast"]


def plot_map(
    field: xr.DataArray,
    *,
    ax: Any = None,
    projection: Any = None,
    transform: Any = None,
    cmap: Any = None,
    norm: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    robust: bool = False,
    coastlines: bool = True,
    colorbar: bool = True,
    title: str | None = None,
    **kwargs: Any,
) -> Any:
    """Draw one 2-D field as a map.

    Parameters
    ----------
    field : xarray.DataArray
        2-D (after squeezing size-1 dims) with ``lat``/``lon`` dims, a ``y``/``x``
        grid with 2-D ``lat``/``lon`` coordinates, or a plain ``y``/``x`` grid
        (radar images, drawn on non-cartopy axes with equal aspect).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on. A cartopy GeoAxes gets the data with ``transform``; a
        plain axes gets lon/lat as x/y. Default: a new figure with ``projection``.
    projection : cartopy.crs.Projection, optional
        For a new axes; default ``PlateCarree`` centred on the data's longitudes.
    transform : cartopy.crs.CRS, optional
        CRS of the data's coordinates; default ``PlateCarree()`` (lat/lon degrees).
    cmap, norm, vmin, vmax, robust
        Colour scale. By default VIL data gets :func:`vil_cmap`, data of both
        signs a diverging map centred at 0, else ``viridis``.
    coastlines : bool
        Draw coastlines (offline, see :func:`add_coastlines`).
    colorbar : bool
        Add a colorbar labelled with ``long_name (units)``.
    title : str, optional
        Axes title.
    **kwargs
        Passed to :meth:`~matplotlib.axes.Axes.pcolormesh`.

    Returns
    -------
    matplotlib.collections.QuadMesh
        The mesh; its axes is ``mesh.axes``, its figure ``mesh.figure``.

    Raises
    ------
    MissingSpatialDimsError
        When the field has no lat/lon or y/x dims (the message names the dims found).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> import matplotlib.pyplot as plt
    >>> import xearthformer.plot as xfp
    >>> sst = xr.DataArray(
    ...     np.random.default_rng(0).normal(size=(9, 18)), dims=("lat", "lon"),
    ...     coords={"lat": np.linspace(-40, 40, 9), "lon": np.arange(100, 280, 10.0)},
    ...     name="sst_anomaly", attrs={"long_name": "SST anomaly", "units": "K"})
    >>> mesh = xfp.plot_map(sst, title="SST anomaly")
    >>> mesh.axes.get_title()
    'SST anomaly'
    >>> plt.close(mesh.figure)
    """
    sd = spatial_dims(field)
    field = field.squeeze(drop=False)
    check_no_extra_dims(field, (sd.y, sd.x), "plot_map")
    style = choose_style(field, cmap=cmap, norm=norm, vmin=vmin, vmax=vmax, robust=robust)
    if ax is None:
        import matplotlib.pyplot as plt

        projection = projection if projection is not None else default_projection(field, sd)
        aspect = panel_aspect(field, sd, projection)
        horizontal = aspect > 1.5
        width = 6.0 if horizontal else 4.5
        fig = plt.figure(figsize=(width + (0 if horizontal else 1.2),
                                  width / aspect + (1.4 if horizontal else 0.6)),
                         layout="constrained")
        ax = fig.add_subplot(1, 1, 1, **({"projection": projection} if projection else {}))
    mesh = draw_field(ax, field, sd, style, transform=transform, coastlines=coastlines, **kwargs)
    if title is not None:
        ax.set_title(title)
    if colorbar:
        orientation = "horizontal" if panel_aspect(field, sd) > 1.5 else "vertical"
        add_colorbar(ax.figure, mesh, [ax], field_label(field), style, orientation=orientation,
                     shrink=0.8)
    return mesh


def _lead_columns(leads: list[Any], ncols: int | None) -> tuple[int, int]:
    n = len(leads)
    ncols = ncols or (n if n <= 6 else 6)
    return -(-n // ncols), ncols


def plot_forecast(
    fc: xr.DataArray,
    leads: Sequence[Any] | None = None,
    *,
    init: Any = None,
    member: Any = None,
    fig: Any = None,
    projection: Any = None,
    transform: Any = None,
    cmap: Any = None,
    norm: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    robust: bool = False,
    coastlines: bool = True,
    ncols: int | None = None,
    **kwargs: Any,
) -> tuple[Any, np.ndarray]:
    """A row of maps of a forecast, one per lead, with a shared colour scale and colorbar.

    Parameters
    ----------
    fc : xarray.DataArray
        Forecast with dims ``(init, [member,] lead, lat, lon)`` (or ``y, x``)
        and the coordinate ``valid_time(init, lead)`` (computed from ``init``
        and ``lead`` when absent).
    leads : sequence, optional
        Leads to draw (values of ``fc.lead``); default all of them.
    init : optional
        The initialisation to draw (a label of ``fc.init``); default the first.
    member : optional
        An ensemble member to draw; default the ensemble mean when ``fc`` has a
        ``member`` dim.
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw in; default a new one sized for the panels.
    projection, transform, cmap, norm, vmin, vmax, robust, coastlines, **kwargs
        As in :func:`plot_map`; the colour scale covers all drawn leads.
    ncols : int, optional
        Panels per row (default: one row up to 6 leads).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : numpy.ndarray of Axes
        One per lead, in order.

    Raises
    ------
    LeadNotFoundError
        A lead not in the forecast (the message lists the available leads).
    MissingSpatialDimsError
        No lat/lon or y/x dims.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> import matplotlib.pyplot as plt
    >>> import xearthformer.plot as xfp
    >>> rng = np.random.default_rng(0)
    >>> init = pd.to_datetime(["2021-01-01"])
    >>> fc = xr.DataArray(
    ...     rng.normal(size=(1, 3, 9, 18)), dims=("init", "lead", "lat", "lon"),
    ...     coords={"init": init, "lead": ("lead", [1, 2, 3], {"units": "months"}),
    ...             "lat": np.linspace(-20, 20, 9), "lon": np.arange(120, 300, 10.0)},
    ...     name="sst_anomaly", attrs={"long_name": "SST anomaly", "units": "K"})
    >>> fc = fc.assign_coords(valid_time=(("init", "lead"), np.array(
    ...     [["2021-02-01", "2021-03-01", "2021-04-01"]], dtype="datetime64[ns]")))
    >>> fig, axes = xfp.plot_forecast(fc, leads=[1, 3])
    >>> len(axes), axes[1].get_title()
    (2, 'lead 3 months\\nvalid 2021-04')
    >>> plt.close(fig)
    """
    sd = spatial_dims(fc)
    leads = check_leads(fc, leads)
    one = select_init(fc, init)
    one, member_label = reduce_member(one, member)
    one = one.sel(lead=leads)
    check_no_extra_dims(one, ("lead", sd.y, sd.x), "plot_forecast")
    style = choose_style(one, cmap=cmap, norm=norm, vmin=vmin, vmax=vmax, robust=robust)

    projection = projection if projection is not None else default_projection(fc, sd)
    nrows, ncols = _lead_columns(leads, ncols)
    aspect = panel_aspect(fc, sd, projection)
    horizontal = aspect > 1.5
    fig = new_figure(fig, nrows, ncols, aspect, extra_h=1.0 if horizontal else 0.5,
                     extra_w=0.0 if horizontal else 1.0)
    grid = axes_grid(fig, nrows, ncols, projection)
    axes = grid.ravel()[: len(leads)]
    for ax in grid.ravel()[len(leads):]:
        fig.delaxes(ax)

    units = str(fc["lead"].attrs.get("units", ""))
    mesh = None
    for ax, lead in zip(axes, leads, strict=True):
        frame = one.sel(lead=lead)
        mesh = draw_field(ax, frame, sd, style, transform=transform, coastlines=coastlines,
                          **kwargs)
        vt = valid_time(one, lead)
        ax.set_title(f"{lead_label(lead, fc)}\nvalid {format_time(vt, units)}", fontsize=10)
    add_colorbar(fig, mesh, axes, field_label(fc), style,
                 orientation="horizontal" if horizontal else "vertical")
    init_value = one["init"].values if "init" in one.coords else None
    parts = [field_label(fc) or "forecast", f"init {format_time(init_value, units)}"]
    if member_label:
        parts.append(member_label)
    fig.suptitle(", ".join(parts))
    return fig, axes
