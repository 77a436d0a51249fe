"""The ``earthformer-earthnet2021`` zoo entry: the official checkpoint layout, loaded and used
through ``ds.earthformer.forecast`` with the drivers taken from the Dataset by name.

Loading is checked with the golden tiny model (official code, seeded weights; see
``scripts/make_earthnet_goldens.py``) saved as the official file and an entry whose
configuration is the tiny one. The accessor's forecast is compared with the golden-checked
module called on tensors this test builds itself (drivers resized by an independent numpy
nearest-neighbour index), so ordering, time selection and resizing of the drivers are checked.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xearthformer  # noqa: F401  (registers the accessor)
from xearthformer._precision import golden_tolerance
from xearthformer._drivers import DriverError
from xearthformer.forecasting import GridError, LeadError
from xearthformer.zoo import WeightsUnavailableError, clear_cache, load_model, registry

NAME = "earthformer-earthnet2021"
DATA = Path(__file__).resolve().parents[1] / "data" / "earthnet2021" / "earthnet_tiny"
#: the golden README's float32 tolerance, relative to max(1, absmax); derived in _precision
TOL32 = golden_tolerance("float32")
STEP = np.timedelta64(5, "D")


def _scaled_error(y, ref) -> float:
    y, ref = np.asarray(y, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(y - ref).max() / max(1.0, np.abs(ref).max()))


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The entry with the tiny golden configuration (4 -> 6 frames of 16 x 16) and its weights
    written as a plain float32 state_dict (the released layout)."""
    info = json.loads((DATA / "info.json").read_text())
    read = registry._read_config
    monkeypatch.setattr(registry, "_read_config",
                        lambda name: info["kwargs"] if name == "earthformer_earthnet2021.json" else read(name))
    official = registry._earthnet_contract()
    entry = dataclasses.replace(
        registry.get_entry(NAME),
        _contract=lambda: dataclasses.replace(official, in_len=4, out_len=6, grid_shape=(16, 16)))
    monkeypatch.setitem(registry._OFFICIAL, NAME, entry)
    state = torch.load(DATA / "state_dict_fp16.pt", weights_only=True)
    path = tmp_path / "earthformer_earthnet2021.pt"
    torch.save({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}, path)
    clear_cache()
    yield path
    clear_cache()


def test_entry_is_listed_with_its_drivers() -> None:
    row = {r["name"]: r for r in xearthformer.list_models()}[NAME]
    assert row["variables"] == "blue,green,red,nir" and (row["in_len"], row["out_len"]) == (10, 20)
    assert row["grid"] == "128 x 128 (y, x)" and row["url"].endswith("earthformer_earthnet2021.pt")
    aux = registry.get_entry(NAME).contract().auxiliary
    assert aux["order"] == ["elevation", "precipitation", "sea_level_pressure", "mean_temperature",
                            "min_temperature", "max_temperature", "meso_elevation"]
    assert set(aux["static"]) | set(aux["dynamic"]) == set(aux["order"])
    assert registry.official_kwargs(NAME)["auxiliary_channels"] == len(aux["order"])


def test_checkpoint_loads_strictly_and_reproduces_the_official_output(tiny, monkeypatch) -> None:
    model = load_model(NAME, weights=tiny)
    monkeypatch.setenv("XEARTHFORMER_CACHE", str(tiny.parent))
    monkeypatch.setenv("XEARTHFORMER_OFFLINE", "1")
    assert load_model(NAME).sha256 == model.sha256  # the file placed in the cache
    inputs = torch.load(DATA / "inputs.pt", weights_only=True)
    with torch.no_grad():
        y = model.module(**inputs)
    assert _scaled_error(y, torch.load(DATA / "output.pt", weights_only=True)) <= TOL32


