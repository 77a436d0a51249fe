"""Colour maps: the SEVIR VIL radar map and diverging maps centred at zero for anomalies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

#: SEVIR VIL colour levels on the 0-255 digital scale (bin edges). Source: the
#: SEVIR ``vil`` colormap (MIT-AI-Accelerator/neurips-2020-sevir ``display.py``,
#: as reused by Earthformer's ``visualization/sevir/sevir_cmap.py``).
VIL_LEVELS: tuple[float, ...] = (
    0.0, 16.0, 31.0, 59.0, 74.0, 100.0, 133.0, 160.0, 181.0, 219.0, 255.0
)

#: SEVIR VIL colours as 0-255 RGB: the first is for missing values, the other
#: ten fill the ten bins between consecutive :data:`VIL_LEVELS`.
VIL_COLORS_RGB255: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # missing (NaN)
    (77, 77, 77),  # 0-16
    (40, 190, 40),  # 16-31
    (25, 150, 25),  # 31-59
    (10, 105, 10),  # 59-74
    (10, 75, 10),  # 74-100
    (245, 245, 0),  # 100-133
    (237, 172, 0),  # 133-160
    (240, 110, 0),  # 160-181
    (160, 0, 0),  # 181-219
    (231, 0, 255),  # 219-255
)


def vil_cmap(scale: float = 255.0) -> tuple[Any, Any]:
    """The SEVIR VIL radar colour map and its level norm.

    Parameters
    ----------
    scale : float
        The value of VIL digital level 255 in your data: ``255`` for the raw
        0-255 scale (default), ``1`` for data scaled by ``/255`` as the models use.

    Returns
    -------
    cmap : matplotlib.colors.ListedColormap
        Ten colours, one per VIL bin; NaN is drawn black, values below 0 in the
        first bin's grey, values above the top level in the last colour.
    norm : matplotlib.colors.BoundaryNorm
        Bin edges :data:`VIL_LEVELS` times ``scale / 255``.

    Examples
    --------
    >>> from xearthformer.plot import vil_cmap
    >>> cmap, norm = vil_cmap()
    >>> cmap.N, norm.boundaries[:3].tolist()
    (10, [0.0, 16.0, 31.0])
    >>> cmap, norm = vil_cmap(scale=1.0)
    >>> round(float(norm.boundaries[1]), 4)
    0.0627
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    colors = [tuple(c / 255.0 for c in rgb) for rgb in VIL_COLORS_RGB255]
    missing, bins = colors[0], colors[1:]
    cmap = ListedColormap(bins, name="sevir_vil").with_extremes(
        bad=missing, under=bins[0], over=bins[-1]
    )
    levels = np.asarray(VIL_LEVELS) * (float(scale) / 255.0)
    return cmap, BoundaryNorm(levels, cmap.N)


def anomaly_cmap(name: str = "RdBu_r") -> Any:
    """A diverging colour map for anomalies (blue negative, red positive by default).

    NaN (e.g. land in an SST field) is drawn light grey.

    Examples
    --------
    >>> from xearthformer.plot import anomaly_cmap
    >>> anomaly_cmap().name
    'RdBu_r'
    """
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="0.85")


def centred_norm(data: Any = None, *, vmax: float | None = None, robust: bool = False) -> Any:
    """A :class:`~matplotlib.colors.Normalize` symmetric about zero.

    Parameters
    ----------
    data : array-like, optional
        Values from which ``vmax = max |data|`` (or its 98th percentile with
        ``robust=True``) is taken when ``vmax`` is not given.
    vmax : float, optional
        Half-width of the colour range: the norm maps ``[-vmax, vmax]``.

    Examples
    --------
    >>> import numpy as np
    >>> from xearthformer.plot import centred_norm
    >>> norm = centred_norm(np.array([-0.5, 2.0]))
    >>> norm.vmin, norm.vmax
    (-2.0, 2.0)
    """
    from matplotlib.colors import Normalize

    if vmax is None:
        values = np.abs(np.asarray(data, dtype=float))
        values = values[np.isfinite(values)]
        if values.size == 0:
            vmax = 1.0
        else:
            vmax = float(np.percentile(values, 98) if robust else values.max())
        vmax = vmax or 1.0
    return Normalize(vmin=-float(vmax), vmax=float(vmax))


def is_vil(da: xr.DataArray) -> bool:
    """True when ``da`` looks like SEVIR VIL (by name, long name or standard name)."""
    text = " ".join(
        str(s).lower()
        for s in (da.name, da.attrs.get("long_name"), da.attrs.get("standard_name"))
        if s is not None
    )
    return "vil" in text.split() or text.startswith("vil") or "vertically integrated liquid" in text


@dataclass
class Style:
    """Colour map, norm and whether the map is diverging, chosen for some data."""

    cmap: Any
    norm: Any
    kind: str  # "vil", "diverging" or "sequential"


def choose_style(
    da: xr.DataArray,
    values: Any = None,
    *,
    cmap: Any = None,
    norm: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    robust: bool = False,
    centre: bool | None = None,
) -> Style:
    """Pick a colour map and norm for ``da`` (``values``: all data the scale must cover).

    VIL data (see :func:`is_vil`) gets :func:`vil_cmap` (scale 1 when the data
    max is at most 1, else 255); data with both signs, or ``centre=True``, gets
    :func:`anomaly_cmap` with :func:`centred_norm`; else ``viridis`` from the
    data's min to max. Explicit ``cmap``/``norm``/``vmin``/``vmax`` win.
    """
    import matplotlib
    from matplotlib.colors import Normalize

    values = np.asarray(da.values if values is None else values, dtype=float)
    finite = values[np.isfinite(values)]
    if norm is None and vmin is None and vmax is None and cmap is None and is_vil(da):
        scale = 1.0 if finite.size and finite.max() <= 1.0 else 255.0
        vcmap, vnorm = vil_cmap(scale)
        return Style(vcmap, vnorm, "vil")
    if getattr(cmap, "name", None) == "sevir_vil" and norm is not None:
        return Style(cmap, norm, "vil")
    if centre is None:
        centre = bool(finite.size and finite.min() < 0 < finite.max())
    if isinstance(cmap, str):
        cmap = matplotlib.colormaps[cmap]
    if norm is None:
        if centre and vmin is None:
            norm = centred_norm(finite, vmax=vmax, robust=robust)
        else:
            lo, hi = (np.percentile(finite, [2, 98]) if robust else (finite.min(), finite.max())) \
                if finite.size else (0.0, 1.0)
            norm = Normalize(vmin=float(lo) if vmin is None else vmin,
                             vmax=float(hi) if vmax is None else vmax)
    if cmap is None:
        cmap = anomaly_cmap() if centre else matplotlib.colormaps["viridis"]
    return Style(cmap, norm, "diverging" if centre else "sequential")
