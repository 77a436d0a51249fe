"""forecast(): layout and conventions, grids, units, anomalies, rollout, hindcasts, dask,
climpred/xskillscore, the storms layout, and a typed error for every bad input (issue 4 §5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xearthformer
from xearthformer import forecasting as F
from xearthformer._precision import output_tolerance, unit_roundoff
from xearthformer.zoo import load_model, registry
from xearthformer.zoo.toy import save_toy_model

torch.set_num_threads(2)


def net_tol(model, reference) -> float:
    """Two evaluations of a float32 toy network (another batch size, chunking or CPU: other
    kernels, other summation orders) agree to output_tolerance, in the data's units; an
    input moved by a rounding or two (a unit conversion) stays within that same bound."""
    c = (load_model(model) if not hasattr(model, "card") else model).card.contract
    return output_tolerance(np.asarray(reference), scale=c.scale, offset=c.offset)


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("models")
    return {
        "enso": save_toy_model(root / "toy-enso", "enso"),
        "storms": save_toy_model(root / "toy-storms", "storms"),
        "absolute": save_toy_model(root / "toy-abs", "enso", climatology=290.0, name="toy-abs"),
        "noclim": save_toy_model(root / "toy-noclim", "enso", climatology=None, name="toy-noclim"),
    }


@pytest.fixture(scope="module")
def sst() -> xr.DataArray:
    return xearthformer.tutorial.open_dataset("enso", n_years=4)["sst"]


@pytest.fixture(scope="module")
def vil() -> xr.DataArray:
    return xearthformer.tutorial.open_dataset("storms", n_events=3, size=32, n_frames=12)["vil"]


# --- the contract test, over every model that runs offline --------------------------------------


def _data_for(contract, n_time: int, seed: int = 0) -> xr.DataArray:
    """Seeded data on a contract's grid, step and units (land NaN)."""
    rng = np.random.default_rng(seed)
    h, w = contract.grid_shape
    y, x = contract.spatial_dims
    if contract.step_units == "months":
        time = pd.date_range("2000-01-01", periods=n_time, freq="MS")
    else:
        time = pd.date_range("2020-07-01", periods=n_time, freq=f"{contract.step}min")
    if contract.valid_range is not None:
        values = rng.uniform(*contract.valid_range, size=(n_time, h, w))
    else:
        values = rng.normal(size=(n_time, h, w)) * 0.5
    if contract.land_mask is not None:
        values[:, contract.land_mask] = np.nan
    coords = {"time": time, y: contract.coords.get(y, np.arange(h, dtype=float)),
              x: contract.coords.get(x, np.arange(w, dtype=float))}
    return xr.DataArray(values.astype(np.float32), dims=("time", y, x), coords=coords,
                        name=contract.variables[0], attrs={"units": contract.units})


def _offline_models() -> list:
    """Embedded demo Earthformers (PreDiff ones go through ensemble()), tiny random models,
    and the official ICAR-ENSO configuration with the golden weights placed locally."""
    names = [n for n, e in registry.entries().items()
             if e.source == "demo" and e.kind == "earthformer"]
    return names + ["toy-enso", "toy-storms", "earthformer-icar-enso (golden weights)"]


@pytest.mark.parametrize("name", _offline_models())
def test_contract(name, toy, request) -> None:
    if name.startswith("toy-"):
        model = load_model(toy[name[4:]])
    elif name.startswith("earthformer-icar-enso"):
        golden = request.getfixturevalue("golden_dir")
        model = load_model("earthformer-icar-enso",
                           weights=golden / "earthformer" / "enso_full" / "state_dict.pt")
    else:
        model = load_model(name)
    c = model.card.contract
    data = _data_for(c, c.in_len + 2)
    fc = xearthformer.forecast(data, lead=c.out_len + 1, model=model, init=data.time[-2:])
    y, x = c.spatial_dims
    assert fc.dims == ("init", "lead", y, x)
    assert fc.dtype == np.float32 and fc.sizes["init"] == 2
    assert fc["lead"].values.tolist() == [c.step * k for k in range(1, c.out_len + 2)]
    assert fc["lead"].attrs["units"] == c.step_units
    assert fc["valid_time"].dims == ("init", "lead")
    land = np.isnan(data.isel(time=0).values)
    assert np.isnan(fc.values[..., land]).all() and np.isfinite(fc.values[..., ~land]).all()
    for dim in (y, x):
        xr.testing.assert_identical(fc[dim], data[dim])
    if c.valid_range is not None:
        assert float(fc.min()) >= c.valid_range[0] and float(fc.max()) <= c.valid_range[1]
    assert fc.attrs["checkpoint_sha256"] == model.sha256


