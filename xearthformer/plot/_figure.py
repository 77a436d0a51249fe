"""Figure plumbing shared by the map functions: projections, axes grids, one field on one axes.

Geographic fields (lat/lon) are drawn on cartopy GeoAxes with
``transform=PlateCarree()``; fields on a y/x grid without lat/lon (radar
images) on plain matplotlib axes with equal aspect.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ._coastlines import add_coastlines, is_geoaxes
from ._validate import SpatialDims
from .colormaps import Style

PANEL_WIDTH = 3.2  # inches per map panel
MISSING_GID = "xearthformer-missing"  # the mesh drawing missing values (e.g. land)
MAX_WIDTH = 13.0  # inches, widest figure made for many panels


def lon_centre(lon: Any) -> float:
    """Centre longitude of the data, in [-180, 180), for a map centred on it.

    The data's longitudes are read in whichever convention (-180..180 or
    0..360) makes their span smallest, so a Pacific box 120E-80W centres on
    160W (-160), not on 20E.
    """
    lon = np.asarray(lon, dtype=float)
    lon = lon[np.isfinite(lon)]
    if lon.size == 0:
        return 0.0
    spans = []
    for shifted in (((lon + 180.0) % 360.0) - 180.0, lon % 360.0):
        spans.append((shifted.max() - shifted.min(), shifted))
    span, best = min(spans, key=lambda s: s[0])
    if span > 300.0:  # global: keep the data's own centre
        centre = 180.0 if lon.max() > 180.0 else 0.0
    else:
        centre = 0.5 * (best.max() + best.min())
    return float(((centre + 180.0) % 360.0) - 180.0)


def default_projection(da: xr.DataArray, sd: SpatialDims) -> Any:
    """PlateCarree centred on the data's longitudes (None for non-geographic data)."""
    if not sd.geographic:
        return None
    import cartopy.crs as ccrs

    return ccrs.PlateCarree(central_longitude=lon_centre(da[sd.lon].values))


def panel_aspect(da: xr.DataArray, sd: SpatialDims, projection: Any = None) -> float:
    """Width / height of one map panel."""
    if not sd.geographic:
        ny, nx = da.sizes[sd.y], da.sizes[sd.x]
        if sd.x in da.coords and sd.y in da.coords and nx > 1 and ny > 1:
            return float(np.ptp(da[sd.x].values) / max(np.ptp(da[sd.y].values), 1e-9))
        return nx / ny
    lon = np.asarray(da[sd.lon].values, dtype=float)
    rel = ((lon - lon_centre(lon) + 180.0) % 360.0) - 180.0
    lon_span = max(float(np.ptp(rel)), 1.0)
    lat_span = max(float(np.ptp(np.asarray(da[sd.lat].values, dtype=float))), 1.0)
    aspect = lon_span / lat_span
    import cartopy.crs as ccrs

    if projection is not None and not isinstance(projection, ccrs.PlateCarree):
        aspect = 2.0 if lon_span > 300 else aspect  # global pseudo-cylindrical maps
    return float(np.clip(aspect, 0.5, 5.0))


def new_figure(fig: Any, nrows: int, ncols: int, aspect: float, extra_h: float = 0.9,
               extra_w: float = 0.0) -> Any:
    """The user's figure, or a new constrained-layout pyplot figure sized for the grid.

    Panels are :data:`PANEL_WIDTH` wide, narrower when many columns would make
    the figure wider than :data:`MAX_WIDTH`.
    """
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    panel = min(PANEL_WIDTH, (MAX_WIDTH - extra_w) / ncols)
    width = panel * ncols + extra_w
    height = nrows * (panel / aspect + 0.45) + extra_h
    return plt.figure(figsize=(width, height), layout="constrained")


def axes_grid(fig: Any, nrows: int, ncols: int, projection: Any) -> np.ndarray:
    """A ``(nrows, ncols)`` object array of axes (GeoAxes when ``projection`` is set)."""
    axes = np.empty((nrows, ncols), dtype=object)
    kw = {"projection": projection} if projection is not None else {}
    for i in range(nrows):
        for j in range(ncols):
            axes[i, j] = fig.add_subplot(nrows, ncols, i * ncols + j + 1, **kw)
    return axes


def _step(values: np.ndarray) -> float:
    """Median spacing of the distinct values (1 for a single value)."""
    distinct = np.unique(values[np.isfinite(values)])
    return float(np.median(np.diff(distinct))) if distinct.size > 1 else 1.0


