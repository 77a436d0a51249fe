"""Fixtures for the plot tests: seeded synthetic forecasts in DESIGN.md section 3 layout.

Every test in this folder runs with sockets disabled (autouse ``no_network``),
on the Agg backend, and closes its figures.
"""

from __future__ import annotations

import socket

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402


class NetworkCalled(RuntimeError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkCalled(f"network access attempted in a plot test: {args!r}")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No socket can be opened: any download attempt fails loudly."""
    monkeypatch.setattr(socket, "socket", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    yield


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def shipped_coastlines_only(monkeypatch):
    """Pretend cartopy's Natural Earth files are absent, whatever this machine has."""
    import xearthformer.plot._coastlines as coast

    monkeypatch.setattr(coast, "natural_earth_coastline_path", lambda resolution="110m": None)


def _valid_time_months(init: pd.DatetimeIndex, lead: np.ndarray) -> np.ndarray:
    return np.array([[t + pd.DateOffset(months=int(m)) for m in lead] for t in init],
                    dtype="datetime64[ns]")


def make_enso(n_init: int = 2, n_member: int | None = 5, n_lead: int = 4,
              valid_time: bool = True) -> xr.DataArray:
    rng = np.random.default_rng(0)
    init = pd.date_range("2021-01-01", periods=n_init, freq="MS")
    lead = np.arange(1, n_lead + 1)
    lat = np.arange(-20.0, 21.0, 5.0)
    lon = np.arange(120.0, 290.0, 10.0)
    dims = ["init", "lead", "lat", "lon"]
    shape = [n_init, n_lead, lat.size, lon.size]
    coords = {
        "init": ("init", init, {"standard_name": "forecast_reference_time"}),
        "lead": ("lead", lead, {"units": "months", "standard_name": "forecast_period"}),
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    if n_member:
        dims.insert(1, "member")
        shape.insert(1, n_member)
        coords["member"] = ("member", np.arange(n_member), {"standard_name": "realization"})
    data = rng.normal(size=shape)
    data[..., 0, 0] = np.nan  # a land point
    da = xr.DataArray(data, dims=dims, coords=coords, name="sst_anomaly",
                      attrs={"long_name": "SST anomaly", "units": "K"})
    if valid_time:
        da = da.assign_coords(valid_time=(("init", "lead"), _valid_time_months(init, lead)))
    return da


@pytest.fixture
def enso_ens() -> xr.DataArray:
    """(init 2, member 5, lead 4, lat 9, lon 17) SST anomaly ensemble, 120E-80W."""
    return make_enso()


@pytest.fixture
def enso_fc() -> xr.DataArray:
    """Deterministic (init 2, lead 4, lat 9, lon 17) SST anomaly forecast."""
    return make_enso(n_member=None)


@pytest.fixture
def radar_sc() -> xr.DataArray:
    """VIL forecast (init 1, kc_sigma 3, lead 3, y 16, x 16), 10-minute leads, no lat/lon."""
    rng = np.random.default_rng(0)
    t0 = np.datetime64("2019-07-14T18:00", "ns")
    lead = np.array([10, 20, 30])
    return xr.DataArray(
        rng.uniform(0, 255, size=(1, 3, 3, 16, 16)),
        dims=("init", "kc_sigma", "lead", "y", "x"),
        coords={
            "init": [t0],
            "kc_sigma": [-1.0, 0.0, 1.0],
            "lead": ("lead", lead, {"units": "minutes"}),
            "valid_time": (("init", "lead"), (t0 + lead.astype("timedelta64[m]"))[None]),
        },
        name="vil",
        attrs={"long_name": "VIL", "units": "1"},
    )


@pytest.fixture
def radar_obs() -> xr.DataArray:
    """VIL observations every 10 minutes from 17:20 to 18:30 (8 frames)."""
    rng = np.random.default_rng(1)
    times = np.datetime64("2019-07-14T17:20", "ns") + np.timedelta64(10, "m") * np.arange(8)
    return xr.DataArray(rng.uniform(0, 255, size=(8, 16, 16)), dims=("time", "y", "x"),
                        coords={"time": times}, name="vil", attrs={"long_name": "VIL"})


@pytest.fixture
def nino_fc() -> xr.DataArray:
    """Nino3.4 index ensemble forecast (init 1, member 8, lead 6)."""
    rng = np.random.default_rng(0)
    init = pd.to_datetime(["2023-05-01"])
    lead = np.arange(1, 7)
    return xr.DataArray(
        rng.normal(0.8, 0.4, size=(1, 8, 6)),
        dims=("init", "member", "lead"),
        coords={"init": init, "member": np.arange(8),
                "lead": ("lead", lead, {"units": "months"}),
                "valid_time": (("init", "lead"), _valid_time_months(init, lead))},
        name="nino34",
        attrs={"long_name": "Nino3.4 index", "units": "K"},
    )


@pytest.fixture
def nino_obs() -> xr.DataArray:
    rng = np.random.default_rng(3)
    time = pd.date_range("2022-01-01", "2023-09-01", freq="MS")
    return xr.DataArray(rng.normal(size=time.size), dims="time", coords={"time": time},
                        name="nino34", attrs={"units": "K"})