# --- layout and conventions -----------------------------------------------------------------------


def test_layout_coords_attrs_and_provenance(sst, toy) -> None:
    fc = xearthformer.forecast(sst, lead=3, model=toy["enso"], seed=7)
    assert fc.dims == ("init", "lead", "lat", "lon") and fc.name == "sst"
    assert fc["init"].values[0] == sst["time"].values[-1]
    assert fc["init"].attrs["standard_name"] == "forecast_reference_time"
    assert fc["lead"].attrs == {"units": "months", "standard_name": "forecast_period",
                                "long_name": "lead time in months"}
    np.testing.assert_array_equal(fc["valid_time"].values[0].astype("datetime64[D]"),
                                  np.array(["1954-01-01", "1954-02-01", "1954-03-01"],
                                           dtype="datetime64[D]"))
    xr.testing.assert_identical(fc["lat"], sst["lat"])
    xr.testing.assert_identical(fc["lon"], sst["lon"])
    for key, value in sst.attrs.items():
        assert fc.attrs[key] == value
    for key in ("forecast_model", "checkpoint_sha256", "xearthformer_version", "seed", "device",
                "rollout", "history", "input_kind"):
        assert key in fc.attrs
    assert fc.attrs["seed"] == 7 and fc.attrs["rollout"] == "none"
    assert "xearthformer" in fc.attrs["history"] and "forecast(" in fc.attrs["history"]
    land = sst.isel(time=0).isnull().values
    assert fc.isel(init=0, lead=0).isnull().values[land].all()
    assert not fc.isel(init=0, lead=0).isnull().values[~land].any()


def test_rollout_continues_the_first_window(sst, toy) -> None:
    short = xearthformer.forecast(sst, lead=6, model=toy["enso"])
    long = xearthformer.forecast(sst, lead=14, model=toy["enso"])
    assert "3 model calls" in long.attrs["rollout"]
    tol = net_tol(toy["enso"], long)
    xr.testing.assert_allclose(long.isel(lead=slice(0, 6)).drop_attrs(), short.drop_attrs(),
                               rtol=0, atol=tol)
    picked = xearthformer.forecast(sst, lead=[1, 3, 8], model=toy["enso"])
    xr.testing.assert_allclose(picked.drop_attrs(), long.sel(lead=[1, 3, 8]).drop_attrs(),
                               rtol=0, atol=tol)


def test_hindcast_inits_are_independent_of_batching(sst, toy) -> None:
    inits = sst.time.values[20:27]
    many = xearthformer.forecast(sst, lead=2, model=toy["enso"], init=inits, batch_size=3)
    np.testing.assert_array_equal(many["init"].values, inits)
    one = xearthformer.forecast(sst, lead=2, model=toy["enso"], init=inits[4])
    xr.testing.assert_allclose(many.isel(init=[4]).drop_attrs(), one.drop_attrs(), rtol=0,
                               atol=net_tol(toy["enso"], one))
    ranged = xearthformer.forecast(sst, lead=2, model=toy["enso"], init=slice("1950-06", "1951-03"))
    assert str(ranged["init"].values[0])[:7] == "1950-12"  # the first with a full context
    assert ranged.sizes["init"] == 4
    mid_month = sst.assign_coords(time=sst.time + np.timedelta64(14, "D") + np.timedelta64(5, "h"))
    again = xearthformer.forecast(mid_month, lead=2, model=toy["enso"], init=["1953-12"])
    last = xearthformer.forecast(sst, lead=2, model=toy["enso"])
    np.testing.assert_allclose(again.values, last.values, rtol=0, atol=net_tol(toy["enso"], last))


