"""Shared layout helpers: time-step errors name what was found and what is expected."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer._layout import TimeStepError, check_time_step, contiguous_runs, find_dims


def times(values):
    return xr.DataArray(pd.DatetimeIndex(values), dims="time")


def test_sub_monthly_data_say_resample():
    daily = times(pd.date_range("2000-01-01", periods=40, freq="D"))
    with pytest.raises(TimeStepError, match=r"several time steps within one month.*resample"):
        check_time_step(daily, step=1, step_units="months")


def test_mid_month_and_hours_are_monthly():
    stamps = times(["2000-01-16", "2000-02-15T12:00", "2000-03-16", "2000-04-01T06:00"])
    check_time_step(stamps, step=1, step_units="months")


def test_irregular_and_decreasing():
    with pytest.raises(TimeStepError, match=r"regular step of 1 months.*irregular steps of 1, 2"):
        check_time_step(times(["2000-01-01", "2000-02-01", "2000-04-01"]), step=1, step_units="months")
    with pytest.raises(TimeStepError, match="not increasing"):
        check_time_step(times(["2000-03-01", "2000-02-01"]), step=1, step_units="months")
    with pytest.raises(TimeStepError, match="10 minutes"):
        check_time_step(times(pd.date_range("2020-01-01", periods=3, freq="10min")), step=5,
                        step_units="minutes")


def test_runs_split_at_gaps_and_dims_by_cf_attrs():
    t = times(["2000-01-01", "2000-02-01", "2000-05-01", "2000-06-01", "2000-07-01"])
    assert contiguous_runs(t, step=1, step_units="months") == [slice(0, 2), slice(2, 5)]
    da = xr.DataArray(np.zeros((2, 3, 4)), dims=("t", "rows", "cols"),
                      coords={"t": t.values[:2], "rows": ("rows", [0.0, 1, 2], {"standard_name": "latitude"}),
                              "cols": ("cols", [0.0, 1, 2, 3], {"units": "degrees_east"})})
    da["t"].attrs["axis"] = "T"
    assert find_dims(da) == ("t", "rows", "cols") or find_dims(da).time == "t"
    assert (find_dims(da).y, find_dims(da).x) == ("rows", "cols")
