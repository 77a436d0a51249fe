"""The one reader of labelled data: which dim is time, latitude, longitude; which variable; units.

Every consumer (forecast, ensemble, evaluate, fit, metrics, plot) asks this module, so a file
that one part of the package reads, every part reads. numpy + xarray + cf_xarray (and pint
through ``cf_xarray.units``, imported on first use): never torch, so ``metrics`` and ``plot``
may import it.

What is read (README "Which files go in"):

* **dims** by CF attributes first (cf_xarray: ``standard_name``, ``axis``, ``units`` such as
  ``degrees_north``; time also by a datetime/cftime dtype or ``units = "<unit> since <date>"``),
  then by common names in any case (``time``/``TIME``/``t``/``T``, ``lat``/``latitude``/
  ``LAT``/``nav_lat``, ``lon``/..., image dims ``y``/``x``);
* **the variable** by name (any case), else by CF ``standard_name`` (``tos`` with
  ``standard_name = "sea_surface_temperature"`` is the model's ``sst``); ``var=`` always wins;
  bounds variables (``time_bnds``, ``lat_bounds``, ...) are never candidates;
* **units** through pint (every UDUNITS spelling of Celsius and Kelvin, plus the
  ``"Deg C"``/``"DEG C"`` of older analysis tools);
* **packed integers** (``scale_factor``/``add_offset``/``_FillValue`` left in the attrs,
  e.g. after ``open_dataset(mask_and_scale=False)``) and **undecoded time** (numbers with CF
  units, any cftime calendar, climatological year 0) are decoded by :func:`decode`.

Examples
--------
>>> import numpy as np, pandas as pd, xarray as xr
>>> t = pd.date_range("2000-01-01", periods=3, freq="MS")
>>> da = xr.DataArray(np.zeros((3, 2, 2)), dims=("TIME", "COADSY", "COADSX"),
...                   coords={"TIME": t, "COADSY": ("COADSY", [0.0, 2.0], {"units": "degrees_north"}),
...                           "COADSX": ("COADSX", [0.0, 2.0], {"units": "degrees_east"})})
>>> find_time(da), find_lat(da), find_lon(da)
('TIME', 'COADSY', 'COADSX')
>>> temperature_kind("Deg C"), temperature_kind("degrees_Celsius"), temperature_kind("kelvin")
('degC', 'degC', 'K')
"""

from __future__ import annotations

import functools
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "TIME_NAMES", "LAT_NAMES", "LON_NAMES", "Y_NAMES", "X_NAMES", "STANDARD_NAMES",
    "find_time", "find_lat", "find_lon", "find_y", "find_x", "is_longitude", "is_latitude",
    "data_variables", "find_variable", "parse_units", "temperature_kind", "unit_conversion",
    "decode",
]

TIME_NAMES = ("time", "t", "valid_time", "date", "times", "time_counter", "datetime")
LAT_NAMES = ("lat", "latitude", "lats", "nav_lat", "y_lat", "lat_0", "gridlat")
LON_NAMES = ("lon", "longitude", "lons", "nav_lon", "x_lon", "lon_0", "gridlon")
Y_NAMES = ("y", "rlat", "row", "rows", "south_north", "yc", "j")
X_NAMES = ("x", "rlon", "col", "cols", "west_east", "xc", "i")
_LAT_UNITS = ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn")
_LON_UNITS = ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese")

#: CF standard names that identify a model variable in an archive (CMIP ``tos``, GHRSST
#: ``analysed_sst`` carry one of these), tried after the model's own name.
STANDARD_NAMES: dict[str, tuple[str, ...]] = {
    "sst": ("sea_surface_temperature", "sea_surface_foundation_temperature",
            "sea_surface_skin_temperature", "sea_surface_subskin_temperature"),
}
# --- dims -----------------------------------------------------------------------------------