def test_longitude_conventions_and_latitude_order(sst, toy) -> None:
    ref = xearthformer.forecast(sst, lead=2, model=toy["enso"])
    flipped = sst.assign_coords(lon=((sst.lon + 180) % 360) - 180).sortby("lon").isel(
        lat=slice(None, None, -1))
    fc = xearthformer.forecast(flipped, lead=2, model=toy["enso"])
    xr.testing.assert_identical(fc["lat"], flipped["lat"])
    xr.testing.assert_identical(fc["lon"], flipped["lon"])
    back = fc.assign_coords(lon=fc.lon % 360).sortby("lon").sortby("lat")
    tol = net_tol(toy["enso"], ref)
    xr.testing.assert_allclose(back.drop_attrs(), ref.drop_attrs(), rtol=0, atol=tol)
    beyond = sst.reindex(lon=np.arange(0, 360, 5.0)).assign_coords(lon=np.arange(360, 720, 5.0))
    fb = xearthformer.forecast(beyond, lead=2, model=toy["enso"])
    np.testing.assert_allclose(fb.values, ref.values, rtol=0, atol=tol)
    full = xearthformer.forecast(beyond, lead=2, model=toy["enso"], regrid_back=True)
    assert full.sizes["lon"] == 72
    outside = (full.lon < 455) | (full.lon > 690)
    assert full.sel(lon=outside).isnull().all()


def test_regrid(sst, toy) -> None:
    filled = sst.fillna(0.0)
    other = filled.interp(lat=np.arange(-58.5, 63, 3.0), lon=np.arange(91.5, 334, 3.0),
                          kwargs={"fill_value": "extrapolate"})
    with pytest.raises(F.GridError, match=r"lat -55..60 \(step 5, 24 points\)"):
        xearthformer.forecast(other, lead=2, model=toy["enso"])
    fc = xearthformer.forecast(other, lead=2, model=toy["enso"], regrid="linear")
    assert fc.sizes["lat"] == 24 and "regridded (linear)" in fc.attrs["preprocessing"]
    back = xearthformer.forecast(other, lead=2, model=toy["enso"], regrid="nearest",
                                 regrid_back=True)
    assert back.sizes["lat"] == other.sizes["lat"] and back.sizes["lon"] == other.sizes["lon"]
    assert back.sel(lat=-58.5).isnull().all()  # outside the model's domain
    try:
        import xesmf  # noqa: F401
    except ImportError:
        with pytest.raises(F.RegridDependencyError, match="xesmf"):
            xearthformer.forecast(other, lead=2, model=toy["enso"], regrid="conservative")
    with pytest.raises(F.GridError, match="do not cover"):
        xearthformer.forecast(other.sel(lat=slice(-20, 20)), lead=2, model=toy["enso"],
                              regrid="linear")


def test_units(sst, toy) -> None:
    ref = xearthformer.forecast(sst, lead=2, model=toy["enso"])
    celsius = sst.assign_attrs(units="degC")
    fc = xearthformer.forecast(celsius, lead=2, model=toy["enso"])
    assert fc.attrs["units"] == "degC" and "converted from degC to K" in fc.attrs["preprocessing"]
    # degC -> K rounds each input once (2u * 300 K), within the network's float32 bound
    np.testing.assert_allclose(fc.values, ref.values, rtol=0, atol=net_tol(toy["enso"], ref))
    with pytest.raises(F.UnitsError, match="units="):
        xearthformer.forecast(sst.assign_attrs(units="furlongs"), lead=2, model=toy["enso"])
    ok = xearthformer.forecast(sst.assign_attrs(units="furlongs"), lead=2, model=toy["enso"],
                               units="K")
    np.testing.assert_allclose(ok.values, ref.values, rtol=0, atol=net_tol(toy["enso"], ref))


