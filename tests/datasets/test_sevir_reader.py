"""open_sevir on small HDF5 files and a CATALOG.csv written in the SEVIR layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer._precision import coordinate_tolerance
from xearthformer.datasets import DataFileNotFoundError, DataFormatError, open_sevir, read_sevir_catalog

SIZE, FRAMES = 12, 49  # real files: 384 x 384 pixels, 49 frames
OFFSETS = ":".join(str(m) for m in range(-120, 125, 5))
FILES = {
    "vil/2018/SEVIR_VIL_STORMEVENTS_2018_0101_0630.h5": ["S1", "S2", "S3", "R4"],
    "vil/2019/SEVIR_VIL_RANDOMEVENTS_2019_0101_0430.h5": ["R5", "S6", "DUP"],
}
COLUMNS = [
    "id", "file_name", "file_index", "img_type", "time_utc", "minute_offsets", "episode_id", "event_id",
    "event_type", "llcrnrlat", "llcrnrlon", "urcrnrlat", "urcrnrlon", "proj", "size_x", "size_y",
    "height_m", "width_m", "data_min", "data_max", "pct_missing",
]
TIMES = {
    "S1": "2018-05-03 18:00:00", "S2": "2018-04-01 06:10:00", "S3": "2018-06-20 12:00:00",
    "R4": "2018-06-20 12:00:00", "R5": "2019-03-01 00:00:00", "S6": "2019-02-01 00:00:00",
    "DUP": "2019-01-15 00:00:00",
}


def frames(file_number: int, index: int) -> np.ndarray:
    """Known contents ``(height, width, frames)``: every pixel says where it came from."""
    y, x, t = np.meshgrid(np.arange(SIZE), np.arange(SIZE), np.arange(FRAMES), indexing="ij")
    return ((file_number * 97 + index * 31 + 5 * t + 3 * y + x) % 256).astype("uint8")


def row(event_id: str, file_name: str, index: int, img_type: str = "vil", pct: float = 0.0) -> dict:
    return {
        "id": event_id, "file_name": file_name, "file_index": index, "img_type": img_type,
        "time_utc": TIMES[event_id], "minute_offsets": OFFSETS, "episode_id": 100.0, "event_id": 200.0,
        "event_type": "Hail" if event_id.startswith("S") else "", "llcrnrlat": 33.2, "llcrnrlon": -101.0,
        "urcrnrlat": 36.5, "urcrnrlon": -96.9, "proj": "+proj=laea +lat_0=38 +lon_0=-98",
        "size_x": 384, "size_y": 384, "height_m": 384000.0, "width_m": 384000.0,
        "data_min": 0.0, "data_max": 254.0, "pct_missing": pct,
    }


@pytest.fixture()
def sevir(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    rows = []
    for k, (name, ids) in enumerate(FILES.items()):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(data / name, "w") as f:
            f.create_dataset("vil", data=np.stack([frames(k, i) for i in range(len(ids))]))
            f.create_dataset("id", data=np.array(ids, dtype="S"))
        rows += [row(event_id, name, i, pct=10.0 if event_id == "S3" else 0.0) for i, event_id in enumerate(ids)]
    rows.append(row("S1", "ir069/2018/SEVIR_IR069_STORMEVENTS_2018_0101_0630.h5", 0, img_type="ir069"))
    rows.append(row("DUP", FILES_LIST[1], 1))  # an id listed twice: dropped, as upstream does
    catalog = tmp_path / "CATALOG.csv"
    pd.DataFrame(rows, columns=COLUMNS).to_csv(catalog, index=False)
    return catalog, data


FILES_LIST = list(FILES)


def test_catalog_filters_like_the_official_loader(sevir):
    catalog, _ = sevir
    cat = read_sevir_catalog(catalog)
    # S3 has missing data, DUP is listed twice; order is by time
    assert cat["id"].tolist() == ["S2", "S1", "R4", "S6", "R5"]
    assert (cat["img_type"] == "vil").all()
    between = read_sevir_catalog(catalog, start="2018-05-03 18:00", end="2019-02-01")
    assert between["id"].tolist() == ["R4", "S6"]  # start < time_utc <= end
    frame = pd.read_csv(catalog)
    assert read_sevir_catalog(frame)["id"].tolist() == cat["id"].tolist()


def test_values_order_and_coords(sevir):
    catalog, data = sevir
    ds = open_sevir(catalog, data, lazy=False)
    assert ds.vil.dims == ("event", "time", "y", "x")
    assert ds.vil.shape == (5, FRAMES, SIZE, SIZE) and ds.vil.dtype == np.uint8
    assert ds.event.values.tolist() == ["S2", "S1", "R4", "S6", "R5"]
    where = {"S1": (0, 0), "S2": (0, 1), "R4": (0, 3), "R5": (1, 0), "S6": (1, 1)}
    for n, event_id in enumerate(ds.event.values):
        expected = np.moveaxis(frames(*where[event_id]), -1, 0)  # (h, w, t) -> (t, h, w)
        np.testing.assert_array_equal(ds.vil.values[n], expected)
    assert ds.time.values[0] == np.timedelta64(-120, "m") and ds.time.values[-1] == np.timedelta64(120, "m")
    np.testing.assert_array_equal(ds.event_time.values[1], np.datetime64("2018-05-03T18:00"))
    assert ds.valid_time.values[1, 24] == np.datetime64("2018-05-03T18:00")
    assert ds.valid_time.values[1, 0] == np.datetime64("2018-05-03T16:00")
    np.testing.assert_allclose(ds.x.values[[0, -1]], (np.array([0, SIZE - 1]) + 0.5) * 384 / SIZE,
                               rtol=0, atol=coordinate_tolerance(ds.x.values))
    assert ds.x.attrs["units"] == "km"
    assert ds.file_index.values.tolist() == [1, 0, 3, 1, 0]
    assert ds.event_type.values.tolist()[:2] == ["Hail", "Hail"]
    assert "vil / 255" in ds.vil.attrs["comment"]


def test_lazy_is_dask_and_equal(sevir):
    catalog, data = sevir
    lazy = open_sevir(catalog, data, start="2018-01-01", end="2019-01-01")
    assert lazy.vil.chunks is not None and lazy.vil.data.chunksize[0] == 1
    eager = open_sevir(catalog, data, start="2018-01-01", end="2019-01-01", lazy=False)
    xr.testing.assert_identical(lazy.compute(), eager)


def test_missing_minute_offsets_column(sevir):
    catalog, data = sevir
    frame = pd.read_csv(catalog).drop(columns=["minute_offsets", "width_m"])
    ds = open_sevir(frame, data, lazy=False)
    assert ds.time.values[1] == np.timedelta64(5, "m") and "assumed" in ds.attrs["time_note"]
    assert ds.x.values[0] == 0.5  # 1 km pixels when the catalogue gives no width


def test_errors(sevir, tmp_path):
    catalog, data = sevir
    with pytest.raises(DataFileNotFoundError, match="CATALOG.csv"):
        open_sevir(tmp_path / "nope" / "CATALOG.csv", data)
    with pytest.raises(DataFormatError, match="pct_missing"):
        read_sevir_catalog(pd.read_csv(catalog).drop(columns=["pct_missing"]))
    with pytest.raises(DataFormatError, match="no SEVIR vil event"):
        open_sevir(catalog, data, start="2030-01-01")
    with pytest.raises(DataFormatError, match="start must be a date"):
        open_sevir(catalog, data, start="someday")
    with pytest.raises(DataFileNotFoundError, match="SEVIR_VIL_STORMEVENTS") as info:
        open_sevir(catalog, tmp_path / "elsewhere")
    assert isinstance(info.value, FileNotFoundError)
    with h5py.File(data / FILES_LIST[1], "a") as f:
        del f["id"]
        f.create_dataset("id", data=np.array(["R5", "XX", "DUP"], dtype="S"))
    with pytest.raises(DataFormatError, match="do not match"):
        open_sevir(catalog, data)
    assert open_sevir(catalog, data, check_ids=False).sizes["event"] == 5
    with h5py.File(data / FILES_LIST[1], "w") as f:
        f.create_dataset("ir069", data=np.zeros((3, 4, 4, 49), dtype="int16"))
    with pytest.raises(DataFormatError, match="no 4-D dataset 'vil'"):
        open_sevir(catalog, data)