def _candidates(obj: xr.DataArray | xr.Dataset, dims_only: bool) -> list[Hashable]:
    names = list(obj.dims)
    if not dims_only:
        names += [c for c in obj.coords if c not in names and obj[c].ndim == 1]
    return names


def _attrs(obj: xr.DataArray | xr.Dataset, name: Hashable) -> dict[str, Any]:
    return dict(obj[name].attrs) if name in obj.coords else {}


def _cf_names(obj: xr.DataArray | xr.Dataset, key: str) -> list[Hashable]:
    """Coordinates cf_xarray recognises as ``key`` (a CF axis or coordinate name)."""
    import cf_xarray  # noqa: F401, PLC0415  (registers the .cf accessor)

    try:
        found = {**obj.cf.axes, **obj.cf.coordinates}
    except Exception:  # noqa: BLE001  (cf_xarray on odd attrs: fall back to our own rules)
        return []
    return list(found.get(key, []))


def _by_name(candidates: Iterable[Hashable], names: Sequence[str]) -> Hashable | None:
    lowered = {str(c).lower(): c for c in candidates}
    return next((lowered[n] for n in names if n in lowered), None)


def _is_time_like(obj: xr.DataArray | xr.Dataset, name: Hashable) -> bool:
    if name not in obj.coords:
        return False
    coord = obj[name]
    if coord.dtype.kind == "M" or (coord.dtype == object and coord.size
                                   and hasattr(coord.values.flat[0], "calendar")):
        return True
    units = str(coord.attrs.get("units", ""))
    return " since " in units.lower()


def find_time(obj: xr.DataArray | xr.Dataset, *, dims_only: bool = True) -> Hashable | None:
    """The time dim: CF attrs (cf_xarray), a datetime/cftime dtype or ``"... since ..."``
    units, then a common name in any case. None when there is none.

    >>> import xarray as xr
    >>> find_time(xr.DataArray([1.0, 2.0], dims="T"))
    'T'
    """
    cands = _candidates(obj, dims_only)
    for name in _cf_names(obj, "T") + _cf_names(obj, "time"):
        if name in cands:
            return name
    for name in cands:
        if _is_time_like(obj, name) and str(name).lower() not in ("month", "lead", "init"):
            return name
    return _by_name(cands, TIME_NAMES)


def _find_geo(obj: xr.DataArray | xr.Dataset, kind: str, dims_only: bool) -> Hashable | None:
    cands = _candidates(obj, dims_only)
    axis, units, names = (("Y", _LAT_UNITS, LAT_NAMES) if kind == "latitude"
                          else ("X", _LON_UNITS, LON_NAMES))
    for name in _cf_names(obj, kind):
        if name in cands:
            return name
    for name in cands:  # units in any case ("DEGREES_NORTH"), which cf_xarray misses
        if str(_attrs(obj, name).get("units", "")).lower().replace(" ", "_") in units:
            return name
    found = _by_name(cands, names)
    if found is not None:
        return found
    for name in _cf_names(obj, axis):  # axis "Y"/"X" alone may be a projection's y/x
        if name in cands and str(name).lower() not in (Y_NAMES if kind == "latitude" else X_NAMES):
            return name
    return None


def find_lat(obj: xr.DataArray | xr.Dataset, *, dims_only: bool = True) -> Hashable | None:
    """The latitude dim (or 1-D coordinate with ``dims_only=False``), None when absent."""
    return _find_geo(obj, "latitude", dims_only)


def find_lon(obj: xr.DataArray | xr.Dataset, *, dims_only: bool = True) -> Hashable | None:
    """The longitude dim (or 1-D coordinate with ``dims_only=False``), None when absent."""
    return _find_geo(obj, "longitude", dims_only)


def find_y(obj: xr.DataArray | xr.Dataset) -> Hashable | None:
    """An image-like row dim (``y``, ``row``, ``south_north``...; any case)."""
    return _by_name(obj.dims, Y_NAMES)


