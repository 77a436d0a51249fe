"""The accessor's methods are the public functions, bound to the object."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xearthformer
from xearthformer import plot


@pytest.fixture
def forecast() -> xr.DataArray:
    rng = np.random.default_rng(0)
    init = pd.date_range("2000-01-01", periods=1, freq="MS")
    da = xr.DataArray(rng.normal(size=(1, 3, 6, 12)), dims=("init", "lead", "lat", "lon"),
                      coords={"init": init, "lead": [1, 2, 3], "lat": np.linspace(-25, 25, 6),
                              "lon": np.linspace(100, 320, 12)}, name="sst", attrs={"units": "K"})
    da["lead"].attrs["units"] = "months"
    valid = [[pd.Timestamp(i) + pd.DateOffset(months=int(lead)) for lead in da.lead.values] for i in init]
    return da.assign_coords(valid_time=(("init", "lead"), np.array(valid, dtype="datetime64[ns]")))


@pytest.mark.parametrize("name", ["plot_forecast", "plot_ensemble", "plot_scenarios", "plot_index_plume",
                                  "plot_skill", "plot_map", "animate"])
def test_methods_wrap_the_public_functions(name: str) -> None:
    method = getattr(xearthformer.accessor.EarthformerDataArrayAccessor, name)
    assert method.__wrapped__ is getattr(plot, name)
    assert method.__doc__ == getattr(plot, name).__doc__


def test_plot_forecast_through_the_accessor(forecast) -> None:
    fig, axes = forecast.earthformer.plot_forecast(leads=[1, 3])
    assert len(axes) == 2
    assert all(ax.collections for ax in axes)


def test_accessor_errors_come_from_the_function(forecast) -> None:
    with pytest.raises(ValueError, match="lead"):
        forecast.earthformer.plot_forecast(leads=[7])


def test_evaluate_through_the_accessor_equals_the_function() -> None:
    from xearthformer.evaluate import evaluate

    rng = np.random.default_rng(1)
    time = pd.date_range("2000-01-01", periods=36, freq="MS")
    archive = xr.DataArray(rng.normal(size=(36, 4, 6)), dims=("time", "lat", "lon"), name="sst",
                           coords={"time": time, "lat": np.linspace(-10, 10, 4),
                                   "lon": np.linspace(150, 250, 6)})
    via_accessor = archive.earthformer.evaluate("persistence", leads=[1, 2], metrics=["mse"])
    direct = evaluate("persistence", archive, leads=[1, 2], metrics=["mse"])
    xr.testing.assert_identical(via_accessor, direct)
    assert np.isfinite(via_accessor["mse"]).all()
