"""Fixtures with the conventions of the archives users have (issue 20 item 4).

Each builder returns what ``xarray.open_dataset`` gives for such a file (names, dim order,
latitude order, longitude convention, units spelling, calendar, packing, time stamps within the
month, bounds variables, missing cells), filled with a smooth seeded SST field: the values are
synthetic, the layout is the archive's. Real files are in ``tests/data/real`` (see its README).
"""

from __future__ import annotations

import cftime
import numpy as np
import pandas as pd
import xarray as xr

N_MONTHS = 26  # a 12-month context, 2 inits, 2 leads, and room for evaluate


def _field(lat: np.ndarray, lon: np.ndarray, months: np.ndarray, seed: int) -> np.ndarray:
    """Absolute SST in degC ``(time, lat, lon)``: meridional gradient, seasons, ENSO, noise."""
    rng = np.random.default_rng(seed)
    la, lo = np.deg2rad(lat)[None, :, None], np.deg2rad(lon)[None, None, :]
    season = np.cos(2 * np.pi * (months[:, None, None] % 12) / 12.0) * np.sin(la) * 3.0
    enso = (np.sin(2 * np.pi * np.arange(months.size) / 40.0)[:, None, None]
            * np.exp(-(lat[None, :, None] / 15.0) ** 2) * (1 + np.cos(lo - np.deg2rad(220))))
    base = 28.0 * np.cos(la) ** 2 - 1.0
    return (base + season + enso + 0.2 * rng.standard_normal((months.size, lat.size, lon.size)))


def _land(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A crude fixed land mask (two 'continents' and Antarctica) on any grid."""
    la, lo = lat[:, None], (lon[None, :] % 360.0)
    americas = (lo > 280) & (lo < 320) & (np.abs(la) < 50)
    asia = (lo > 60) & (lo < 110) & (la > 10) & (la < 60)
    return americas | asia | (la < -70)


def _ice(lat: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Sea ice: poleward of 58 degrees in the local winter, edge moving month to month."""
    edge = 58.0 + 4.0 * np.abs(((months % 12) - 1.5) % 12 - 6) / 6.0  # 58..62
    north = (lat[None, :] > edge[:, None]) & ((months % 12) < 4)[:, None]
    south = (lat[None, :] < -edge[:, None]) & ((months % 12) > 5)[:, None] & ((months % 12) < 10)[:, None]
    return (north | south)[:, :, None]


def _sst(lat, lon, n=N_MONTHS, seed=0, start_month=0):
    months = np.arange(start_month, start_month + n)
    values = _field(lat, lon, months, seed)
    values = np.where(_land(lat, lon)[None], np.nan, values)
    return np.where(_ice(lat, months), np.nan, values)


def ersst() -> xr.Dataset:
    """NOAA ERSST v5: ``sst(time, lev, lat, lon)``, a size-1 ``lev``, ascending 2-degree
    latitude (4 here), longitude 0..358, units ``degree_C``, month-start stamps."""
    lat, lon = np.arange(-88.0, 89.0, 4.0), np.arange(0.0, 360.0, 4.0)
    time = pd.date_range("1990-01-01", periods=N_MONTHS, freq="MS")
    values = _sst(lat, lon)[:, None]
    return xr.Dataset(
        {"sst": (("time", "lev", "lat", "lon"), values.astype("float32"),
                 {"long_name": "Extended reconstructed sea surface temperature",
                  "standard_name": "sea_surface_temperature", "units": "degree_C"})},
        coords={"time": ("time", time, {"long_name": "Start time of month"}),
                "lev": ("lev", [0.0], {"units": "meters", "axis": "Z", "positive": "down"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})},
        attrs={"title": "ERSST-style layout (synthetic values)"})


def oisst_packed() -> xr.DataArray:
    """NOAA OISST v2 monthly as read with ``mask_and_scale=False``: int16 with
    ``scale_factor``/``add_offset``/``_FillValue`` in the attrs, latitude descending."""
    lat, lon = np.arange(88.0, -89.0, -4.0), np.arange(2.0, 360.0, 4.0)
    time = pd.date_range("1995-01-01", periods=N_MONTHS, freq="MS")
    values = _sst(lat, lon, seed=1)
    packed = np.where(np.isnan(values), 32767, np.round(values / 0.01)).astype("int16")
    return xr.DataArray(
        packed, dims=("time", "lat", "lon"), name="sst",
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"units": "degC", "long_name": "Monthly Mean of Sea Surface Temperature",
               "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": np.int16(32767)})