def find_x(obj: xr.DataArray | xr.Dataset) -> Hashable | None:
    """An image-like column dim (``x``, ``col``, ``west_east``...; any case)."""
    return _by_name(obj.dims, X_NAMES)


def is_longitude(obj: xr.DataArray | xr.Dataset, name: Hashable) -> bool:
    """Whether ``name`` is a longitude (periodic) axis of ``obj``."""
    return name is not None and name == _find_geo(obj, "longitude", dims_only=False)


def is_latitude(obj: xr.DataArray | xr.Dataset, name: Hashable) -> bool:
    """Whether ``name`` is a latitude axis of ``obj``."""
    return name is not None and name == _find_geo(obj, "latitude", dims_only=False)


# --- variables ------------------------------------------------------------------------------


def _bounds_names(ds: xr.Dataset) -> set[Hashable]:
    named = {ds[c].attrs.get(k) for c in ds.variables for k in ("bounds", "climatology", "edges")}
    pattern = re.compile(r".*(_bnds|_bounds|_bnd|edges)$|^(bounds|bnds)_.*", re.IGNORECASE)
    return {v for v in ds.data_vars if v in named or pattern.match(str(v))}


def data_variables(ds: xr.Dataset) -> list[Hashable]:
    """The Dataset's data variables without bounds/edges variables (``time_bnds``...)."""
    skip = _bounds_names(ds)
    return [v for v in ds.data_vars if v not in skip]


def find_variable(ds: xr.Dataset, name: str) -> Hashable | None:
    """The Dataset variable that is the model's ``name``: that name (any case), else the one
    variable with a matching CF ``standard_name``. None if none (or several match).

    >>> import xarray as xr
    >>> ds = xr.Dataset({"tos": ("time", [1.0], {"standard_name": "sea_surface_temperature"}),
    ...                  "time_bnds": (("time", "bnds"), [[0.0, 1.0]])})
    >>> find_variable(ds, "sst")
    'tos'
    """
    names = data_variables(ds)
    found = _by_name(names, (name.lower(),))
    if found is not None:
        return found
    wanted = STANDARD_NAMES.get(name.lower(), (name,))
    by_std = [v for v in names if ds[v].attrs.get("standard_name") in wanted]
    return by_std[0] if len(by_std) == 1 else None


# --- units ----------------------------------------------------------------------------------

