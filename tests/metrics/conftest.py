"""Fixtures of the metrics tests: small seeded data on real coordinates."""

from __future__ import annotations


import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

#: The official ICAR-ENSO grid: 24 x 48 points, 5 degrees (reference/metrics-and-data.md 1.2).
ICAR_LAT = np.arange(-55.0, 60.0 + 1, 5.0)
ICAR_LON = np.arange(95.0, 330.0 + 1, 5.0)


def _raise_on_compute(dsk, keys, **kwargs):
    raise RuntimeError("computed although the result should have stayed lazy")


@pytest.fixture
def no_compute():
    """Within this fixture, any dask computation raises."""
    with dask.config.set(scheduler=_raise_on_compute):
        yield


@pytest.fixture
def icar_sst() -> xr.DataArray:
    """SST anomalies on the ICAR-ENSO grid, 48 months, seeded."""
    rng = np.random.default_rng(0)
    t = pd.date_range("2000-01-01", periods=48, freq="MS")
    data = rng.normal(size=(48, 24, 48)) + np.linspace(-1, 1, 24)[None, :, None]
    da = xr.DataArray(data, dims=("time", "lat", "lon"),
                      coords={"time": t, "lat": ICAR_LAT, "lon": ICAR_LON}, name="sst")
    da.attrs["units"] = "K"
    da["lat"].attrs["units"] = "degrees_north"
    da["lon"].attrs["units"] = "degrees_east"
    return da


