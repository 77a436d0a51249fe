"""nino34 / oni against independent references (official index slice, numpy loops)."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer._precision import sum_error
from xearthformer.metrics import (
    BasePeriodError,
    GridError,
    MetricsInputError,
    monthly_climatology,
    nino34,
    oni,
)


def official_box(field: np.ndarray) -> np.ndarray:
    """The official ``sst_to_nino`` box: rows 10..12, columns 19..29, unweighted."""
    return field[..., 10:13, 19:30].mean(axis=(-2, -1))


def box_error(field: np.ndarray) -> float:
    """Two float64 evaluations of the box mean (33 values, any order) differ by at most this;
    a cos-lat weighted mean (weights in [0.996, 1], their sum rounded too) by twice this."""
    return float(sum_error(field[..., 10:13, 19:30], axis=(-2, -1), mean=True).max())


def test_icar_grid_box_is_the_official_slice(icar_sst):
    # On the 24x48 grid, rows 10..12 are lat -5, 0, 5 and columns 19..29 lon 190..240:
    # exactly the 5S-5N, 170W-120W box, edges included.
    assert icar_sst.lat.values[10:13].tolist() == [-5.0, 0.0, 5.0]
    assert icar_sst.lon.values[[19, 29]].tolist() == [190.0, 240.0]
    ours = nino34(icar_sst, climatology=0, weights=None)
    np.testing.assert_allclose(ours.values, official_box(icar_sst.values), rtol=0,
                               atol=box_error(icar_sst.values))


def test_icar_grid_coslat_weighting_is_close(icar_sst):
    # cos-lat weights (0.9962, 1, 0.9962) on rows -5, 0, 5: the weighted mean moves
    # towards the equator row by w0 = 1/(2 cos5 + 1) - 1/3 of (equator row - outer rows).
    weighted = nino34(icar_sst, climatology=0)
    rows = icar_sst.values[:, 10:13, 19:30].mean(axis=-1)
    w = np.cos(np.deg2rad([-5.0, 0.0, 5.0]))
    expected = (rows * w).sum(-1) / w.sum()
    rounding = 2 * box_error(icar_sst.values)
    np.testing.assert_allclose(weighted.values, expected, rtol=0, atol=rounding)
    diff = np.abs(weighted.values - official_box(icar_sst.values))
    contrast = np.abs(rows[:, 1] - 0.5 * (rows[:, 0] + rows[:, 2]))
    bound = (1 / (2 * np.cos(np.deg2rad(5)) + 1) - 1 / 3) * contrast * 1.0001 + 2 * rounding
    # exact arithmetic: w0 = 1.27e-3 and contrast <= 1.5 max|rows|, so diff <= 1.9e-3 max|rows|
    assert np.all(diff <= bound) and diff.max() < 2e-3 * np.abs(rows).max()


def test_longitude_convention_latitude_order_and_resolution(icar_sst):
    ref = nino34(icar_sst, climatology=0)
    west = icar_sst.assign_coords(lon=((icar_sst.lon + 180) % 360) - 180).sortby("lon")
    flipped = west.isel(lat=slice(None, None, -1))
    # the same weighted means of the same values, summed in another order
    xr.testing.assert_allclose(nino34(flipped, climatology=0), ref, rtol=0,
                               atol=2 * box_error(icar_sst.values))
    # a 1-degree field that is linear in lon: the box mean is the value at the box centre
    lat = np.arange(-20.5, 20.6, 1.0)
    lon = np.arange(150.5, 260.0, 1.0)
    fine = xr.DataArray(np.broadcast_to((lon - 215.0)[None, :], (lat.size, lon.size)),
                        dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    # exactly 0 in exact arithmetic; a float64 weighted mean of values up to |25|
    box = fine.sel(lat=slice(-5, 5), lon=slice(190, 240)).values
    assert abs(float(nino34(fine, climatology=0))) <= 2 * sum_error(box, mean=True)


def test_anomaly_against_base_period_is_monthly_loop():
    rng = np.random.default_rng(1)
    t = pd.date_range("1990-01-01", periods=60, freq="MS")
    sst = xr.DataArray(rng.normal(size=(60, 3, 4)) + 27, dims=("time", "lat", "lon"),
                       coords={"time": t, "lat": [-5.0, 0.0, 5.0],
                               "lon": [190.0, 205.0, 220.0, 240.0]})
    idx = nino34(sst, base_period=(1991, 1992))
    box = (sst.values * np.cos(np.deg2rad(sst.lat.values))[None, :, None]).sum((1, 2)) / (
        np.cos(np.deg2rad(sst.lat.values)).sum() * 4)
    clim = np.array([box[12:36][m::12].mean() for m in range(12)])
    # weighted box means (12 values ~27: 2 * sum_error) minus a mean of two of them: 4x
    tol = 4 * float(sum_error(sst.values, axis=(1, 2), mean=True).max())
    np.testing.assert_allclose(idx.values, box - clim[t.month - 1], rtol=0, atol=tol)
    assert idx.attrs["base_period"] == "1991..1992"
    assert "170W-120W" in idx.attrs["region"] and idx.attrs["weights"] == "cos(latitude)"
    # climatology given as observations or as a monthly climatology: same result
    same = nino34(sst, climatology=sst, base_period=("1991", "1992"))
    xr.testing.assert_allclose(same, idx, rtol=0, atol=tol)
    xr.testing.assert_allclose(
        nino34(sst, climatology=monthly_climatology(sst, ("1991", "1992"))), idx, rtol=0,
        atol=tol)


def test_forecast_dims_kept_and_matched_by_valid_time(icar_sst):
    from xearthformer.metrics import persistence_forecast

    fc = persistence_forecast(icar_sst, icar_sst.time.values[12:20], [1, 2, 3])
    fc = fc.expand_dims(member=2).transpose("init", "member", "lead", ...)
    idx = nino34(fc, climatology=icar_sst)
    assert idx.dims == ("init", "member", "lead") and "valid_time" in idx.coords
    box = nino34(icar_sst, climatology=0).values
    clim = np.array([box[m::12].mean() for m in range(12)])
    month = fc.valid_time.dt.month.values
    expected = box[12:20, None] - clim[month - 1]
    # box means (box_error), minus a monthly mean of 4 of them
    tol = 2 * box_error(icar_sst.values)
    np.testing.assert_allclose(idx.isel(member=0).values, expected, rtol=0, atol=tol)


def test_oni_is_centred_three_month_mean(icar_sst):
    box = nino34(icar_sst, climatology=0).values
    result = oni(icar_sst, climatology=0)
    expected = np.full_like(box, np.nan)
    for i in range(1, len(box) - 1):
        expected[i] = (box[i - 1] + box[i] + box[i + 1]) / 3
    # a float64 mean of 3 box means, as the loop, in another order: gamma_4 * 3 max|box|
    np.testing.assert_allclose(result.values, expected, rtol=0,
                               atol=2 * float(sum_error(np.abs(box).max() * np.ones(3), mean=True)))
    assert "centred 3-month" in result.attrs["smoothing"]


def test_dask_is_lazy_and_equal(icar_sst, no_compute):
    lazy = icar_sst.chunk({"time": 12})
    idx = nino34(lazy, base_period=("2000", "2002"))
    smooth = oni(lazy, base_period=("2000", "2002"))
    assert hasattr(idx.data, "dask") and hasattr(smooth.data, "dask")
    # chunks of 12 months: box means (2 * box_error) and a monthly mean of 3 years of them
    tol = 4 * box_error(icar_sst.values)
    with dask.config.set(scheduler="sync"):
        xr.testing.assert_allclose(idx.compute(), nino34(icar_sst, base_period=("2000", "2002")),
                                   rtol=0, atol=tol)
        xr.testing.assert_allclose(smooth.compute(),
                                   oni(icar_sst, base_period=("2000", "2002")), rtol=0, atol=tol)


def test_errors_say_what_is_wrong(icar_sst):
    with pytest.raises(GridError, match="no latitude"):
        nino34(icar_sst.rename(lat="row").drop_vars("row"))
    with pytest.raises(GridError, match="outside the grid"):
        nino34(icar_sst.sel(lon=slice(95, 150)))
    with pytest.raises(GridError, match="only part"):
        nino34(icar_sst.sel(lon=slice(95, 210)))
    with pytest.raises(BasePeriodError, match="outside the data"):
        nino34(icar_sst, base_period=("1981", "2010"))
    with pytest.raises(BasePeriodError, match="outside the data"):
        nino34(icar_sst, base_period=("2001", "2030"))
    fc = icar_sst.isel(time=slice(0, 2)).rename(time="init").expand_dims(lead=[1], axis=1)
    with pytest.raises(MetricsInputError, match="climatology="):
        nino34(fc)