_CELSIUS = re.compile(r"^(deg(ree)?s?|°)?[ _]?(c|celsius|centigrade)$", re.IGNORECASE)
_KELVIN = re.compile(r"^(deg(ree)?s?|°)?[ _]?(k|kelvin)$", re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def _registry() -> Any:
    from cf_xarray.units import units  # noqa: PLC0415  (imports pint: only when needed)

    return units


@functools.lru_cache(maxsize=256)
def parse_units(units: str) -> Any:
    """The pint unit of a CF/UDUNITS units string (None when pint cannot read it).

    Celsius and Kelvin in any spelling (``"Deg C"``, ``"degrees_Celsius"``, ``"deg_K"``...) are
    read before pint, which would take ``"deg C"`` for degrees times delta-Celsius.
    """
    text = str(units).strip()
    if _CELSIUS.match(text):
        text = "degC"
    elif _KELVIN.match(text):
        text = "K"
    try:
        return _registry().Unit(text)
    except Exception:  # noqa: BLE001  (pint raises several types for unreadable strings)
        return None


def temperature_kind(units: str | None) -> str | None:
    """``"K"``, ``"degC"`` (or ``"degF"``) for a temperature units string, else None."""
    if units is None:
        return None
    unit = parse_units(units)
    if unit is None:
        return None
    for kind, name in (("K", "kelvin"), ("degC", "degree_Celsius"), ("degF", "degree_Fahrenheit")):
        if unit == _registry().Unit(name):
            return kind
    return None


def unit_conversion(found: str, expected: str, *, anomaly: bool = False
                    ) -> tuple[float, float] | None:
    """``(factor, shift)`` with ``expected = found * factor + shift``, or None if the units
    cannot be converted (unknown, or another dimension). An anomaly (a difference) converts by
    the factor alone.

    >>> unit_conversion("Deg C", "K")
    (1.0, 273.15)
    >>> unit_conversion("degC", "K", anomaly=True)
    (1.0, 0.0)
    >>> unit_conversion("M/S", "K") is None
    True
    """
    a, b = parse_units(found), parse_units(expected)
    if a is None or b is None or a.dimensionality != b.dimensionality:
        return None
    ureg = _registry()
    try:
        zero = float(ureg.Quantity(0.0, a).to(b).magnitude)
        one = float(ureg.Quantity(1.0, a).to(b).magnitude)
    except Exception:  # noqa: BLE001
        return None
    return round(one - zero, 12), 0.0 if anomaly else round(zero, 12)


# --- decoding -------------------------------------------------------------------------------


def _decode_time(coord: xr.DataArray) -> tuple[xr.DataArray, str | None]:
    units = str(coord.attrs.get("units", ""))
    calendar = coord.attrs.get("calendar", "standard")
    try:
        decoded = xr.decode_cf(coord.to_dataset(name="__t"))["__t"]
        return decoded.variable, f"time decoded from {units!r} ({calendar})"
    except Exception:  # noqa: BLE001  (e.g. reference year 0, which 'standard' lacks)
        pass
    import cftime  # noqa: PLC0415

    try:
        dates = cftime.num2date(np.asarray(coord.values), units, calendar="proleptic_gregorian",
                                has_year_zero=True, only_use_cftime_datetimes=True)
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            f"the time coordinate {coord.name!r} has units {units!r} that cannot be decoded "
            f"({err}); decode it yourself (xr.decode_cf, or assign datetime values)."
        ) from None
    attrs = {k: v for k, v in coord.attrs.items() if k not in ("units", "calendar")}
    note = (f"time decoded from {units!r} with year 0 (proleptic_gregorian with year zero, "
            "a climatological year)")
    return xr.Variable(coord.dims, np.asarray(dates), attrs), note


def decode(da: xr.DataArray) -> tuple[xr.DataArray, list[str]]:
    """Decode what an archive may leave encoded; returns the data and notes for the attrs.

    * packed integers with ``scale_factor``/``add_offset`` in the attrs (and ``_FillValue``/
      ``missing_value`` masked), through xarray's own CF decoder (lazy for dask);
    * a time coordinate still in numbers with CF units (``"hours since 0000-01-01"``), with
      its calendar (cftime for ``noleap``, ``360_day``, ``julian``, year 0...).

    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.array([0, 100, -1], "int16"), dims="x",
    ...                   attrs={"scale_factor": 0.01, "add_offset": 20.0, "_FillValue": -1})
    >>> decode(da)[0].values.round(2).tolist()
    [20.0, 21.0, nan]
    """
    notes: list[str] = []
    packed = any(k in da.attrs for k in ("scale_factor", "add_offset"))
    if packed or (da.dtype.kind in "iu" and any(k in da.attrs for k in ("_FillValue",
                                                                          "missing_value"))):
        name = da.name if da.name is not None else "__data"
        coords = {k: v.variable for k, v in da.coords.items()}
        ds = xr.Dataset({name: da.variable}).assign_coords(coords)
        out = xr.decode_cf(ds, decode_times=False, decode_coords=False)[name]
        out.name = da.name
        da = out
        notes.append(f"unpacked ({'scale_factor/add_offset' if packed else 'fill values masked'})")
    for name in list(da.coords):
        coord = da[name]
        if (coord.ndim == 1 and coord.dtype.kind in "iuf"
                and " since " in str(coord.attrs.get("units", "")).lower()):
            variable, note = _decode_time(coord)
            da = da.assign_coords({name: variable})
            if note:
                notes.append(note)
    return da, notes
