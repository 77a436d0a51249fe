"""Reader for SEVIR VIL: the HDF5 event files and their ``CATALOG.csv``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import xarray as xr

from ._sevir_layout import event_coords, vil_attrs, xy_coords
from .errors import DataFileNotFoundError, DataFormatError

__all__ = ["SEVIR_CATALOG_COLUMNS", "open_sevir", "read_sevir_catalog"]

#: Catalogue columns the reader needs (the real CATALOG.csv has more, e.g. ``event_type``).
SEVIR_CATALOG_COLUMNS = ("id", "file_name", "file_index", "img_type", "time_utc", "pct_missing")
_EXTRA_COLUMNS = ("event_type", "episode_id", "event_id", "llcrnrlat", "llcrnrlon", "urcrnrlat", "urcrnrlon")


def _timestamp(value: Any, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise DataFormatError(f"{name} must be a date such as '2019-01-01', got {value!r}") from err


def read_sevir_catalog(
    catalog: str | os.PathLike | pd.DataFrame,
    *,
    img_type: str = "vil",
    start: Any = None,
    end: Any = None,
) -> pd.DataFrame:
    """The catalogue rows of usable events, one per event, in time order.

    Filters as the official dataloader does, in its order: ``start < time_utc <= end``,
    ``pct_missing == 0``, ``img_type``, then drops every id that still appears more
    than once (a known SEVIR duplication). Rows are sorted by ``time_utc`` then ``id``.

    Parameters
    ----------
    catalog : path or pandas.DataFrame
        ``CATALOG.csv`` of SEVIR (columns include :data:`SEVIR_CATALOG_COLUMNS`).
    img_type : str
        Image type to keep (``"vil"``).
    start, end : date-like, optional
        Keep events with ``start < time_utc <= end`` (the official split convention).

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import pandas as pd
    >>> cat = pd.DataFrame({"id": ["S1", "S2", "S2", "S3", "R1"],
    ...                     "file_name": ["a.h5"] * 5, "file_index": [0, 1, 2, 3, 0],
    ...                     "img_type": ["vil", "vil", "vil", "vil", "ir069"],
    ...                     "time_utc": ["2019-03-02", "2019-01-05", "2019-01-05", "2019-02-01", "2019-01-01"],
    ...                     "pct_missing": [0, 0, 0, 0, 0]})
    >>> read_sevir_catalog(cat)["id"].tolist()        # S2 appears twice: dropped; time order
    ['S3', 'S1']
    >>> read_sevir_catalog(cat, end="2019-03-01")["id"].tolist()
    ['S3']
    """
    if isinstance(catalog, pd.DataFrame):
        cat = catalog.copy()
        where = "the catalogue DataFrame"
    else:
        path = Path(catalog)
        if not path.is_file():
            raise DataFileNotFoundError(
                f"SEVIR catalogue not found: {path}. Expected CATALOG.csv from s3://sevir "
                f"(columns {', '.join(SEVIR_CATALOG_COLUMNS)}, ...)"
            )
        cat = pd.read_csv(path, low_memory=False)
        where = str(path)
    missing = [c for c in SEVIR_CATALOG_COLUMNS if c not in cat.columns]
    if missing:
        raise DataFormatError(f"{where} lacks the columns {missing}; expected at least {list(SEVIR_CATALOG_COLUMNS)}")
    cat["time_utc"] = pd.to_datetime(cat["time_utc"])
    lo, hi = _timestamp(start, "start"), _timestamp(end, "end")
    if lo is not None:
        cat = cat[cat["time_utc"] > lo]
    if hi is not None:
        cat = cat[cat["time_utc"] <= hi]
    cat = cat[(cat["pct_missing"] == 0) & (cat["img_type"] == img_type)]
    counts = cat["id"].value_counts()
    cat = cat[cat["id"].isin(counts.index[counts == 1])]
    return cat.sort_values(["time_utc", "id"], kind="stable").reset_index(drop=True)


def _minute_offsets(cat: pd.DataFrame, n_frames: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Frame offsets (minutes): the ``time`` coordinate and each event's own ``(event, time)`` offsets."""
    nominal = np.arange(n_frames) * 5
    if "minute_offsets" not in cat.columns:
        note = "no minute_offsets column: 5-minute frames from time_utc assumed"
        return nominal, np.broadcast_to(nominal, (len(cat), n_frames)), note
    rows = []
    for text in cat["minute_offsets"].astype(str):
        try:
            values = [int(float(v)) for v in text.split(":")]
        except ValueError:
            values = []
        if len(values) == 2 * n_frames - 1:  # SEVIR-LR keeps every second frame
            values = values[::2]
        rows.append(values if len(values) == n_frames else list(nominal))
    common, _ = Counter(tuple(r) for r in rows).most_common(1)[0]
    return np.array(common), np.array(rows), "time offsets from the catalogue's minute_offsets"


