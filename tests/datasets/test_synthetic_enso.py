"""Synthetic ENSO: grid, attributes, determinism and the dynamics a model has to learn."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from xearthformer.datasets import DatasetParameterError, synthetic_enso


@pytest.fixture(scope="module")
def enso() -> xr.Dataset:
    return synthetic_enso(seed=0, include_latent=True)


@pytest.fixture(scope="module")
def long_enso() -> xr.Dataset:
    return synthetic_enso(seed=3, n_years=300)


def nino34(ds: xr.Dataset) -> np.ndarray:
    box = ds.sst.sel(lat=slice(-5, 5), lon=slice(190, 240))
    assert box.shape[1:] == (3, 11)
    return box.mean(("lat", "lon")).values.astype("float64")


def lagcorr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """corr(a[t], b[t + lag])."""
    return float(np.corrcoef(a[: a.size - lag], b[lag:])[0, 1])


def test_grid_dims_and_coords(enso):
    assert enso.sst.dims == ("time", "lat", "lon")
    assert enso.sst.shape == (720, 24, 48)
    np.testing.assert_array_equal(enso.lat, np.arange(-55, 61, 5))
    np.testing.assert_array_equal(enso.lon, np.arange(95, 331, 5))
    assert enso.sst.dtype == np.float32
    time = enso.indexes["time"]
    assert str(time[0].date()) == "1950-01-01" and str(time[-1].date()) == "2009-12-01"
    assert (time.day == 1).all() and time.is_monotonic_increasing


def test_cf_attributes(enso):
    assert enso.sst.attrs["units"] == "K"
    assert enso.sst.attrs["standard_name"] == "sea_surface_temperature_anomaly"
    expected = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"}
    assert enso.lat.attrs == expected
    assert enso.lon.attrs["units"] == "degrees_east" and enso.lon.attrs["axis"] == "X"
    assert enso.time.attrs["axis"] == "T"
    assert enso.attrs["source"] == "xearthformer synthetic"
    assert enso.attrs["seed"] == 0
    assert "R(m)" in enso.attrs["equations"] and "title" in enso.attrs
    # cf_xarray finds the axes from the attributes
    import cf_xarray  # noqa: F401

    assert enso.sst.cf.axes == {"T": ["time"], "X": ["lon"], "Y": ["lat"]}


def test_land_is_nan_and_constant_in_time(enso):
    land = enso.sst.isnull()
    assert bool((land == land.isel(time=0)).all())
    first = land.isel(time=0)
    assert bool(first.sel(lat=-25, lon=135))  # Australia
    assert bool(first.sel(lat=-20, lon=300))  # South America
    assert bool(first.sel(lat=40, lon=260))  # North America
    assert not bool(first.sel(lat=slice(-5, 5), lon=slice(190, 240)).any())  # Nino3.4 box is ocean
    assert not bool(first.sel(lat=0, lon=slice(150, 275)).any())  # equatorial Pacific is ocean
    assert 0.1 < float(first.mean()) < 0.4


def test_same_seed_identical_other_seed_different():
    a = synthetic_enso(seed=7, n_years=3)
    xr.testing.assert_identical(a, synthetic_enso(seed=7, n_years=3))
    b = synthetic_enso(seed=8, n_years=3)
    assert not np.allclose(a.sst.fillna(0), b.sst.fillna(0))


def test_options(enso):
    short = synthetic_enso(n_years=2, start="2001-07")
    assert short.sizes["time"] == 24 and str(short.indexes["time"][0].date()) == "2001-07-01"
    absolute = synthetic_enso(n_years=2, anomalies=False)
    assert absolute.sst.attrs["standard_name"] == "sea_surface_temperature"
    assert 270 < float(absolute.sst.min()) and float(absolute.sst.max()) < 310
    warm_pool = absolute.sst.sel(lat=0, lon=150).mean()
    cold_tongue = absolute.sst.sel(lat=0, lon=265).mean()
    assert float(warm_pool - cold_tongue) > 2.0
    assert {"latent_t", "latent_h"} <= set(enso.data_vars)
    assert "latent_t" not in short


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_years": 0},
        {"n_years": 2.5},
        {"start": "not a date"},
        {"start": "1950-01-15"},
        {"parameters": {"bogus": 1.0}},
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(DatasetParameterError):
        synthetic_enso(**kwargs)


def test_nino34_amplitude_skew_and_period(long_enso):
    index = nino34(long_enso)
    assert 0.7 < index.std() < 1.1
    assert abs(index.mean()) < 0.2
    skew = ((index - index.mean()) ** 3).mean() / index.std() ** 3
    assert skew > 0  # warm events stronger than cold ones
    power = np.abs(np.fft.rfft(index - index.mean())) ** 2
    freq = np.fft.rfftfreq(index.size, d=1 / 12)  # cycles per year
    band = (freq >= 1 / 7) & (freq <= 1 / 2)
    assert power[band].sum() / power[1:].sum() > 0.5  # most variance at 2-7 year periods


def test_seasonal_phase_locking(long_enso):
    index = nino34(long_enso)
    month = long_enso.time.dt.month.values
    variance = np.array([index[month == m].var() for m in range(1, 13)])
    assert int(np.argmax(variance)) + 1 in (11, 12, 1)
    assert variance.max() / variance.min() > 1.4


def test_precursor_leads_nino34(long_enso):
    index = nino34(long_enso)
    west = long_enso.sst.sel(lat=slice(-5, 5), lon=slice(150, 170)).mean(("lat", "lon")).values
    assert lagcorr(west, index, 9) > 0.3  # recharge precursor leads by a quarter cycle
    assert lagcorr(west, index, 9) > lagcorr(west, index, 0) + 0.3
    # the box index itself loses its memory within a year: room over persistence
    assert lagcorr(index, index, 1) > 0.8
    assert lagcorr(index, index, 12) < 0.25


def test_field_predicts_beyond_persistence(long_enso):
    """A linear forecast from a few regional means beats persistence of the box index at 9 months."""
    sst = long_enso.sst
    index = nino34(long_enso)
    regions = [
        sst.sel(lat=slice(-5, 5), lon=slice(150, 170)),  # western equatorial Pacific
        sst.sel(lat=slice(10, 15), lon=slice(165, 195)),  # off-equatorial bands
        sst.sel(lat=slice(-15, -10), lon=slice(165, 195)),
    ]
    means = [r.mean(("lat", "lon")).values for r in regions]
    features = np.column_stack([index, *means, np.ones(index.size)])
    lead = 9
    n = index.size - lead
    train = n * 2 // 3
    coef = np.linalg.lstsq(features[:train], index[lead:][:train], rcond=None)[0]
    skill = np.corrcoef(features[train:n] @ coef, index[lead:][train:n])[0, 1]
    persistence = np.corrcoef(index[train:n], index[lead:][train:n])[0, 1]
    assert skill > persistence + 0.2