def hadisst(*, sea_ice: float | None = -1000.0) -> xr.DataArray:
    """Met Office HadISST: ``(time, latitude, longitude)``, latitude descending, longitude
    -180..180, units ``C``, mid-month stamps, sea ice written as -1000 (not missing)."""
    lat, lon = np.arange(87.5, -88.0, -5.0), np.arange(-177.5, 180.0, 5.0)
    time = pd.date_range("1980-01-01", periods=N_MONTHS, freq="MS") + pd.Timedelta(days=15)
    months = np.arange(N_MONTHS)
    values = np.where(_land(lat, lon)[None], np.nan, _field(lat, lon, months, 2))
    if sea_ice is not None:
        values = np.where(_ice(lat, months), sea_ice, values)
    return xr.DataArray(
        values.astype("float32"), dims=("time", "latitude", "longitude"), name="sst",
        coords={"time": time,
                "latitude": ("latitude", lat, {"units": "degrees_north"}),
                "longitude": ("longitude", lon, {"units": "degrees_east"})},
        attrs={"units": "C", "standard_name": "sea_surface_temperature",
               "long_name": "sst", "missing_value": -1e30})


def cobe() -> xr.DataArray:
    """JMA COBE-SST via NOAA PSL: latitude descending, mid-month stamps (15th), ``degC``."""
    lat, lon = np.arange(86.0, -87.0, -4.0), np.arange(1.0, 360.0, 4.0)
    time = pd.date_range("2001-01-15", periods=N_MONTHS, freq="MS") + pd.Timedelta(days=14)
    return xr.DataArray(
        _sst(lat, lon, seed=3).astype("float32"), dims=("time", "lat", "lon"), name="sst",
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north", "axis": "Y"}),
                "lon": ("lon", lon, {"units": "degrees_east", "axis": "X"})},
        attrs={"units": "degC", "long_name": "Monthly Means of Global Sea Surface Temperature"})


def era5() -> xr.Dataset:
    """ECMWF ERA5 monthly means from the new CDS: time dim ``valid_time``, ``latitude``
    descending 90..-90, longitude 0..357, Kelvin, packed int16, scalar ``number``/``expver``."""
    lat, lon = np.arange(90.0, -91.0, -3.0), np.arange(0.0, 360.0, 3.0)
    time = pd.date_range("2010-01-01", periods=N_MONTHS, freq="MS")
    kelvin = _sst(lat, lon, seed=4) + 273.15
    scale, offset = 0.001, 290.0
    packed = np.where(np.isnan(kelvin), -32767, np.round((kelvin - offset) / scale)).astype("int16")
    return xr.Dataset(
        {"sst": (("valid_time", "latitude", "longitude"), packed,
                 {"units": "K", "long_name": "Sea surface temperature", "scale_factor": scale,
                  "add_offset": offset, "_FillValue": np.int16(-32767)})},
        coords={"valid_time": ("valid_time", time, {"standard_name": "time"}),
                "latitude": ("latitude", lat, {"units": "degrees_north",
                                               "standard_name": "latitude"}),
                "longitude": ("longitude", lon, {"units": "degrees_east",
                                                 "standard_name": "longitude"}),
                "number": 0, "expver": ("valid_time", ["0001"] * N_MONTHS)})