def _read_event(path: str, index: int) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.ascontiguousarray(np.moveaxis(f["vil"][index], -1, 0))  # (h, w, t) -> (t, h, w)


def _inspect(files: dict[str, Path], cat: pd.DataFrame, img_type: str, check_ids: bool) -> tuple[int, int, int]:
    """Check every file's layout (and ids); return the frame shape (t, h, w)."""
    shape = None
    for name, path in files.items():
        rows = cat[cat["file_name"] == name]
        with h5py.File(path, "r") as f:
            if img_type not in f or f[img_type].ndim != 4:
                found = {k: getattr(f[k], "shape", None) for k in f}
                raise DataFormatError(
                    f"{path} has no 4-D dataset {img_type!r} (events, height, width, frames); it holds {found}"
                )
            n, h, w, t = f[img_type].shape
            if shape is not None and shape != (t, h, w):
                raise DataFormatError(f"{path} holds frames {(h, w, t)}; other files hold {shape[1:] + shape[:1]}")
            shape = (t, h, w)
            bad = rows["file_index"][(rows["file_index"] < 0) | (rows["file_index"] >= n)]
            if len(bad):
                raise DataFormatError(f"file_index {bad.tolist()} out of range for {path} ({n} events)")
            if check_ids and "id" in f:
                stored = f["id"][np.sort(rows["file_index"].to_numpy())]
                stored = [s.decode() if isinstance(s, bytes) else str(s) for s in stored]
                wanted = rows.sort_values("file_index")["id"].astype(str).tolist()
                if stored != wanted:
                    pairs = [(a, b) for a, b in zip(wanted, stored) if a != b][:3]
                    raise DataFormatError(
                        f"ids in {path} do not match the catalogue at the same file_index (catalogue, file): {pairs}"
                    )
    return shape  # type: ignore[return-value]