def test_absolute_input_gives_absolute_output(sst, toy) -> None:
    model = load_model(toy["absolute"])
    clim = model.card.contract.climatology
    months = sst.time.dt.month.values - 1
    absolute = sst + xr.DataArray(clim[months], dims=sst.dims, coords=sst.coords)
    absolute.attrs = sst.attrs
    fc_abs = xearthformer.forecast(absolute, lead=3, model=model)
    fc_anom = xearthformer.forecast(sst, lead=3, model=model)
    assert fc_abs.attrs["input_kind"] == "absolute" and fc_anom.attrs["input_kind"] == "anomalies"
    valid_months = fc_abs.valid_time.dt.month.values[0] - 1
    # the network's float32 bound on the anomalies, plus float32 roundings of adding and
    # removing the ~290 K climatology and 273.15 (2u |x| each, four of them)
    tol = net_tol(model, fc_anom) + 8 * unit_roundoff("float32") * float(np.nanmax(np.abs(fc_abs)))
    np.testing.assert_allclose(fc_abs.values[0] - clim[valid_months], fc_anom.values[0],
                               rtol=0, atol=tol)
    celsius = (absolute - 273.15).assign_attrs(units="degC")
    fc_c = xearthformer.forecast(celsius, lead=3, model=model)
    np.testing.assert_allclose(fc_c.values, fc_abs.values - 273.15, rtol=0, atol=tol)
    user_clim = xr.DataArray(clim, dims=("month", "lat", "lon"),
                             coords={"month": np.arange(1, 13), "lat": sst.lat, "lon": sst.lon})
    noclim = load_model(toy["noclim"])
    with pytest.raises(F.AnomalyError, match="climatology="):
        xearthformer.forecast(absolute, lead=3, model=noclim)
    given = xearthformer.forecast(absolute, lead=3, model=noclim, climatology=user_clim)
    np.testing.assert_allclose(given.values, fc_abs.values, rtol=0, atol=tol)


def test_dask_in_dask_out_lazily(sst, toy) -> None:
    import dask

    eager = xearthformer.forecast(sst, lead=7, model=toy["enso"], init=sst.time.values[30:40])

    def refuse(*args, **kwargs):
        raise AssertionError("computed while building the forecast")

    with dask.config.set(scheduler=refuse):
        lazy = xearthformer.forecast(sst.chunk(time=10), lead=7, model=str(toy["enso"]),
                                     init=sst.time.values[30:40], batch_size=4)
    assert isinstance(lazy.data, dask.array.Array) and lazy.data.numblocks[0] == 3
    # batches of 4 instead of 10: the same maths, but the full-resolution convolutions run
    # over other chunks of frames (other oneDNN kernels), so float32 rounding differs
    xr.testing.assert_allclose(lazy.compute(), eager, rtol=0, atol=net_tol(toy["enso"], eager))


def test_climpred_and_xskillscore_take_the_output(sst, toy, cf_standard_name_table) -> None:
    import climpred  # the test extra installs it
    import xskillscore as xs

    fc = xearthformer.forecast(sst, lead=3, model=toy["enso"], init=slice("1951", "1952"))
    hindcast = climpred.HindcastEnsemble(fc).add_observations(sst)
    skill = hindcast.verify(metric="rmse", comparison="e2o", dim="init", alignment="same_inits")
    assert set(skill["sst"].dims) >= {"lead", "lat", "lon"}
    assert np.isfinite(skill["sst"].values).any()
    obs = sst.sel(time=fc["valid_time"])
    rmse = xs.rmse(fc, obs, dim=["init", "lat", "lon"], skipna=True)
    assert rmse.dims == ("lead",) and np.isfinite(rmse).all()


def test_storms_one_event_and_many(vil, toy) -> None:
    one = xearthformer.forecast(vil.isel(event=0), lead=3, model=toy["storms"])
    assert one.dims == ("init", "lead", "y", "x")
    assert one["init"].values[0] == vil.time.values[-1]
    assert one["lead"].values.tolist() == [5, 10, 15]
    assert one["valid_time"].values[0, 0] == vil.time.values[-1] + np.timedelta64(5, "m")
    assert float(one.min()) >= 0 and float(one.max()) <= 255
    many = xearthformer.forecast(vil, lead=3, model=toy["storms"])
    assert many.dims == ("event", "init", "lead", "y", "x")
    xr.testing.assert_identical(many["event"], vil["event"])
    assert "event_time" in many.coords
    # the same forecast, batched or not, to float32 rounding (oneDNN's channels-last convolutions
    # block their work by batch size): the network's bound on the 0..255 scale
    xr.testing.assert_allclose(many.isel(event=0).drop_attrs(), one.drop_attrs(), rtol=0,
                               atol=net_tol(toy["storms"], one))