def _set_extent(ax: Any, da: xr.DataArray, sd: SpatialDims) -> None:
    import cartopy.crs as ccrs

    lon = np.asarray(da[sd.lon].values, dtype=float)
    lat = np.asarray(da[sd.lat].values, dtype=float)
    centre = lon_centre(lon)
    rel = ((lon - centre + 180.0) % 360.0) - 180.0
    dx, dy = _step(rel), _step(lat)
    x0, x1 = float(np.nanmin(rel)) - dx / 2, float(np.nanmax(rel)) + dx / 2
    y0, y1 = max(float(np.nanmin(lat)) - dy / 2, -90.0), min(float(np.nanmax(lat)) + dy / 2, 90.0)
    if x1 - x0 >= 359.0 and y1 - y0 >= 170.0:
        ax.set_global()
        return
    x0, x1 = max(x0, -180.0), min(x1, 180.0)
    ax.set_extent([x0, x1, y0, y1], crs=ccrs.PlateCarree(central_longitude=centre))


def draw_field(
    ax: Any,
    da: xr.DataArray,
    sd: SpatialDims,
    style: Style,
    *,
    transform: Any = None,
    coastlines: bool = True,
    extent: bool = True,
    **kwargs: Any,
) -> Any:
    """Draw one 2-D field on ``ax`` with pcolormesh; return the QuadMesh."""
    kwargs.setdefault("shading", "auto")
    kwargs.setdefault("rasterized", True)
    values = np.ma.masked_invalid(da.transpose(sd.y, sd.x).values)
    if sd.geographic:
        lon, lat = da[sd.lon], da[sd.lat]
        if lon.ndim == 2:
            lon, lat = lon.transpose(sd.y, sd.x), lat.transpose(sd.y, sd.x)
        if is_geoaxes(ax):
            import cartopy.crs as ccrs

            transform = ccrs.PlateCarree() if transform is None else transform
            # cartopy can only wrap a mesh across the map edge when its 'bad' colour is
            # transparent, so missing values (land in SST) get a mesh of their own
            cmap = style.cmap.with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
            bad = style.cmap.get_bad()
            if bad[3] > 0 and np.ma.count_masked(values):
                from matplotlib.colors import ListedColormap

                missing = np.ma.masked_array(np.ones(values.shape), mask=~values.mask)
                ax.pcolormesh(lon.values, lat.values, missing, transform=transform,
                              cmap=ListedColormap([bad]).with_extremes(bad=(0, 0, 0, 0)),
                              gid=MISSING_GID, **kwargs)
            mesh = ax.pcolormesh(lon.values, lat.values, values, cmap=cmap,
                                 norm=style.norm, transform=transform, **kwargs)
            if extent:
                _set_extent(ax, da, sd)
        else:
            mesh = ax.pcolormesh(lon.values, lat.values, values, cmap=style.cmap,
                                 norm=style.norm, **kwargs)
            ax.set_xlabel("longitude")
            ax.set_ylabel("latitude")
        if coastlines:
            lon_min = 0.0 if np.nanmax(np.asarray(lon.values, dtype=float)) > 180.0 else -180.0
            add_coastlines(ax, lon_min=lon_min)
        return mesh
    # y/x grid without lat/lon (radar): plain axes, image orientation when no coordinate values
    has_coords = sd.x in da.coords and sd.y in da.coords
    if has_coords:
        mesh = ax.pcolormesh(da[sd.x].values, da[sd.y].values, values, cmap=style.cmap,
                             norm=style.norm, **kwargs)
    else:
        mesh = ax.pcolormesh(values, cmap=style.cmap, norm=style.norm, **kwargs)
        ax.invert_yaxis()  # row 0 at the top, as the image is stored
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return mesh


def add_colorbar(fig: Any, mesh: Any, axes: Any, label: str, style: Style,
                 orientation: str = "vertical", **kwargs: Any) -> Any:
    """One colorbar for ``axes`` (a list or array of axes) with the field's label."""
    axes_list = [a for a in np.ravel(np.asarray(axes, dtype=object)) if a is not None]
    kw: dict[str, Any] = {"orientation": orientation, "label": label}
    if orientation == "horizontal":
        kw.update(shrink=0.6, aspect=40, pad=0.02)
    else:
        kw.update(shrink=0.9, aspect=25, pad=0.02)
    kw.update(kwargs)
    if style.kind == "vil":
        kw.setdefault("extend", "max")
        kw.setdefault("ticks", style.norm.boundaries)
    return fig.colorbar(mesh, ax=axes_list, **kw)
