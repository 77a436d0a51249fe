"""The one reader of labelled data (issue 20 item 1): dims, variables, units, decoding."""

from __future__ import annotations

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer import _reader as reader
from xearthformer._layout import MissingDimError, UnitsError, find_dims, normalise_units
from xearthformer.metrics._validate import find_lat_lon
from xearthformer.plot._validate import spatial_dims

T = pd.date_range("2000-01-01", periods=3, freq="MS")


def _grid(tname, yname, xname, yattrs=None, xattrs=None, tattrs=None) -> xr.DataArray:
    return xr.DataArray(
        np.zeros((3, 2, 4)), dims=(tname, yname, xname),
        coords={tname: (tname, T, tattrs or {}), yname: (yname, [0.0, 5.0], yattrs or {}),
                xname: (xname, [0.0, 5.0, 10.0, 15.0], xattrs or {})})


@pytest.mark.parametrize("names", [
    ("time", "lat", "lon"), ("TIME", "LAT", "LON"), ("t", "latitude", "longitude"),
    ("T", "Latitude", "Longitude"), ("time_counter", "nav_lat", "nav_lon"),
    ("valid_time", "LATITUDE", "LONGITUDE")])
def test_dims_by_name_in_any_case(names) -> None:
    da = _grid(*names)
    assert (reader.find_time(da), reader.find_lat(da), reader.find_lon(da)) == names
    assert find_dims(da) == find_dims(da, spatial="lat/lon")
    assert find_lat_lon(da) == names[1:] and spatial_dims(da).geographic


def test_dims_by_cf_attributes() -> None:
    # grid-named axes (Ferret COADSX/COADSY, XAXIS-style), told apart by their units only
    da = _grid("TAX", "YAXIS", "XAXIS", {"units": "degrees_north"}, {"units": "DEGREES_EAST"},
               {"axis": "T"})
    assert find_dims(da) == find_dims(da, spatial="lat/lon")
    assert (reader.find_time(da), reader.find_lat(da), reader.find_lon(da)) == (
        "TAX", "YAXIS", "XAXIS")
    sn = _grid("when", "a", "b", {"standard_name": "latitude"}, {"standard_name": "longitude"},
               {"standard_name": "time"})
    assert find_dims(sn).time == "when" and find_lat_lon(sn) == ("a", "b")
    assert spatial_dims(sn).y == "a" and spatial_dims(sn).x == "b"
    # a datetime dtype is enough for time, and forecast dims are never taken for it
    assert reader.find_time(_grid("stamp", "lat", "lon")) == "stamp"
    fc = xr.DataArray(np.zeros((2, 3)), dims=("init", "lead"), coords={"init": T[:2]})
    assert reader.find_time(fc) is None
    # image-like dims for radar; nothing found raises naming the dims and the fix
    radar = xr.DataArray(np.zeros((3, 2, 2)), dims=("time", "y", "x"), coords={"time": T})
    assert find_dims(radar).y == "y" and not spatial_dims(radar).geographic
    with pytest.raises(MissingDimError, match=r"no time dimension found in dims \['a', 'y', 'x'\]"):
        find_dims(xr.DataArray(np.zeros((3, 2, 2)), dims=("a", "y", "x")))


def test_variable_by_name_or_standard_name_and_bounds_ignored() -> None:
    v = ("time", [1.0, 2.0])
    ds = xr.Dataset({"tos": (*v, {"standard_name": "sea_surface_temperature"}),
                     "time_bnds": (("time", "bnds"), [[0.0, 1.0], [1.0, 2.0]]),
                     "lat_bounds": ("lat", [0.0])})
    assert reader.find_variable(ds, "sst") == "tos"
    assert reader.data_variables(ds) == ["tos"]
    assert reader.find_variable(xr.Dataset({"SST": v}), "sst") == "SST"
    assert reader.find_variable(xr.Dataset({"analysed_sst": (*v, {
        "standard_name": "sea_surface_foundation_temperature"})}), "sst") == "analysed_sst"
    two = xr.Dataset({"a": (*v, {"standard_name": "sea_surface_temperature"}),
                      "b": (*v, {"standard_name": "sea_surface_temperature"})})
    assert reader.find_variable(two, "sst") is None  # ambiguous: the caller asks for var=
    assert reader.find_variable(xr.Dataset({"tas": v}), "sst") is None


CELSIUS = ["degC", "deg_C", "degreeC", "degree_C", "degrees_C", "degree_Celsius",
           "degrees_Celsius", "Celsius", "celsius", "C", "°C", "Deg C", "DEG C", "degrees C"]
KELVIN = ["K", "kelvin", "Kelvin", "degK", "deg_K", "degrees_K", "degree_Kelvin"]


@pytest.mark.parametrize("units", CELSIUS + KELVIN)
def test_every_spelling_of_celsius_and_kelvin(units) -> None:
    kind = "degC" if units in CELSIUS else "K"
    assert reader.temperature_kind(units) == kind
    da = xr.DataArray(np.array([0.0, 26.85]), attrs={"units": units})
    out, note = normalise_units(da, "K")
    expected = da.values + (273.15 if kind == "degC" else 0.0)  # exact in float64 to 1 ulp
    np.testing.assert_allclose(out.values, expected, rtol=1e-15)
    assert (note is None) == (kind == "K")


def test_units_not_temperature_are_refused() -> None:
    for units in ("M/S", "furlongs", "W/M2"):
        with pytest.raises(UnitsError, match="pass units='K'"):
            normalise_units(xr.DataArray([1.0], attrs={"units": units}), "K")
    assert reader.unit_conversion("degF", "K")[0] == pytest.approx(5 / 9)


def test_packed_integers_are_unpacked() -> None:
    raw = np.array([[0, 150, -32767]], dtype="int16")
    da = xr.DataArray(raw, dims=("time", "x"), coords={"time": T[:1]},
                      attrs={"scale_factor": 0.01, "add_offset": 290.0, "_FillValue": -32767,
                             "units": "K"})
    out, notes = reader.decode(da)
    np.testing.assert_allclose(out.values, [[290.0, 291.5, np.nan]], rtol=1e-12)
    assert out.attrs["units"] == "K" and "scale_factor" not in out.attrs and notes
    assert reader.decode(xr.DataArray([1.0, 2.0]))[1] == []  # nothing to do


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "julian", "proleptic_gregorian",
                                      "standard", "all_leap"])
def test_undecoded_time_in_any_calendar(calendar) -> None:
    days = np.array([15.0, 45.0, 75.0])
    da = xr.DataArray(np.zeros(3), dims="TIME", coords={"TIME": ("TIME", days, {
        "units": "days since 1850-01-01", "calendar": calendar})})
    out, notes = reader.decode(da)
    months = [t.month for t in out.indexes["TIME"]]
    assert months == [1, 2, 3] and calendar in notes[0]
    assert reader.find_time(da) == "TIME"  # numbers with 'since' units are time, too


def test_year_zero_climatology_is_decoded() -> None:
    hours = np.array([366.0, 1096.485])  # Ferret's COADS climatology
    da = xr.DataArray(np.zeros(2), dims="TIME", coords={"TIME": ("TIME", hours, {
        "units": "hour since 0000-01-01 00:00:00"})})
    out, notes = reader.decode(da)
    assert [(t.year, t.month, t.day) for t in out["TIME"].values] == [(0, 1, 16), (0, 2, 15)]
    assert isinstance(out["TIME"].values[0], cftime.datetime) and "year 0" in notes[0]
