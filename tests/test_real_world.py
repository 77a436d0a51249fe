"""Archives as users have them (issue 20): every convention of ``tests/corpus.py`` goes through
forecast, ensemble, evaluate, nino34 and a plot, or raises a clear error (HadISST's -1000 sea
ice, a radar grid in nino34)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import xarray as xr

import xearthformer
from xearthformer import _quality as quality
from xearthformer import _reader as reader
from xearthformer.evaluate import evaluate
from xearthformer.metrics import GridError, monthly_climatology, nino34
from xearthformer.zoo.toy import save_toy_model

from corpus import SST_CONVENTIONS, hadisst, radar

matplotlib.use("Agg")
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return save_toy_model(tmp_path_factory.mktemp("models") / "toy-enso", "enso")


def _variable(obj: xr.DataArray | xr.Dataset) -> xr.DataArray:
    return obj if isinstance(obj, xr.DataArray) else obj[reader.data_variables(obj)[0]]


def _plan(obj):
    """What a user does: the variable, decoded, its time dim, and its monthly climatology."""
    da, _ = reader.decode(_variable(obj))
    return da, reader.find_time(da), monthly_climatology(da)


@pytest.mark.parametrize("convention", list(SST_CONVENTIONS))
def test_sst_archive_end_to_end(convention, toy) -> None:
    import matplotlib.pyplot as plt

    from xearthformer.plot import plot_map

    obj = SST_CONVENTIONS[convention]()
    da, time, clim = _plan(obj)
    assert time is not None
    inits = da[time].values[-3:-1]
    fc = xearthformer.forecast(obj, lead=2, model=toy, init=inits, regrid="linear",
                               regrid_back=True, climatology=clim)
    y, x = reader.find_lat(da), reader.find_lon(da)
    # the forecast is on the archive's own grid, in its own dim names, order and units
    np.testing.assert_array_equal(fc[y].values, da[y].values)
    np.testing.assert_array_equal(fc[x].values, da[x].values)
    assert fc.attrs["units"] == da.attrs["units"]
    assert fc.sizes["init"] == 2 and fc["lead"].values.tolist() == [1, 2]
    assert fc.attrs["missing_policy"].startswith("context")
    # NaN where the archive has no data at all (land); values over the tropical Pacific
    land = da.isnull().all(time)
    for d in [d for d in land.dims if d not in (y, x)]:
        land = land.all(d)
    assert bool(fc.where(land).isnull().all())
    pacific = fc.sel({y: slice(-5, 5) if da[y][0] < da[y][-1] else slice(5, -5)})
    assert bool(np.isfinite(pacific.values).any())
    # nino34 of the observations (anomalies against their own climatology: mean ~0 by month)
    index = nino34(da)
    assert index.sizes[time] == da.sizes[time] and bool(np.isfinite(index.values).all())
    assert abs(float(index.mean())) < 0.5
    # nino34 of the forecast against the archive's climatology
    fc_index = nino34(fc, climatology=clim)
    assert bool(np.isfinite(fc_index.values).all())
    # evaluate: a hindcast of two inits through the same forecast, scored on the archive
    def model_fn(context, inits_, leads):
        return xearthformer.forecast(context, lead=leads, model=toy, init=inits_,
                                     regrid="linear", regrid_back=True, climatology=clim)

    scores = evaluate(model_fn, obj, leads=2, metrics=["rmse"], init=da[time].values[-4:-2],
                      context=12)
    assert scores.attrs["n_inits"] == 2 and bool(np.isfinite(scores["rmse"].values).all())
    # a map of the first lead
    field = fc.isel(init=0, lead=0)
    field = field.isel({d: 0 for d in field.dims if d not in (y, x)})
    fig = plot_map(field)
    plt.close(fig if isinstance(fig, plt.Figure) else plt.gcf())


@pytest.mark.parametrize("convention", ["ERA5 (CDS)", "CMIP6 360_day", "Ferret (undecoded TIME)"])
def test_sst_archive_ensemble(convention) -> None:
    obj = SST_CONVENTIONS[convention]()
    da, time, clim = _plan(obj)
    ens = xearthformer.ensemble(obj, n=2, steps=2, lead=2, regrid="linear", climatology=clim,
                                init=da[time].values[-1:], progress=False)
    assert ens.sizes["member"] == 2 and ens.attrs["units"] == da.attrs["units"]
    assert bool(np.isfinite(ens.values).any())


def test_hadisst_sea_ice_value_is_a_clear_error(toy) -> None:
    da = hadisst()  # sea ice written as -1000 C: not missing, not a temperature
    clim = monthly_climatology(da.where(da > -999))
    with pytest.raises(quality.BadValueError, match=r"value\(s\) more than 50 times.*-1000|bad_values="):
        xearthformer.forecast(da, lead=2, model=toy, regrid="linear", climatology=clim)
    masked = xearthformer.forecast(da, lead=2, model=toy, regrid="linear", climatology=clim,
                                   bad_values="mask")
    assert masked.attrs["bad_values_fixed"] > 0
    ok = xearthformer.forecast(da.where(da > -999), lead=2, model=toy, regrid="linear",
                               climatology=clim)
    np.testing.assert_array_equal(masked.values, ok.values)


def test_radar_archive_end_to_end(tmp_path) -> None:
    import matplotlib.pyplot as plt

    from xearthformer.plot import plot_map

    toy = save_toy_model(tmp_path / "toy-storms", "storms")
    c = xearthformer.load_model(toy).card.contract
    grid = {"y": np.arange(c.grid_shape[0]) * 4.0, "x": np.arange(c.grid_shape[1]) * 4.0}
    ds = radar(grid)
    fc = xearthformer.forecast(ds, lead=2, model=toy)  # "VIL" found as the model's "vil"
    assert fc.dims == ("init", "lead", "y", "x") and bool(np.isfinite(fc.values).all())

    def model_fn(context, inits, leads):
        return xearthformer.forecast(context, lead=leads, model=toy, init=inits)

    scores = evaluate(model_fn, ds, leads="5,10", metrics=["csi"], thresholds=[16.0],
                                   context=c.in_len)
    assert "csi" in scores and scores["lead"].attrs["units"] == "minutes"
    with pytest.raises(GridError, match="no latitude and longitude"):
        nino34(ds["VIL"])
    fig = plot_map(fc.isel(init=0, lead=0))
    plt.close(fig if isinstance(fig, plt.Figure) else plt.gcf())