def test_image_grid_with_coordinates(vil, tmp_path) -> None:
    from xearthformer.models import Earthformer
    from xearthformer.zoo.model_dir import InputContract, ModelCard, save_model_dir
    from xearthformer.zoo.toy import toy_kwargs

    contract = InputContract(
        variables=("vil",), in_len=7, out_len=6, step=5, step_units="minutes",
        spatial_dims=("y", "x"), grid_shape=(32, 32),
        coords={"y": vil.y.values, "x": vil.x.values}, units="1", scale=255.0,
        valid_range=(0, 255))
    kwargs = toy_kwargs(7, 6, 32, 32)
    card = ModelCard(name="grid-storms", kind="earthformer", official_kwargs=kwargs,
                     contract=contract)
    path = save_model_dir(tmp_path / "m", card, Earthformer.from_official_kwargs(kwargs).state_dict())
    fc = xearthformer.forecast(vil, lead=2, model=path)
    xr.testing.assert_identical(fc["x"], vil["x"])
    with pytest.raises(F.GridError, match=r"x 2..126 \(step 4, 32 points\)"):
        xearthformer.forecast(vil.isel(x=slice(1, None)), lead=2, model=path)
    with pytest.raises(F.TimeStepError, match="regular step of 5 minutes"):
        xearthformer.forecast(vil.isel(time=slice(None, None, 2)), lead=2, model=path)


def test_dataset_and_accessor(sst, toy) -> None:
    ds = sst.to_dataset()
    ref = xearthformer.forecast(sst, lead=2, model=toy["enso"])
    via_ds = xearthformer.forecast(ds, lead=2, model=toy["enso"])
    tol = net_tol(toy["enso"], ref)
    xr.testing.assert_allclose(via_ds.drop_attrs(), ref.drop_attrs(), rtol=0, atol=tol)
    renamed = ds.rename(sst="tos")
    renamed["tos"].attrs.pop("standard_name", None)
    with pytest.raises(F.MissingVariableError, match=r"lacks the variable\(s\) \['sst'\]"):
        xearthformer.forecast(renamed, lead=2, model=toy["enso"])
    cmip = renamed.assign(time_bnds=renamed["tos"].isel(lat=0, lon=0, drop=True))
    cmip["tos"].attrs["standard_name"] = "sea_surface_temperature"  # CF says what it is
    np.testing.assert_allclose(xearthformer.forecast(cmip, lead=2, model=toy["enso"]).values,
                               ref.values)
    by_var = xearthformer.forecast(renamed, lead=2, model=toy["enso"], var="tos")
    np.testing.assert_allclose(by_var.values, ref.values, rtol=0, atol=tol)
    accessed = sst.earthformer.forecast(lead=2, model=toy["enso"])
    xr.testing.assert_allclose(accessed.drop_attrs(), ref.drop_attrs(), rtol=0, atol=tol)
    np.testing.assert_allclose(ds.earthformer.forecast(lead=2, model=toy["enso"]).values,
                               ref.values, rtol=0, atol=tol)
    from xearthformer.accessor import EarthformerDataArrayAccessor

    assert EarthformerDataArrayAccessor.forecast.__wrapped__ is F.forecast
    assert EarthformerDataArrayAccessor.forecast.__doc__ == F.forecast.__doc__
    from xearthformer import ensembles

    assert EarthformerDataArrayAccessor.ensemble.__wrapped__ is ensembles.ensemble
    with pytest.raises(F.ModelKindError, match="needs a PreDiff model"):
        sst.earthformer.ensemble(lead=2, model=toy["enso"])


