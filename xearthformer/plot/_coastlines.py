"""Coastlines that never touch the network.

cartopy's ``ax.coastlines()`` downloads Natural Earth the first time it draws,
and ``savefig`` fails (or hangs) offline. :func:`add_coastlines` instead uses

1. cartopy's Natural Earth 110m coastline shapefile, when it is already on disk
   (cartopy's ``pre_existing_data_dir`` or ``data_dir``; looked up without any
   download), else
2. the 1:110m outline shipped in ``xearthformer/plot/data/coastline_110m.npz``
   (Natural Earth v4.1.0, public domain, via the npm package world-atlas@2.0.2;
   built by ``scripts/make_coastlines.py``), drawn as one line collection with
   ``transform=PlateCarree()``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

COASTLINE_GID = "xearthformer-coastline"
_DATA_FILE = "coastline_110m.npz"


def natural_earth_coastline_path(resolution: str = "110m") -> Path | None:
    """Path of cartopy's Natural Earth coastline shapefile if already on disk, else None.

    Never downloads: only the paths where cartopy would look before
    downloading are checked.

    Examples
    --------
    >>> from xearthformer.plot import natural_earth_coastline_path
    >>> path = natural_earth_coastline_path()
    >>> path is None or path.suffix == ".shp"
    True
    """
    try:
        import cartopy
        from cartopy.io import Downloader

        downloader = Downloader.from_config(
            ("shapefiles", "natural_earth", "physical", "coastline")
        )
        fmt = {
            "config": cartopy.config,
            "category": "physical",
            "name": "coastline",
            "resolution": resolution,
        }
        candidates = [downloader.pre_downloaded_path(fmt), downloader.target_path(fmt)]
    except Exception:  # no cartopy, or a config without a Natural Earth downloader
        return None
    for path in candidates:
        if path is not None and Path(path).is_file():
            return Path(path)
    return None


@lru_cache(maxsize=1)
def shipped_coastline() -> tuple[tuple[np.ndarray, ...], dict[str, str]]:
    """The shipped 110m coastline: line coordinates ``(n, 2)`` (lon, lat) and metadata.

    Longitudes are in -180..180; no line crosses the antimeridian.

    Examples
    --------
    >>> from xearthformer.plot import shipped_coastline
    >>> lines, meta = shipped_coastline()
    >>> len(lines) > 100, lines[0].shape[1]
    (True, 2)
    >>> "Natural Earth" in meta["source"]
    True
    """
    ref = resources.files("xearthformer.plot").joinpath("data", _DATA_FILE)
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as data:
        lon = data["lon"].astype(float) / 100.0
        lat = data["lat"].astype(float) / 100.0
        start = data["start"]
        meta = {k: str(data[k]) for k in ("source", "version", "licence")}
    lines = tuple(
        np.column_stack([a, b])
        for a, b in zip(np.split(lon, start[1:]), np.split(lat, start[1:]), strict=True)
    )
    return lines, meta


def _wrap_lines(lines: tuple[np.ndarray, ...], lon_min: float) -> list[np.ndarray]:
    """Lines with longitudes in ``[lon_min, lon_min + 360)``, split where they wrap."""
    out = []
    for line in lines:
        lon = (line[:, 0] - lon_min) % 360.0 + lon_min
        moved = np.column_stack([lon, line[:, 1]])
        cuts = np.nonzero(np.abs(np.diff(lon)) > 180.0)[0] + 1
        out.extend(piece for piece in np.split(moved, cuts) if len(piece) > 1)
    return out


def is_geoaxes(ax: Any) -> bool:
    """True for a cartopy ``GeoAxes``."""
    return hasattr(ax, "projection") and hasattr(ax, "set_extent")


def add_coastlines(
    ax: Any,
    *,
    source: Literal["auto", "natural_earth", "shipped"] = "auto",
    lon_min: float = -180.0,
    color: Any = "0.15",
    linewidth: float = 0.6,
    **kwargs: Any,
) -> Any:
    """Draw coastlines on ``ax`` without ever making a network call.

    Parameters
    ----------
    ax : matplotlib.axes.Axes or cartopy.mpl.geoaxes.GeoAxes
        On a GeoAxes the lines are given ``transform=PlateCarree()``; on a
        plain axes they are drawn in longitude/latitude data coordinates.
    source : {"auto", "natural_earth", "shipped"}
        ``"auto"`` uses cartopy's Natural Earth shapefile when it is already
        on disk (GeoAxes only), else the outline shipped with xearthformer.
        ``"natural_earth"`` raises :class:`FileNotFoundError` when it is absent.
    lon_min : float
        Plain axes only: longitudes are wrapped into ``[lon_min, lon_min + 360)``
        to match the data (``0`` for 0..360 grids).
    color, linewidth, **kwargs
        Passed to the line artist.

    Returns
    -------
    matplotlib.artist.Artist
        A ``LineCollection`` (shipped outline) or cartopy ``FeatureArtist``,
        with gid ``"xearthformer-coastline"``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import cartopy.crs as ccrs
    >>> from xearthformer.plot import add_coastlines
    >>> fig, ax = plt.subplots(subplot_kw={"projection": ccrs.Robinson()})
    >>> artist = add_coastlines(ax)
    >>> artist.get_gid()
    'xearthformer-coastline'
    >>> plt.close(fig)
    """
    geo = is_geoaxes(ax)
    path = natural_earth_coastline_path() if (geo and source != "shipped") else None
    if source == "natural_earth" and path is None:
        raise FileNotFoundError(
            "cartopy's Natural Earth 110m coastline shapefile is not on disk (looked in "
            "cartopy.config['pre_existing_data_dir'] and ['data_dir']); use source='auto' "
            "for the outline shipped with xearthformer"
        )
    style = {"linewidth": linewidth, "zorder": 3, **kwargs}
    if path is not None:
        import cartopy.crs as ccrs
        from cartopy.feature import ShapelyFeature
        from cartopy.io.shapereader import Reader

        feature = ShapelyFeature(
            list(Reader(str(path)).geometries()), ccrs.PlateCarree(), facecolor="none",
            edgecolor=color,
        )
        artist = ax.add_feature(feature, **style)
    else:
        from matplotlib.collections import LineCollection

        lines, _ = shipped_coastline()
        if geo:
            import cartopy.crs as ccrs

            artist = LineCollection(list(lines), colors=color, transform=ccrs.PlateCarree(),
                                    **style)
        else:
            artist = LineCollection(_wrap_lines(lines, lon_min), colors=color, **style)
        ax.add_collection(artist, autolim=False)
    artist.set_gid(COASTLINE_GID)
    return artist