def cmip6(calendar: str = "noleap", stamp: str = "middle") -> xr.Dataset:
    """CMIP6 ``tos`` (Omon, regular ``gn`` grid): standard_name ``sea_surface_temperature``,
    ``degC``, a cftime calendar, bounds variables, stamps at month start/middle/end."""
    lat, lon = np.arange(-88.0, 89.0, 4.0), np.arange(2.0, 360.0, 4.0)
    day = {"start": 1, "middle": 15, "end": 28}[stamp]
    time = [cftime.datetime(1850 + m // 12, m % 12 + 1, day, 12, calendar=calendar)
            for m in range(N_MONTHS)]
    bnds = [[cftime.datetime(1850 + m // 12, m % 12 + 1, 1, calendar=calendar),
             cftime.datetime(1850 + (m + 1) // 12, (m + 1) % 12 + 1, 1, calendar=calendar)]
            for m in range(N_MONTHS)]
    return xr.Dataset(
        {"tos": (("time", "lat", "lon"), _sst(lat, lon, seed=5).astype("float32"),
                 {"standard_name": "sea_surface_temperature", "units": "degC",
                  "long_name": "Sea Surface Temperature", "cell_methods": "area: mean time: mean"}),
         "time_bnds": (("time", "bnds"), np.asarray(bnds, dtype=object)),
         "lat_bnds": (("lat", "bnds"), np.stack([lat - 2, lat + 2], axis=1)),
         "lon_bnds": (("lon", "bnds"), np.stack([lon - 2, lon + 2], axis=1))},
        coords={"time": ("time", np.asarray(time, dtype=object),
                         {"bounds": "time_bnds", "axis": "T", "standard_name": "time"}),
                "lat": ("lat", lat, {"bounds": "lat_bnds", "units": "degrees_north",
                                     "axis": "Y", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"bounds": "lon_bnds", "units": "degrees_east",
                                     "axis": "X", "standard_name": "longitude"})},
        attrs={"mip_era": "CMIP6", "table_id": "Omon", "variable_id": "tos", "grid_label": "gn"})


def ferret_undecoded() -> xr.DataArray:
    """A Ferret-written file opened with ``decode_times=False``: upper-case ``TIME`` in
    ``hours since``, grid-named axes ``COADSY``/``COADSX``, units ``Deg C``."""
    lat, lon = np.arange(-89.0, 90.0, 4.0), np.arange(21.0, 380.0, 4.0)  # 21E..377E, as COADS
    hours = (pd.date_range("1980-01-16", periods=N_MONTHS, freq="MS") + pd.Timedelta(days=15)
             - pd.Timestamp("1980-01-01")) / pd.Timedelta(hours=1)
    return xr.DataArray(
        _sst(lat, lon, seed=6).astype("float32"), dims=("TIME", "COADSY", "COADSX"), name="SST",
        coords={"TIME": ("TIME", np.asarray(hours), {"units": "hour since 1980-01-01 00:00:00",
                                                     "time_origin": "1-JAN-1980 00:00:00"}),
                "COADSY": ("COADSY", lat, {"units": "degrees_north", "point_spacing": "even"}),
                "COADSX": ("COADSX", lon, {"units": "degrees_east", "modulo": " "})},
        attrs={"long_name": "SEA SURFACE TEMPERATURE", "units": "Deg C"})


def radar(grid: dict[str, np.ndarray], n_frames: int = 16) -> xr.Dataset:
    """A radar archive (SEVIR/MRMS-like): ``VIL`` as uint8 digital levels ``(time, y, x)`` at
    5-minute steps, projected ``y``/``x`` coordinates in km, an upper-case variable name."""
    y, x = grid["y"], grid["x"]
    rng = np.random.default_rng(7)
    t = np.arange(n_frames)[:, None, None]
    yy, xx = np.meshgrid(y, x, indexing="ij")
    cell = 200 * np.exp(-(((yy - 60 - 4 * t) / 30.0) ** 2 + ((xx - 80 - 3 * t) / 30.0) ** 2))
    vil = np.clip(cell + rng.uniform(0, 5, cell.shape), 0, 255).astype("uint8")
    time = pd.date_range("2019-06-01 18:00", periods=n_frames, freq="5min")
    return xr.Dataset(
        {"VIL": (("time", "y", "x"), vil, {"long_name": "vertically integrated liquid",
                                           "units": "1"})},
        coords={"time": time, "y": ("y", y, {"units": "km", "axis": "Y"}),
                "x": ("x", x, {"units": "km", "axis": "X"})})


SST_CONVENTIONS = {
    "ERSST": ersst,
    "OISST (packed int16)": oisst_packed,
    "HadISST (sea ice masked)": lambda: hadisst(sea_ice=None),
    "COBE": cobe,
    "ERA5 (CDS)": era5,
    "CMIP6 noleap": lambda: cmip6("noleap", "middle"),
    "CMIP6 360_day": lambda: cmip6("360_day", "end"),
    "CMIP6 julian": lambda: cmip6("julian", "start"),
    "CMIP6 proleptic_gregorian": lambda: cmip6("proleptic_gregorian", "middle"),
    "Ferret (undecoded TIME)": ferret_undecoded,
}