def test_evaluate_runs_the_model(sst, toy) -> None:
    from xearthformer.evaluate import evaluate

    scores = evaluate(str(toy["enso"]), sst, leads=3, metrics=["rmse"],  # context: the model's 12
                      init=sst.time.values[20:30], chunk_size=4)
    fc = xearthformer.forecast(sst, lead=3, model=toy["enso"], init=sst.time.values[20:30])
    err = (fc - sst.sel(time=fc.valid_time)) ** 2
    expected = np.sqrt(err.mean(["init", "lat", "lon"], skipna=True))
    # evaluate runs the model in chunks of 4 inits: each value within net_tol, and an RMSE
    # moves by at most the largest change of its terms (float64 sums: 1e-13, below that)
    np.testing.assert_allclose(scores["rmse"].values, expected.values, rtol=0,
                               atol=net_tol(toy["enso"], fc))


# --- bad input: each a typed error (issue 4 §5) --------------------------------------------------


def test_bad_input(sst, toy) -> None:
    m = toy["enso"]
    with pytest.raises(F.MissingDimError, match="no time dimension"):
        xearthformer.forecast(sst.isel(time=0), lead=2, model=m)
    with pytest.raises(F.MissingDataError, match="context of 12"):
        xearthformer.forecast(sst.isel(time=slice(0, 5)), lead=2, model=m)
    with pytest.raises(F.TimeStepError, match="regular step of 1 months"):
        xearthformer.forecast(sst.drop_sel(time=sst.time.values[[20]]), lead=2, model=m)
    with pytest.raises(F.GridError, match="model's grid"):
        xearthformer.forecast(sst.isel(lon=slice(0, 40)), lead=2, model=m)
    no_space = xr.DataArray(sst.values, dims=("time", "a", "b"), coords={"time": sst.time})
    with pytest.raises(F.MissingDimError, match="no latitude/y and no longitude/x"):
        xearthformer.forecast(no_space, lead=2, model=m)
    all_nan = sst.copy()
    all_nan[-12:] = np.nan
    with pytest.raises(F.MissingDataError, match="entirely NaN"):
        xearthformer.forecast(all_nan, lead=2, model=m)
    holey = sst.copy()
    holey[-3, 12, 30] = np.nan
    with pytest.raises(F.MissingDataError, match="1 missing value"):  # the strict policy
        xearthformer.forecast(holey, lead=2, model=m, missing="strict")
    with pytest.raises(F.DtypeError, match="astype"):
        xearthformer.forecast(sst.fillna(0).astype(int), lead=2, model=m)
    with pytest.raises(F.DtypeError, match="dtype <U"):
        xearthformer.forecast(sst.fillna(0).astype(str), lead=2, model=m)
    with pytest.raises(ValueError, match="Did you mean 'earthformer-icar-enso'"):
        xearthformer.forecast(sst, lead=2, model="earthformer-icar-ensoo")
    with pytest.raises(F.MissingVariableError, match="sst"):
        xearthformer.forecast(sst.rename("tos").to_dataset(), lead=2, model=m)
    for bad in (0, -3, [0, 1], [2, -1], 1.5):
        with pytest.raises(F.LeadError, match="lead"):
            xearthformer.forecast(sst, lead=bad, model=m)
    with pytest.raises(F.InitError, match="not times of the data"):
        xearthformer.forecast(sst, lead=2, model=m, init=["1990-01"])
    with pytest.raises(F.InitError, match="lack a full context"):
        xearthformer.forecast(sst, lead=2, model=m, init=["1950-03"])
    for error in (F.MissingDimError, F.GridError, F.DtypeError, F.LeadError, F.InitError):
        assert issubclass(error, ValueError)


def test_anomalies_true_matches_the_default_for_anomaly_trained_models(sst, toy) -> None:
    # the toy ENSO model stores a small residual climatology (0.01 K cosine), as fit() does
    # for anomaly training data: anomalies=True must treat it exactly as the default does
    default = xearthformer.forecast(sst, lead=3, model=toy["enso"])
    explicit = xearthformer.forecast(sst, lead=3, model=toy["enso"], anomalies=True)
    xr.testing.assert_allclose(default, explicit, rtol=0, atol=net_tol(toy["enso"], default))