def open_sevir(
    catalog: str | os.PathLike | pd.DataFrame,
    data_dir: str | os.PathLike,
    *,
    start: Any = None,
    end: Any = None,
    lazy: bool = True,
    check_ids: bool = True,
) -> xr.Dataset:
    """Open SEVIR VIL events as labelled ``(event, time, y, x)`` data.

    The events are the catalogue rows kept by :func:`read_sevir_catalog`; their frames
    are read from ``data_dir / file_name`` (HDF5 dataset ``vil``, shape
    ``(N, 384, 384, 49)`` uint8, frames last) at ``file_index``.

    Parameters
    ----------
    catalog : path or pandas.DataFrame
        SEVIR ``CATALOG.csv``.
    data_dir : path
        Folder the catalogue's ``file_name`` paths are relative to (SEVIR's ``data``).
    start, end : date-like, optional
        Keep events with ``start < time_utc <= end``.
    lazy : bool
        True (default): a dask array with one chunk per event, each read on demand.
        False: read everything now.
    check_ids : bool
        Check that the files' ``id`` dataset matches the catalogue at each ``file_index``.

    Returns
    -------
    xarray.Dataset
        ``vil`` (uint8, 0-255) with dims ``(event, time, y, x)``: ``event`` holds the
        SEVIR ids (time order), ``time`` the frame offsets from ``event_time`` (the
        catalogue's ``time_utc``) as timedeltas, ``valid_time(event, time)`` the frame
        times; ``y``/``x`` pixel centres in km, rows as stored in the file. Catalogue
        columns such as ``event_type`` come along as ``(event,)`` coordinates.

    Raises
    ------
    DataFileNotFoundError
        The catalogue or a data file is missing.
    DataFormatError
        Missing columns, a file without the ``vil`` dataset, ids that do not match.

    Examples
    --------
    A one-file SEVIR layout of two tiny events (the real frames are 384 x 384 x 49):

    >>> import tempfile, h5py, numpy as np, pandas as pd
    >>> root = tempfile.mkdtemp()
    >>> with h5py.File(f"{root}/vil_2019.h5", "w") as f:
    ...     _ = f.create_dataset("vil", data=np.zeros((2, 8, 8, 3), dtype="uint8"))
    ...     _ = f.create_dataset("id", data=np.array([b"S1", b"S2"]))
    >>> cat = pd.DataFrame({"id": ["S1", "S2"], "file_name": ["vil_2019.h5"] * 2, "file_index": [0, 1],
    ...                     "img_type": ["vil"] * 2, "time_utc": ["2019-06-01 12:00", "2019-06-02 18:00"],
    ...                     "pct_missing": [0, 0]})
    >>> ds = open_sevir(cat, root)
    >>> dict(ds.vil.sizes), ds.vil.dtype.name
    ({'event': 2, 'time': 3, 'y': 8, 'x': 8}, 'uint8')
    >>> (ds.time.values / np.timedelta64(1, "m")).tolist()     # no minute_offsets column: 5-minute frames
    [0.0, 5.0, 10.0]
    """
    cat = read_sevir_catalog(catalog, img_type="vil", start=start, end=end)
    if cat.empty:
        raise DataFormatError(
            f"no SEVIR vil event left after filtering (start={start!r}, end={end!r}, pct_missing == 0)"
        )
    data_dir = Path(data_dir)
    files = {name: data_dir / name for name in cat["file_name"].unique()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise DataFileNotFoundError(
            f"{len(missing)} SEVIR file(s) named in the catalogue not found under {data_dir}, e.g. {missing[:3]}; "
            "expected HDF5 files with dataset 'vil' (events, 384, 384, 49)"
        )
    n_frames, height, width = _inspect(files, cat, "vil", check_ids)

    paths = [str(files[name]) for name in cat["file_name"]]
    indices = cat["file_index"].astype(int).tolist()
    if lazy:
        import dask
        import dask.array as da

        read = dask.delayed(_read_event, pure=True)
        blocks = [
            da.from_delayed(read(p, i), shape=(n_frames, height, width), dtype="uint8") for p, i in zip(paths, indices)
        ]
        vil: Any = da.stack(blocks)
    else:
        vil = np.stack([_read_event(p, i) for p, i in zip(paths, indices)])

    offsets, per_event, time_note = _minute_offsets(cat, n_frames)
    event_time = pd.DatetimeIndex(cat["time_utc"])
    valid = np.asarray(event_time)[:, None] + per_event.astype("timedelta64[m]")
    coords: dict[str, Any] = event_coords(cat["id"].to_numpy(), event_time, pd.to_timedelta(offsets, unit="min"), valid)
    pixel_km = 1.0
    if "width_m" in cat.columns:  # patch width over the stored width (384 px for VIL, 128 for SEVIR-LR)
        pixel_km = float(cat["width_m"].iloc[0]) / width / 1000.0
    coords.update(xy_coords((height, width), pixel_km))
    coords["file_name"] = ("event", cat["file_name"].astype(str).to_numpy())
    coords["file_index"] = ("event", np.asarray(indices))
    for col in _EXTRA_COLUMNS:
        if col in cat.columns:
            values = cat[col].to_numpy()
            coords[col] = ("event", values.astype(str) if values.dtype == object else values)
    attrs = {
        "title": "SEVIR vertically integrated liquid (VIL) events",
        "source": "SEVIR (s3://sevir), read by xearthformer.datasets.open_sevir",
        "time_note": time_note,
        "filters": f"img_type == 'vil', pct_missing == 0, unique ids, {start!r} < time_utc <= {end!r}",
    }
    return xr.Dataset({"vil": (("event", "time", "y", "x"), vil, vil_attrs())}, coords=coords, attrs=attrs)
