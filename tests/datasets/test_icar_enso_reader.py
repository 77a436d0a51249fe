"""open_icar_enso on small files written in the ICAR-ENSO layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from xearthformer.datasets import (
    DataFileNotFoundError,
    DataFormatError,
    DatasetParameterError,
    IcarSource,
    fold_indices,
    open_icar_enso,
)

LAT = np.arange(-55.0, 61.0, 5.0)
FULL_LON = np.arange(0.0, 360.0, 5.0)


def official_fold(data: np.ndarray, size: int = 36, stride: int = 12) -> np.ndarray:
    """The official dataloader's ``fold``, rewritten here as an independent reference."""
    times = size // stride
    remain = (data.shape[0] - 1) % times
    parts = list(data[::times])
    if remain > 0:
        parts.append(data[-1, -(remain * stride) :])
    return np.concatenate(parts, axis=0)


def coded_records(n_records: int, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Records whose values say where they came from: 1000 * record + month (+ a spatial code)."""
    rec = np.arange(n_records)[:, None] * 1000.0 + np.arange(36)[None, :]
    spatial = np.arange(int(np.prod(shape))).reshape(shape) * 1e-3 if shape else 0.0
    return (rec.reshape(rec.shape + (1,) * len(shape)) + spatial).astype("float64")


def write_files(folder: Path, n_records: int, *, prefix: str = "CMIP", nlat: int = 24, nlon: int = 72,
                coords: bool = True, variables: tuple[str, ...] = ("sst", "t300", "ua", "va")) -> None:
    field = coded_records(n_records, (nlat, nlon)).astype("float32")
    grid = {"lat": LAT[:nlat], "lon": FULL_LON[:nlon]} if coords else {}
    train = xr.Dataset(
        {v: (("year", "month", "lat", "lon"), field + i * 0.5) for i, v in enumerate(variables)}, coords=grid
    )
    train.to_netcdf(folder / f"{prefix}_train.nc")
    nino = coded_records(n_records).astype("float32")
    label = xr.Dataset({"nino": (("year", "month"), nino, {"units": "degC", "comment": "as in the file"})})
    label.to_netcdf(folder / f"{prefix}_label.nc")


def test_fold_indices_match_the_official_fold():
    for years in (4, 5, 6, 7, 151, 140, 100):
        data = coded_records(years)
        expected = official_fold(data)
        rec, mon = fold_indices(1, years)
        assert rec.shape == (1, 12 * years + 24) == (1, expected.shape[0])
        np.testing.assert_array_equal(data[rec[0], mon[0]], expected)


def test_official_lengths():
    assert fold_indices(15, 151)[0].shape == (15, 1836)
    assert fold_indices(17, 140, 2265)[0].shape == (17, 1704)
    rec, _ = fold_indices(17, 140, 2265)
    assert rec.min() == 2265 and rec.max() == 2265 + 17 * 140 - 1


@pytest.mark.parametrize("years", [5, 6, 7])
def test_reader_recovers_each_models_records(tmp_path, years):
    n_models, first = 3, 2
    n_records = first + n_models * years + 1  # one spare record after the group
    write_files(tmp_path, n_records, nlat=2, nlon=72)
    src = IcarSource("CMIP_train.nc", "CMIP_label.nc", first_record=first, n_models=n_models, years_per_model=years)
    ds = open_icar_enso(tmp_path, source=src)
    assert ds.sst.dims == ("model", "time", "lat", "lon")
    assert ds.nino.dims == ("model", "time")
    assert ds.sizes["time"] == 12 * years + 24 and ds.sizes["lon"] == 48
    np.testing.assert_array_equal(ds.model, [1, 2, 3])
    np.testing.assert_array_equal(ds.lon, np.arange(95, 331, 5))
    raw = xr.open_dataset(tmp_path / "CMIP_train.nc")
    label = xr.open_dataset(tmp_path / "CMIP_label.nc")
    for m in range(n_models):
        block = slice(first + m * years, first + (m + 1) * years)
        expected = official_fold(raw.sst.sel(lon=slice(95, 330)).values[block])
        np.testing.assert_array_equal(ds.sst.values[m], expected)
        np.testing.assert_array_equal(ds.t300.values[m], expected + 0.5)
        np.testing.assert_array_equal(ds.nino.values[m], official_fold(label.nino.values[block]))
    raw.close()
    label.close()


def test_consistent_records_give_a_continuous_series(tmp_path):
    years = 5
    series = np.arange(12 * years + 24, dtype="float32")
    records = np.stack([series[12 * r : 12 * r + 36] for r in range(years)])
    field = np.broadcast_to(records[:, :, None, None], (years, 36, 24, 72))
    xr.Dataset({"sst": (("year", "month", "lat", "lon"), field)}, coords={"lat": LAT, "lon": FULL_LON}).to_netcdf(
        tmp_path / "SODA_train.nc"
    )
    xr.Dataset({"nino": (("year", "month"), records)}).to_netcdf(tmp_path / "SODA_label.nc")
    src = IcarSource("SODA_train.nc", "SODA_label.nc", 0, 1, years, start="1871-01")
    ds = open_icar_enso(tmp_path / "SODA_train.nc", source=src)
    np.testing.assert_array_equal(ds.sst.values[0, :, 10, 20], series)
    np.testing.assert_array_equal(ds.nino.values[0], series)
    assert str(ds.indexes["time"][0].date()) == "1871-01-01" and (ds.indexes["time"].day == 1).all()
    assert list(ds.data_vars) == ["sst", "nino"]


def test_attributes_and_grid(tmp_path):
    write_files(tmp_path, 6, variables=("sst",))
    ds = open_icar_enso(tmp_path, source=IcarSource("CMIP_train.nc", "CMIP_label.nc", 0, 2, 3))
    assert ds.sst.attrs["units"] == "K"
    assert ds.nino.attrs["units"] == "degC" and ds.nino.attrs["comment"] == "as in the file"  # file attrs win
    assert ds.lat.attrs["standard_name"] == "latitude" and ds.lon.attrs["axis"] == "X"
    np.testing.assert_array_equal(ds.lat, LAT)
    assert ds.attrs["grid_note"] == "lat/lon values as in the file"
    assert "CMIP_train.nc" in ds.attrs["source"]
    # the Nino3.4 box lands on rows 10..12, columns 19..29 as in the official code
    box = ds.sst.isel(lat=slice(10, 13), lon=slice(19, 30))
    assert box.lat.values.tolist() == [-5, 0, 5] and box.lon.values[[0, -1]].tolist() == [190, 240]
    full = open_icar_enso(tmp_path, source=IcarSource("CMIP_train.nc", "CMIP_label.nc", 0, 2, 3), lon_range=None)
    assert full.sizes["lon"] == 72


def test_missing_grid_values_are_inferred(tmp_path):
    write_files(tmp_path, 3, coords=False, variables=("sst",))
    ds = open_icar_enso(tmp_path, source=IcarSource("CMIP_train.nc", "CMIP_label.nc", 0, 1, 3))
    np.testing.assert_array_equal(ds.lat, LAT)
    np.testing.assert_array_equal(ds.lon, np.arange(95, 331, 5))
    assert "inferred" in ds.attrs["grid_note"]


def test_lazy_equals_eager(tmp_path):
    write_files(tmp_path, 8, nlat=3)
    src = IcarSource("CMIP_train.nc", "CMIP_label.nc", 1, 1, 7)
    eager = open_icar_enso(tmp_path, source=src)
    lazy = open_icar_enso(tmp_path, source=src, chunks={})
    assert lazy.sst.chunks is not None
    xr.testing.assert_identical(lazy.compute(), eager)


def test_named_sources(tmp_path):
    write_files(tmp_path, 100, prefix="SODA", nlat=1, nlon=72, variables=("sst",))
    ds = open_icar_enso(tmp_path, source="soda")
    assert ds.sizes["model"] == 1 and ds.sizes["time"] == 1224
    assert ds.attrs["icar_source"] == "soda"
    with pytest.raises(DataFormatError, match="needs 2265 records"):
        write_files(tmp_path, 100, prefix="CMIP", nlat=1, nlon=72, variables=("sst",))
        open_icar_enso(tmp_path, source="cmip6")
    with pytest.raises(DatasetParameterError, match="cmip5"):
        open_icar_enso(tmp_path, source="cmip7")


def test_errors(tmp_path):
    src = IcarSource("CMIP_train.nc", "CMIP_label.nc", 0, 1, 3)
    with pytest.raises(DataFileNotFoundError, match="CMIP_train.nc") as info:
        open_icar_enso(tmp_path, source=src)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    write_files(tmp_path, 3, variables=("sst",))
    with pytest.raises(DataFormatError, match="'t300' not found"):
        open_icar_enso(tmp_path, source=src, variables=["t300"])
    (tmp_path / "CMIP_label.nc").unlink()
    with pytest.raises(DataFileNotFoundError, match="CMIP_label.nc.*labels=False"):
        open_icar_enso(tmp_path, source=src)
    assert "nino" not in open_icar_enso(tmp_path, source=src, labels=False)
    xr.Dataset({"sst": (("year", "month", "x"), np.zeros((3, 36, 4)))}).to_netcdf(tmp_path / "CMIP_train.nc")
    with pytest.raises(DataFormatError, match="expected \\('year', 'month', 'lat', 'lon'\\)"):
        open_icar_enso(tmp_path, source=src, labels=False)
    xr.Dataset({"u10": (("year",), np.zeros(3))}).to_netcdf(tmp_path / "CMIP_train.nc")
    with pytest.raises(DataFormatError, match="none of"):
        open_icar_enso(tmp_path, source=src, labels=False)
