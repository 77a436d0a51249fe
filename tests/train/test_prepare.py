"""The input contract comes from the training split only; bad input gives typed errors."""

from __future__ import annotations

import warnings

import dask.array
import numpy as np
import pytest
import xarray as xr

from xearthformer._layout import MissingDataError, TimeStepError
from xearthformer.train import GridMismatchError, NotEnoughDataError, ValidationOverlapWarning
from xearthformer.train.prepare import (
    infer_step,
    prepare_training_data,
    prepare_validation_data,
    select_variable,
)
from xearthformer.train.errors import TrainingError

from .helpers import monthly_sst, radar_events


def test_monthly_contract_from_training_split(sst):
    prepared = prepare_training_data(sst, in_len=4, out_len=3)
    c = prepared.contract
    assert (c.step, c.step_units, c.spatial_dims) == (1, "months", ("lat", "lon"))
    assert c.grid_shape == (4, 8)
    assert c.anomaly and c.units == "K" and c.variables == ("sst",)
    assert c.land_mask.sum() == 1 and c.land_mask[0, 0]
    clim = sst.groupby("time.month").mean("time").values
    np.testing.assert_allclose(c.climatology[:, 1:, :], clim[:, 1:, :], rtol=1e-5, atol=1e-6)
    assert c.climatology[:, 0, 0].tolist() == [0.0] * 12  # land
    anomalies = (sst.groupby("time.month") - sst.groupby("time.month").mean("time")).values
    assert c.offset == pytest.approx(np.nanmean(anomalies), abs=1e-6)
    assert c.scale == pytest.approx(np.nanstd(anomalies), rel=1e-5)
    np.testing.assert_allclose(c.coords["lon"], sst["lon"].values)


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
    assert b.contract.offset == pytest.approx(a.offset, abs=1e-9)
    assert b.contract.scale == pytest.approx(a.scale, rel=1e-9)
    np.testing.assert_allclose(b.contract.climatology, a.climatology, rtol=1e-6)


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
    assert x[0, 0, 0] == pytest.approx((c.fill_value - c.offset) / c.scale)
    expected = (values[0, 1, 1] - c.climatology[months[0] - 1, 1, 1] - c.offset) / c.scale
    assert x[0, 1, 1] == pytest.approx(expected, rel=1e-5)


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
