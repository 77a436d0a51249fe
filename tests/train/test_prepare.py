"""The input contract comes from the training split only; bad input gives typed errors."""

from __future__ import annotations

import warnings

import dask.array
import numpy as np
import pytest
import xarray as xr

from xearthformer._layout import MissingDataError, TimeStepError
from xearthformer._precision import reduction_error, sum_error, unit_roundoff
from xearthformer.train import GridMismatchError, NotEnoughDataError, ValidationOverlapWarning
from xearthformer.train.prepare import (
    infer_step,
    prepare_training_data,
    prepare_validation_data,
    select_variable,
)
from xearthformer.train.errors import TrainingError

from .helpers import monthly_sst, radar_events

U32 = unit_roundoff("float32")


def clim_error(sst: xr.DataArray) -> float:
    """Two monthly climatologies of float32 data (means of the 5 Januaries, ..., summed in
    float32 in any order: sum_error) stored as float32 (2u |c| more)."""
    by_month = sst.values.reshape(-1, 12, *sst.shape[1:])
    return float(np.nanmax(sum_error(by_month, axis=0, mean=True))
                 + 2 * U32 * np.nanmax(np.abs(by_month)))


def test_monthly_contract_from_training_split(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    c = prepared.contract
    assert (c.step, c.step_units, c.spatial_dims) == (1, "months", ("lat", "lon"))
    assert c.grid_shape == (4, 8)
    assert c.anomaly and c.units == "K" and c.variables == ("sst",)
    assert c.land_mask.sum() == 1 and c.land_mask[0, 0]
    clim = sst.groupby("time.month").mean("time").values
    tol = clim_error(sst)
    np.testing.assert_allclose(c.climatology[:, 1:, :], clim[:, 1:, :], rtol=0, atol=tol)
    assert c.climatology[:, 0, 0].tolist() == [0.0] * 12  # land
    anomalies = (sst.groupby("time.month") - sst.groupby("time.month").mean("time")).values
    anomalies = anomalies.astype(np.float64)  # float64 statistics of float32 anomalies
    # each anomaly differs by the climatologies' difference (tol) and one float32 rounding of
    # the subtraction (2u |x|); a mean, and a standard deviation (1-Lipschitz in the largest
    # change), move by at most that, plus their float64 sums (2 gamma_n relative)
    move = tol + 2 * U32 * float(np.nanmax(np.abs(sst.values)))
    n = int(np.isfinite(anomalies).sum())
    ocean = anomalies[np.isfinite(anomalies)]
    assert c.offset == pytest.approx(np.nanmean(anomalies), rel=0,
                                     abs=move + float(sum_error(ocean, mean=True)))
    assert c.scale == pytest.approx(np.nanstd(anomalies), rel=2 * reduction_error(n + 2, "float64"),
                                    abs=move)
    np.testing.assert_array_equal(c.coords["lon"], sst["lon"].values)  # copied, not computed


def test_statistics_ignore_the_validation_split(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    other = monthly_sst(seed=5, start="2010-01-01") * 10.0
    other.attrs = sst.attrs
    valid = prepare_validation_data(other, prepared)
    assert valid.contract is prepared.contract
    half = prepare_training_data(sst.isel(time=slice(0, 30)), in_len=4, out_len=3)
    assert half.contract.scale != prepared.contract.scale


def test_dask_input_gives_the_numpy_contract(sst):
    lazy = sst.chunk({"time": 7})
    a = prepare_training_data(sst, in_len=4, out_len=3).contract
    b = prepare_training_data(lazy, in_len=4, out_len=3)
    assert isinstance(b.data.data, dask.array.Array)  # not loaded
    # float64 statistics summed by chunk of 7 months (another order): sum_error of the
    # anomalies (|anomaly| <= 2 max|x|), 2 gamma_n relative for the standard deviation; the
    # float32 climatology as in test_monthly_contract_from_training_split
    values = np.abs(sst.values[np.isfinite(sst.values)].astype(np.float64))
    assert b.contract.offset == pytest.approx(a.offset, rel=0, abs=2 * float(sum_error(values, mean=True)))
    assert b.contract.scale == pytest.approx(a.scale, rel=2 * reduction_error(values.size + 2, "float64"))
    np.testing.assert_allclose(b.contract.climatology, a.climatology, rtol=0, atol=clim_error(sst))


def test_uint8_radar_is_scaled_by_255(radar):
    c = prepare_training_data(radar, in_len=3, out_len=2).contract
    assert (c.offset, c.scale, c.valid_range, c.anomaly) == (0.0, 255.0, (0.0, 255.0), False)
    assert (c.step, c.step_units, c.spatial_dims) == (5, "minutes", ("y", "x"))
    assert c.climatology is None and c.land_mask is None


def test_preprocessing_fills_land_and_normalises(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    values, months = prepared.windows.read(0)
    x = prepared.preprocess(values, months)
    c = prepared.contract
    assert not np.isnan(x).any()
    # float32 arithmetic: a subtraction or two and a division, each rounding by u relative to
    # the largest operand: 4u (|x| + |climatology| + |offset|) / scale
    assert x[0, 0, 0] == pytest.approx((c.fill_value - c.offset) / c.scale, rel=0,
                                       abs=4 * U32 * (abs(c.fill_value) + abs(c.offset)) / c.scale)
    clim = float(c.climatology[months[0] - 1, 1, 1])
    expected = (values[0, 1, 1] - clim - c.offset) / c.scale
    assert x[0, 1, 1] == pytest.approx(expected, rel=0, abs=4 * U32 * (
        abs(float(values[0, 1, 1])) + abs(clim) + abs(c.offset)) / c.scale)


def test_too_little_data_says_how_many_steps(sst):
    with pytest.raises(NotEnoughDataError, match=r"12 \+ 14 = 26 consecutive time steps.*has 20"):
        prepare_training_data(sst.isel(time=slice(0, 20)), in_len=12, out_len=14)


def test_non_monotonic_time(sst):
    shuffled = sst.isel(time=[0, 2, 1, *range(3, 60)])
    with pytest.raises(TimeStepError, match="not increasing"):
        prepare_training_data(shuffled, in_len=4, out_len=3)


def test_nan_outside_land_is_an_error(sst):
    bad = sst.copy()
    bad[5, 2, 3] = np.nan
    bad[9, 2, 3] = np.nan
    with pytest.raises(MissingDataError, match=r"2 NaN value\(s\).*2000-06-01.*lat=2.5, lon=210"):
        prepare_training_data(bad, in_len=4, out_len=3)


def test_nan_outside_land_in_validation(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    bad = monthly_sst(seed=3, start="2010-01-01")
    bad[1, 1, 1] = np.nan
    with pytest.raises(MissingDataError, match="validation"):
        prepare_validation_data(bad, prepared)


def test_overlapping_validation_warns(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    with pytest.warns(ValidationOverlapWarning, match="overlap"):
        prepare_validation_data(sst.isel(time=slice(40, 60)), prepared)
    # another realisation of the same dates is no overlap
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationOverlapWarning)
        prepare_validation_data(monthly_sst(seed=9), prepared)


def test_overlapping_events_warn(radar):
    prepared = prepare_training_data(radar, in_len=3, out_len=2)
    with pytest.warns(ValidationOverlapWarning, match="event"):
        prepare_validation_data(radar.isel(event=[1]), prepared)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationOverlapWarning)
        prepare_validation_data(radar_events(seed=1), prepared)  # same ids, other data


def test_validation_grid_must_match(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    with pytest.raises(GridMismatchError, match="grid"):
        prepare_validation_data(sst.isel(lon=slice(0, 6)), prepared)


def test_fine_tuning_keeps_the_base_contract(sst):
    base = prepare_training_data(sst, in_len=4, out_len=3).contract
    absolute = monthly_sst(seed=2, absolute=True)
    tuned = prepare_training_data(absolute, in_len=4, out_len=3, base=base)
    assert tuned.contract.offset == base.offset and tuned.contract.scale == base.scale
    assert tuned.preprocess.subtract_climatology is False  # base climatology ~0: anomalies


def test_step_and_variable_selection(radar):
    assert infer_step(radar["time"]) == (5, "minutes")
    ds = xr.Dataset({"vil": radar, "other": radar})
    with pytest.raises(TrainingError, match=r"choose the one to train on with var="):
        select_variable(ds, None)
    assert select_variable(ds, "vil").name == "vil"


def test_fine_tuning_checks_nans_against_the_model_land_mask(sst):
    base = prepare_training_data(sst, in_len=4, out_len=3).contract
    more = monthly_sst(seed=2)
    more[:, 3, 3] = np.nan  # land in these data, but not for the model
    with pytest.raises(MissingDataError, match="outside the land mask"):
        prepare_training_data(more, in_len=4, out_len=3, base=base)
