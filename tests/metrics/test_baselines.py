"""Persistence and climatology forecasts: layout and values by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer._precision import sum_error
from xearthformer.metrics import (
    MetricsInputError,
    climatology_forecast,
    make_climatology_forecast,
    persistence_forecast,
    valid_times,
)


def test_valid_time_calendar_months_and_minutes():
    vt = valid_times(pd.to_datetime(["2000-11-01", "2001-01-31"]), [1, 2, 3])
    assert [str(v)[:10] for v in vt[1]] == ["2001-02-28", "2001-03-31", "2001-04-30"]
    vt = valid_times(pd.to_datetime(["2019-07-01T00:00"]), [5, 60], units="minutes")
    assert [str(v)[:16] for v in vt[0]] == ["2019-07-01T00:05", "2019-07-01T01:00"]


def test_persistence_layout(icar_sst):
    inits = icar_sst.time.values[5:9]
    fc = persistence_forecast(icar_sst, inits, [1, 2, 3])
    assert fc.dims == ("init", "lead", "lat", "lon")
    assert fc["lead"].attrs == {"units": "months", "standard_name": "forecast_period"}
    assert fc["init"].attrs["standard_name"] == "forecast_reference_time"
    for j in range(3):
        np.testing.assert_array_equal(fc.isel(lead=j).values, icar_sst.values[5:9])
    np.testing.assert_array_equal(fc.valid_time.values[:, 2], icar_sst.time.values[8:12])
    xr.testing.assert_identical(fc.lat, icar_sst.lat)


def test_climatology_values(icar_sst):
    fc = climatology_forecast(icar_sst, icar_sst.time.values[[0, 7]], [1, 5])
    clim = np.stack([icar_sst.values[m::12].mean(0) for m in range(12)])
    # float64 means of 4 years (2 for the base period), in another order: sum_error
    tol = float(sum_error(icar_sst.values.reshape(4, 12, -1), axis=0, mean=True).max())
    np.testing.assert_allclose(fc.values[1, 1], clim[(7 + 5) % 12], rtol=0, atol=tol)
    np.testing.assert_allclose(fc.values[0, 0], clim[1], rtol=0, atol=tol)
    fn = make_climatology_forecast(icar_sst, base_period=("2000", "2001"))
    fc2 = fn(icar_sst, icar_sst.time.values[[0]], [1])
    clim2 = icar_sst.values[[1, 13]].mean(0)
    np.testing.assert_allclose(fc2.values[0, 0], clim2, rtol=0, atol=tol)
    assert fc2.dims == fc.dims and "valid_time" in fc2.coords


def test_unknown_init(icar_sst):
    with pytest.raises(MetricsInputError, match="1999-01-01"):
        persistence_forecast(icar_sst, pd.to_datetime(["1999-01-01"]), [1])


def test_lazy_on_dask(icar_sst, no_compute):
    import dask

    lazy = icar_sst.chunk({"time": 12})
    inits = icar_sst.time.values[[3, 20]]
    pers = persistence_forecast(lazy, inits, [1, 2])
    clim = climatology_forecast(lazy, inits, [1, 2])
    assert isinstance(pers.data, dask.array.Array) and isinstance(clim.data, dask.array.Array)
    with dask.config.set(scheduler="sync"):
        xr.testing.assert_identical(pers.compute(), persistence_forecast(icar_sst, inits, [1, 2]))
        # monthly means of 4 years, in chunks of 12 months: another order (sum_error)
        tol = float(sum_error(icar_sst.values.reshape(4, 12, -1), axis=0, mean=True).max())
        xr.testing.assert_allclose(clim.compute(), climatology_forecast(icar_sst, inits, [1, 2]),
                                   rtol=0, atol=tol)
