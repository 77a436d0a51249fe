"""Input checks and selections shared by the plotting functions (xarray only, no matplotlib).

Every error raised here subclasses :class:`PlotInputError`, itself a
:class:`ValueError`, and says what was found, what was expected and what to do.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from .. import _reader as reader

LAT_NAMES = reader.LAT_NAMES
LON_NAMES = reader.LON_NAMES
Y_NAMES = reader.Y_NAMES
X_NAMES = reader.X_NAMES


class PlotInputError(ValueError):
    """Base class of the errors raised by :mod:`xearthformer.plot` for bad input."""


class MissingSpatialDimsError(PlotInputError):
    """The field has no latitude/longitude (or y/x) dimensions to draw a map of."""


class MissingMemberError(PlotInputError):
    """An ensemble plot was asked of a forecast without a ``member`` dimension."""


class LeadNotFoundError(PlotInputError):
    """A requested lead is not in the forecast."""


class InitNotFoundError(PlotInputError):
    """A requested initialisation is not in the forecast."""


class ExtraDimsError(PlotInputError):
    """Dimensions are left over that the plot cannot show; select them first."""


@dataclass(frozen=True)
class SpatialDims:
    """Names of the two spatial dims of a field, and how to draw it.

    ``geographic`` is True when longitude/latitude values are known (1-D dims
    ``lat``/``lon``, or 2-D ``lat``/``lon`` coordinates on a ``y``/``x`` grid),
    so the field is drawn on a cartopy map; otherwise a plain axes is used.
    """

    y: Hashable
    x: Hashable
    geographic: bool
    lat: Hashable | None = None
    lon: Hashable | None = None


def _find(names: tuple[str, ...], candidates: list[Hashable]) -> Hashable | None:
    lowered = {str(c).lower(): c for c in candidates}
    for name in names:
        if name in lowered:
            return lowered[name]
    return None


def spatial_dims(da: xr.DataArray) -> SpatialDims:
    """Find the spatial dims of ``da``: lat/lon, else y/x, as the package's one reader
    (:mod:`xearthformer._reader`) finds them (CF attributes, then names in any case).

    Raises
    ------
    MissingSpatialDimsError
        Naming the dims found, when neither lat/lon nor y/x dims exist.
    """
    lat, lon = reader.find_lat(da), reader.find_lon(da)
    if lat is not None and lon is not None:
        return SpatialDims(y=lat, x=lon, geographic=True, lat=lat, lon=lon)
    y, x = reader.find_y(da), reader.find_x(da)
    if y is not None and x is not None:
        coords = list(da.coords)
        lat2, lon2 = _find(LAT_NAMES, coords), _find(LON_NAMES, coords)
        if (
            lat2 is not None
            and lon2 is not None
            and set(da[lat2].dims) == {y, x}
            and set(da[lon2].dims) == {y, x}
        ):
            return SpatialDims(y=y, x=x, geographic=True, lat=lat2, lon=lon2)
        return SpatialDims(y=y, x=x, geographic=False)
    raise MissingSpatialDimsError(
        f"cannot draw a map of {da.name or 'this array'!r}: no latitude/longitude dims found. "
        f"Dims found: {tuple(da.dims)}. Expected 'lat' and 'lon' (or 'latitude'/'longitude', "
        "or dims whose coords have units degrees_north/degrees_east), or 'y' and 'x' for a "
        "radar grid. Rename them, e.g. da.rename({'nav_y': 'lat', 'nav_x': 'lon'})."
    )


def _fmt_list(values: Any) -> str:
    values = list(np.asarray(values).ravel())
    return "[" + ", ".join(str(v.item() if hasattr(v, "item") else v) for v in values) + "]"


def check_leads(fc: xr.DataArray, leads: Any) -> list[Any]:
    """Return ``leads`` as a list, checking each is in ``fc.lead``.

    ``leads=None`` gives every lead of the forecast.
    """
    if "lead" not in fc.dims:
        raise PlotInputError(
            f"expected a forecast with a 'lead' dimension; dims found: {tuple(fc.dims)}"
        )
    available = fc["lead"].values
    if leads is None:
        return list(available.tolist())
    requested = list(np.atleast_1d(leads).tolist())
    missing = [lead for lead in requested if lead not in available]
    if missing:
        units = fc["lead"].attrs.get("units", "")
        raise LeadNotFoundError(
            f"lead {missing[0] if len(missing) == 1 else missing} not in the forecast; "
            f"available leads{f' ({units})' if units else ''}: {_fmt_list(available)}"
        )
    return requested


def select_init(fc: xr.DataArray, init: Any = None) -> xr.DataArray:
    """Select one initialisation (default: the first) and drop the ``init`` dim."""
    if "init" not in fc.dims:
        return fc
    if init is None:
        return fc.isel(init=0)
    message = f"init {init!r} not in the forecast; available inits: {_fmt_list(fc['init'].values)}"
    try:
        out = fc.sel(init=init)
    except KeyError:
        raise InitNotFoundError(message) from None
    if "init" in out.dims:  # a partial date string such as "2021-02" matched a range
        if out.sizes["init"] != 1:
            raise InitNotFoundError(
                f"init {init!r} matches {out.sizes['init']} inits; give one of "
                f"{_fmt_list(fc['init'].values)}"
            )
        out = out.isel(init=0)
    return out


def reduce_member(fc: xr.DataArray, member: Any = None) -> tuple[xr.DataArray, str]:
    """Select ``member`` (a label) or take the ensemble mean; return the label used."""
    if "member" not in fc.dims:
        return fc, ""
    if member is None:
        return fc.mean("member", keep_attrs=True), "ensemble mean"
    return fc.sel(member=member), f"member {member}"


def check_no_extra_dims(da: xr.DataArray, allowed: tuple[Hashable, ...], what: str) -> None:
    """Raise :class:`ExtraDimsError` if ``da`` has dims outside ``allowed``."""
    extra = [d for d in da.dims if d not in allowed]
    if extra:
        hint = ", ".join(f"{d}=..." for d in extra)
        raise ExtraDimsError(
            f"{what} cannot show dims {tuple(extra)} (dims found: {tuple(da.dims)}); "
            f"select one value first, e.g. .sel({hint}) or .isel({hint})"
            + (", or use plot_scenarios for kc_sigma" if "kc_sigma" in extra else "")
        )


def _month_offset(t: np.datetime64, months: int) -> np.datetime64:
    import pandas as pd

    return np.datetime64(pd.Timestamp(t) + pd.DateOffset(months=int(months)), "ns")


def valid_time(fc: xr.DataArray, lead: Any) -> Any:
    """Valid time of ``lead`` for a forecast with one init selected (None if unknown).

    Uses the ``valid_time`` coordinate when present, else ``init + lead`` in the
    lead's units (months, days, hours, minutes).
    """
    if "valid_time" in fc.coords:
        vt = fc["valid_time"]
        if "lead" in vt.dims:
            vt = vt.sel(lead=lead)
        if vt.size == 1:
            return vt.values.reshape(())[()]
    if "init" in fc.coords and fc["init"].size == 1 and fc["init"].dtype.kind == "M":
        t0 = fc["init"].values.reshape(())
        units = str(fc["lead"].attrs.get("units", "")).lower() if "lead" in fc.coords else ""
        if units.startswith("month"):
            return _month_offset(t0, lead)
        step = {"days": "D", "day": "D", "hours": "h", "hour": "h", "minutes": "m", "minute": "m"}
        if units in step:
            return t0 + np.timedelta64(int(lead), step[units])
    return None


def format_time(t: Any, lead_units: str = "") -> str:
    """Short text for a time: month for monthly leads, minutes for radar, else the date."""
    if t is None:
        return "?"
    if isinstance(t, np.datetime64) or (isinstance(t, np.ndarray) and t.dtype.kind == "M"):
        import pandas as pd

        ts = pd.Timestamp(t)
        units = lead_units.lower()
        if units.startswith("month"):
            return ts.strftime("%Y-%m")
        if units.startswith(("minute", "hour")) or (ts.hour, ts.minute) != (0, 0):
            return ts.strftime("%Y-%m-%d %H:%M")
        return ts.strftime("%Y-%m-%d")
    return str(t)


def lead_label(lead: Any, fc: xr.DataArray) -> str:
    """``"lead 3 months"`` (singular for 1)."""
    units = str(fc["lead"].attrs.get("units", "")) if "lead" in fc.coords else ""
    if units and lead == 1 and units.endswith("s"):
        units = units[:-1]
    return f"lead {lead} {units}".rstrip()


def field_label(da: xr.DataArray) -> str:
    """``"long name (units)"`` from the attrs, falling back to the name."""
    name = da.attrs.get("long_name") or da.attrs.get("standard_name") or da.name or ""
    units = da.attrs.get("units")
    return f"{name} ({units})" if units else str(name)