def test_offline_without_the_file_names_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XEARTHFORMER_CACHE", str(tmp_path))
    monkeypatch.setenv("XEARTHFORMER_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="earthformer_earthnet2021.pt"):
        load_model(NAME)


def _cube(n_times: int = 6, meso_days: int = 60) -> xr.Dataset:
    """Two cubes: 4 bands on 16 x 16 every 5 days, daily meso drivers on 5 x 7."""
    rng = np.random.default_rng(0)
    time = pd.date_range("2018-06-01", periods=n_times, freq="5D")
    day = pd.date_range("2018-06-01", periods=meso_days, freq="D")
    y, x = np.arange(16.0) * 20, np.arange(16.0) * 20
    ds = xr.Dataset(coords={"cube": ["a", "b"], "time": time, "y": y, "x": x, "time_meso": day,
                            "y_meso": np.arange(5.0) * 1280, "x_meso": np.arange(7.0) * 1280})
    for band in ("blue", "green", "red", "nir"):
        ds[band] = (("cube", "time", "y", "x"), rng.uniform(0, 1, (2, n_times, 16, 16)).astype(np.float32),
                    {"units": "1"})
    ds["elevation"] = (("cube", "y", "x"), rng.normal(0, 1, (2, 16, 16)))
    for name in ("precipitation", "sea_level_pressure", "mean_temperature", "min_temperature",
                 "max_temperature"):
        ds[name] = (("cube", "time_meso", "y_meso", "x_meso"), rng.normal(0, 1, (2, meso_days, 5, 7)))
    ds["meso_elevation"] = (("y_meso", "x_meso"), rng.normal(0, 1, (5, 7)))  # shared by the cubes
    ds["blue"][0, 2, 3, 4] = np.nan  # a cloud gap: filled with 0 as officially
    return ds


def _nearest(src: np.ndarray, size: int) -> np.ndarray:
    """Legacy nearest index (torch 'nearest'): floor(dst * in / out)."""
    return np.floor(np.arange(size) * (src / size)).astype(int)


def _expected_tensors(ds: xr.Dataset, init: np.datetime64, in_len: int, out_len: int):
    times = init + np.arange(1 - in_len, out_len + 1) * STEP
    iy, ix = _nearest(5, 16), _nearest(7, 16)
    channels = []
    for name in registry.EARTHNET_AUX_ORDER:
        da = ds[name]
        if "time_meso" in da.dims:
            v = da.sel(time_meso=times).values[..., iy[:, None], ix[None, :]]
        elif "y_meso" in da.dims:  # static, meso grid, shared by the cubes
            v = np.broadcast_to(da.values[iy[:, None], ix[None, :]], (2, len(times), 16, 16))
        else:  # static, frame grid
            v = np.broadcast_to(da.values[:, None], (2, len(times), 16, 16))
        channels.append(v)
    aux = torch.from_numpy(np.stack(channels, axis=-1).astype(np.float32))
    frames = ds[["blue", "green", "red", "nir"]].to_array("c").transpose("cube", "time", "y", "x", "c")
    x = frames.sel(time=slice(None, init)).values[:, -in_len:]
    x = torch.from_numpy(np.clip(np.nan_to_num(x, nan=0.0), 0, 1).astype(np.float32))
    return x, aux[:, :in_len], aux[:, in_len:]


def test_accessor_forecast_takes_the_drivers_from_the_dataset(tiny) -> None:
    ds = _cube()
    fc = ds.earthformer.forecast(lead=6, model=NAME, weights=tiny, init=ds.time[3:5])
    assert isinstance(fc, xr.Dataset) and set(fc.data_vars) == {"blue", "green", "red", "nir"}
    assert dict(fc.sizes) == {"cube": 2, "init": 2, "lead": 6, "y": 16, "x": 16}
    assert fc["lead"].attrs["units"] == "minutes" and fc["lead"].values[0] == 7200
    assert fc["valid_time"].values[0, 0] == ds.time.values[3] + STEP
    np.testing.assert_array_equal(fc["y"].values, ds["y"].values)
    assert "meso_elevation" in fc["blue"].attrs["drivers"]
    model = load_model(NAME, weights=tiny)
    for k, init in enumerate(ds.time.values[3:5]):
        x, enc, dec = _expected_tensors(ds, init, 4, 6)
        with torch.no_grad():
            ref = model.module(x, enc, dec).clamp(0, 1).numpy()
        got = fc.isel(init=k).to_array("c").transpose("cube", "lead", "y", "x", "c").values
        # same float32 computation, possibly batched differently: float32 reduction-order noise
        assert _scaled_error(got, ref) <= TOL32


def test_dask_input_stays_lazy_and_equals_numpy(tiny) -> None:
    ds = _cube()
    eager = ds.earthformer.forecast(lead=2, model=NAME, weights=tiny, init=ds.time[3])
    lazy = ds.chunk({"cube": 1}).earthformer.forecast(lead=2, model=NAME, weights=tiny, init=ds.time[3])
    assert lazy["red"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), eager)


def test_bad_input_is_named(tiny) -> None:
    ds = _cube()
    with pytest.raises(DriverError, match="sea_level_pressure"):
        ds.drop_vars("sea_level_pressure").earthformer.forecast(lead=2, model=NAME, weights=tiny)
    with pytest.raises(DriverError, match="lacks .* times"):  # no weather after the last frame
        _cube(meso_days=30).earthformer.forecast(lead=2, model=NAME, weights=tiny, init=ds.time[5])
    with pytest.raises(GridError):
        ds.isel(x=slice(0, 12)).earthformer.forecast(lead=2, model=NAME, weights=tiny)
    with pytest.raises(LeadError, match="not rolled out"):
        ds.earthformer.forecast(lead=7, model=NAME, weights=tiny, init=ds.time[3])
    with pytest.raises(ValueError, match="Dataset"):
        ds["blue"].earthformer.forecast(lead=2, model=NAME, weights=tiny)
