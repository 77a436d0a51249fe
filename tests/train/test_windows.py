"""Windows never cross gaps or events, are read lazily, and the sampler is a pure function."""

from __future__ import annotations

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer.train.windows import (
    StepBatches,
    WindowDataset,
    WindowSampler,
    WindowSet,
    rank_share,
)

from .helpers import radar_events


def _with_gap() -> xr.DataArray:
    t = pd.date_range("2000-01-01", periods=20, freq="MS").delete([7, 8])  # gap after Jul
    values = np.arange(t.size, dtype=float)[:, None, None] * np.ones((1, 2, 3))
    return xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": t})


def test_windows_never_cross_a_gap():
    da = _with_gap()
    windows = WindowSet.from_dataarray(da, window=4, step=1, step_units="months")
    # runs of 7 and 11 months -> 4 + 8 windows
    assert len(windows) == 12
    for i in range(len(windows)):
        values, months = windows.read(i)
        stamps = da["time"].values[windows.selection(i)["time"]]
        steps = np.diff(pd.DatetimeIndex(stamps).to_period("M").asi8)
        assert np.all(steps == 1), stamps
        assert values.shape == (4, 2, 3)
        assert months.tolist() == pd.DatetimeIndex(stamps).month.tolist()


def test_windows_never_cross_events():
    da = radar_events(n_events=3, n_time=6)
    windows = WindowSet.from_dataarray(da, window=4, step=5, step_units="minutes")
    assert len(windows) == 3 * 3
    for i in range(len(windows)):
        sel = windows.selection(i)
        values, months = windows.read(i)
        expected = da.isel(sel).values
        assert months is None
        np.testing.assert_array_equal(values, expected)
        assert isinstance(sel["event"], int)  # one event per window


def test_too_short_runs_give_no_windows():
    da = _with_gap()
    windows = WindowSet.from_dataarray(da, window=12, step=1, step_units="months")
    assert len(windows) == 0 and windows.longest_run == 11


def test_dask_input_reads_only_the_drawn_window():
    touched: list[int] = []

    def block(block_id=None):
        touched.append(block_id[0])
        return np.full((1, 2, 3), float(block_id[0]))

    data = dask.array.map_blocks(block, chunks=((1,) * 30, (2,), (3,)), dtype=float)
    t = pd.date_range("2000-01-01", periods=30, freq="MS")
    da = xr.DataArray(data, dims=("time", "lat", "lon"), coords={"time": t})
    windows = WindowSet.from_dataarray(da, window=5, step=1, step_units="months")
    assert touched == [] and len(windows) == 26
    values, _ = windows.read(10)
    assert sorted(touched) == [10, 11, 12, 13, 14]
    assert values[:, 0, 0].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]


def test_sampler_is_a_function_of_seed_and_step():
    a, b = WindowSampler(10, 4, seed=3), WindowSampler(10, 4, seed=3)
    first = [a.batch(s).tolist() for s in range(6)]
    order = (5, 0, 3, 1, 2, 4)
    assert [b.batch(s).tolist() for s in order] == [first[i] for i in order]
    stream = np.concatenate(first)  # 24 draws = 2 full epochs + 4
    assert sorted(stream[:10].tolist()) == list(range(10))
    assert sorted(stream[10:20].tolist()) == list(range(10))
    assert WindowSampler(10, 4, seed=4).batch(0).tolist() != first[0]


def test_ranks_split_the_global_batch():
    sampler = WindowSampler(10, 4, seed=0)
    shares = [list(StepBatches(sampler, 2, 4, rank=r, world_size=2)) for r in range(2)]
    for k, step in enumerate((2, 3)):
        assert shares[0][k] + shares[1][k] == sampler.batch(step).tolist()
    assert rank_share(np.arange(6), 1, 3).tolist() == [2, 3]


def test_dataset_items_split_context_and_target():
    da = _with_gap()
    windows = WindowSet.from_dataarray(da, window=4, step=1, step_units="months")
    ds = WindowDataset(windows, 3, lambda v, m: v)
    x, y = ds[0]
    assert tuple(x.shape) == (3, 2, 3, 1) and tuple(y.shape) == (1, 2, 3, 1)
    assert x[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0] and y[0, 0, 0, 0].item() == 3.0


def test_sampler_needs_windows():
    with pytest.raises(ValueError):
        WindowSampler(0, 4, seed=0)
