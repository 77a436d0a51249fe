"""Reader for the ICAR-ENSO (Tianchi 2021) netCDF files: CMIP/SODA training and label files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ._icar_grid import FULL_LON, LAT, LON, lat_coord, lon_coord, time_attrs
from .errors import DataFileNotFoundError, DataFormatError, DatasetParameterError

__all__ = ["ICAR_SOURCES", "IcarSource", "open_icar_enso"]

_RECORD_MONTHS = 36  # each record ("year") holds 36 consecutive months
_STRIDE = 12  # consecutive records of one model start 12 months apart
_VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "sst": {
        "units": "K",
        "standard_name": "sea_surface_temperature_anomaly",
        "long_name": "sea surface temperature anomaly",
    },
    "t300": {"units": "K", "long_name": "upper-ocean (0-300 m) heat content anomaly, as temperature"},
    "ua": {"units": "m s-1", "standard_name": "eastward_wind", "long_name": "zonal wind anomaly"},
    "va": {"units": "m s-1", "standard_name": "northward_wind", "long_name": "meridional wind anomaly"},
}


@dataclass(frozen=True)
class IcarSource:
    """Where one group of climate models lives in the ICAR-ENSO files.

    Records ``first_record .. first_record + n_models * years_per_model - 1`` of the
    training file's ``year`` axis hold ``n_models`` models one after the other, each
    with ``years_per_model`` records of 36 months starting 12 months apart. ``start``
    is the nominal first month given to every model (the files hold no calendar).

    Examples
    --------
    >>> src = ICAR_SOURCES["cmip6"]
    >>> src.train_file, src.n_models, 12 * src.years_per_model + 24   # months per model
    ('CMIP_train.nc', 15, 1836)
    """

    train_file: str
    label_file: str
    first_record: int
    n_models: int
    years_per_model: int
    start: str = "1850-01"


#: The three groups of the official files (record ranges from the official dataloader).
ICAR_SOURCES: dict[str, IcarSource] = {
    "cmip6": IcarSource("CMIP_train.nc", "CMIP_label.nc", 0, 15, 151, "1850-01"),
    "cmip5": IcarSource("CMIP_train.nc", "CMIP_label.nc", 2265, 17, 140, "1850-01"),
    "soda": IcarSource("SODA_train.nc", "SODA_label.nc", 0, 1, 100, "1871-01"),
}


def fold_indices(n_models: int, years_per_model: int, first_record: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Record and month indices ``(model, time)`` that rebuild each model's monthly series.

    The official "fold" rule: keep every third record of a model (0, 3, 6, ...), whose
    36 months tile the series without overlap, then append the missing tail months of
    the model's last record. A model with ``Y`` records gives ``12 * Y + 24`` months.

    Examples
    --------
    >>> rec, mon = fold_indices(1, 5)
    >>> rec.shape, rec[0, [0, 35, 36, 71, 72, 83]].tolist(), mon[0, [0, 35, 36, 71, 72, 83]].tolist()
    ((1, 84), [0, 0, 3, 3, 4, 4], [0, 35, 0, 35, 24, 35])
    """
    y = years_per_model
    kept = (y - 1) // 3 + 1
    k = np.arange(_STRIDE * y + 2 * _STRIDE)
    main = k < _RECORD_MONTHS * kept
    rec = np.where(main, 3 * (k // _RECORD_MONTHS), y - 1)
    mon = np.where(main, k % _RECORD_MONTHS, k - _STRIDE * (y - 1))
    offsets = first_record + y * np.arange(n_models)[:, None]
    return rec[None, :] + offsets, np.broadcast_to(mon, (n_models, k.size)).copy()


def _resolve(path: str | os.PathLike, src: IcarSource) -> tuple[Path, Path]:
    path = Path(path)
    if path.is_dir():
        folder = path
    elif path.name in (src.train_file, src.label_file) or path.suffix == ".nc":
        folder = path.parent
    else:
        raise DataFileNotFoundError(
            f"{str(path)!r} is neither a folder nor a netCDF file; pass the folder that holds "
            f"{src.train_file} and {src.label_file} (the extracted enso_round1_train_20210201 archive)"
        )
    train, label = folder / src.train_file, folder / src.label_file
    if not train.is_file():
        raise DataFileNotFoundError(
            f"ICAR-ENSO training file not found: {train}. Expected {src.train_file} with variable 'sst' "
            "(dims year, month, lat, lon) from the extracted enso_round1_train_20210201 archive"
        )
    return train, label


def _check_dims(ds: xr.Dataset, name: str, dims: tuple[str, ...], file: Path) -> None:
    if name not in ds.data_vars:
        raise DataFormatError(f"variable {name!r} not found in {file}; it has {sorted(ds.data_vars)}")
    missing = set(dims) - set(ds[name].dims)
    if missing or ds[name].ndim != len(dims):
        raise DataFormatError(
            f"variable {name!r} in {file} has dims {ds[name].dims}; expected {dims} (in any order)"
        )


def _assign_grid(ds: xr.Dataset, file: Path) -> tuple[xr.Dataset, str]:
    """Give lat/lon their values (from the file, else the inferred 5-degree grid) and CF attrs."""
    notes = []
    if "lat" in ds.coords:
        lat_values = np.asarray(ds["lat"].values, dtype="float64")
    elif ds.sizes["lat"] == LAT.size:
        lat_values = LAT
        notes.append("lat values absent from the file: assigned -55..60 N every 5 degrees (inferred)")
    else:
        raise DataFormatError(
            f"{file} has no lat values and {ds.sizes['lat']} rows; expected 24 rows (-55..60 N every 5 degrees)"
        )
    if "lon" in ds.coords:
        lon_values = np.asarray(ds["lon"].values, dtype="float64") % 360
    elif ds.sizes["lon"] in (FULL_LON.size, LON.size):
        lon_values = FULL_LON if ds.sizes["lon"] == FULL_LON.size else LON
        notes.append(
            f"lon values absent from the file: assigned {lon_values[0]:g}..{lon_values[-1]:g} E "
            "every 5 degrees (inferred)"
        )
    else:
        raise DataFormatError(
            f"{file} has no lon values and {ds.sizes['lon']} columns; expected 72 (0..355 E) or 48 (95..330 E)"
        )
    ds = ds.assign_coords(lat=lat_coord(lat_values), lon=lon_coord(lon_values))
    return ds, "; ".join(notes) if notes else "lat/lon values as in the file"


def _select_train(
    train: xr.Dataset, variables: Sequence[str] | None, src: IcarSource, name: str, train_path: Path
) -> tuple[xr.Dataset, list[str], str]:
    """Check the training file's variables, dims and record count; return them with the grid assigned."""
    if variables is None:
        variables = [v for v in _VARIABLE_ATTRS if v in train.data_vars]
        if not variables:
            raise DataFormatError(
                f"none of {list(_VARIABLE_ATTRS)} found in {train_path}; it has {sorted(train.data_vars)}"
            )
    dims4 = ("year", "month", "lat", "lon")
    for var in variables:
        _check_dims(train, var, dims4, train_path)
    n_records = src.first_record + src.n_models * src.years_per_model
    if train.sizes["year"] < n_records or train.sizes["month"] != _RECORD_MONTHS:
        raise DataFormatError(
            f"{train_path} has {train.sizes['year']} records of {train.sizes['month']} months; source {name!r} "
            f"needs {n_records} records (from {src.first_record}: {src.n_models} models x {src.years_per_model}) "
            f"of {_RECORD_MONTHS} months"
        )
    selected, grid_note = _assign_grid(train[list(variables)].transpose(*dims4), train_path)
    return selected, list(variables), grid_note


def open_icar_enso(
    path: str | os.PathLike,
    *,
    source: str | IcarSource = "cmip6",
    variables: Sequence[str] | None = None,
    labels: bool = True,
    lon_range: tuple[float, float] | None = (95.0, 330.0),
    chunks: Any = None,
) -> xr.Dataset:
    """Open the ICAR-ENSO files as one continuous monthly series per climate model.

    The training file (``CMIP_train.nc`` or ``SODA_train.nc``) stores overlapping
    36-month records along ``year`` (dims ``year, month, lat, lon``); the label file
    (``CMIP_label.nc`` / ``SODA_label.nc``) stores ``nino`` (dims ``year, month``).
    Each model's series is rebuilt with the official fold rule (:func:`fold_indices`),
    and longitudes are cropped to 95..330 E as in the official dataloader.

    Parameters
    ----------
    path : str or path-like
        The folder holding the files, or one of the files (its folder is used).
    source : {"cmip6", "cmip5", "soda"} or IcarSource
        Which group of records to read: CMIP6 (15 models x 151 records), CMIP5
        (17 models x 140 records, from record 2265) or the SODA reanalysis (1 x 100).
        Groups have different lengths (1836, 1704 and 1224 months), hence one per call.
    variables : sequence of str, optional
        Variables of the training file to read; default: those of ``sst``, ``t300``,
        ``ua``, ``va`` that are present.
    labels : bool
        Also read ``nino`` from the label file (an error if it is missing).
    lon_range : (float, float) or None
        Keep longitudes in this closed range (degrees E); None keeps all.
    chunks : optional
        Passed to :func:`xarray.open_dataset`; e.g. ``{}`` for lazy dask arrays.

    Returns
    -------
    xarray.Dataset
        Dims ``(model, time, lat, lon)`` (``nino``: ``(model, time)``). ``model`` is the
        1-based model number within the source; ``time`` is a nominal monthly calendar
        from ``source.start`` (the files hold none). ``attrs["grid_note"]`` says whether
        lat/lon came from the file or were inferred.

    Raises
    ------
    DataFileNotFoundError
        A file is missing.
    DataFormatError
        A variable, a dim or records are missing.

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, pathlib
    >>> from xearthformer.datasets import IcarSource, open_icar_enso
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> series = np.arange(84, dtype="float32")  # 5 records of 36 months, 12 months apart
    >>> sst = np.stack([series[12 * r : 12 * r + 36] for r in range(5)])[:, :, None, None]
    >>> grid = {"lat": [0.0], "lon": [200.0]}
    >>> xr.Dataset({"sst": (("year", "month", "lat", "lon"), sst)}, coords=grid).to_netcdf(folder / "CMIP_train.nc")
    >>> tiny = IcarSource("CMIP_train.nc", "CMIP_label.nc", first_record=0, n_models=1, years_per_model=5)
    >>> ds = open_icar_enso(folder, source=tiny, labels=False)
    >>> ds.sst.dims, ds.sst.shape
    (('model', 'time', 'lat', 'lon'), (1, 84, 1, 1))
    >>> bool((ds.sst.squeeze().values == series).all())
    True
    """
    if isinstance(source, str):
        if source not in ICAR_SOURCES:
            raise DatasetParameterError(f"unknown ICAR-ENSO source {source!r}; expected one of {sorted(ICAR_SOURCES)}")
        name, src = source, ICAR_SOURCES[source]
    elif isinstance(source, IcarSource):
        name, src = "custom", source
    else:
        raise DatasetParameterError(f"source must be a name {sorted(ICAR_SOURCES)} or an IcarSource, got {source!r}")
    train_path, label_path = _resolve(path, src)

    train = xr.open_dataset(train_path, chunks=chunks)
    try:
        train, variables, grid_note = _select_train(train, variables, src, name, train_path)
    except DataFormatError:
        train.close()
        raise
    if lon_range is not None:
        lon = train["lon"].values
        train = train.isel(lon=np.flatnonzero((lon >= lon_range[0]) & (lon <= lon_range[1])))

    rec, mon = fold_indices(src.n_models, src.years_per_model, src.first_record)
    index = {"year": xr.DataArray(rec, dims=("model", "time")), "month": xr.DataArray(mon, dims=("model", "time"))}
    out = train.isel(index).drop_vars(["year", "month"], errors="ignore")
    for var in variables:
        out[var].attrs = {**_VARIABLE_ATTRS.get(var, {}), **train[var].attrs}

    if labels:
        if not label_path.is_file():
            train.close()
            raise DataFileNotFoundError(
                f"ICAR-ENSO label file not found: {label_path}. Expected {src.label_file} with variable 'nino' "
                "(dims year, month); pass labels=False to read the training file only"
            )
        label = xr.open_dataset(label_path, chunks=chunks)
        n_records = src.first_record + src.n_models * src.years_per_model
        try:
            _check_dims(label, "nino", ("year", "month"), label_path)
        except DataFormatError:
            label.close()
            raise
        if label.sizes["year"] < n_records or label.sizes["month"] != _RECORD_MONTHS:
            label.close()
            raise DataFormatError(
                f"{label_path} has {label.sizes['year']} records of {label.sizes['month']} months; "
                f"expected at least {n_records} records of {_RECORD_MONTHS} months, like {train_path.name}"
            )
        nino = label["nino"].transpose("year", "month").isel(index).drop_vars(["year", "month"], errors="ignore")
        defaults = {"units": "K", "long_name": "Nino3.4 index label of the file (3-month running mean)"}
        out["nino"] = nino.assign_attrs({**defaults, **label["nino"].attrs})

    time = pd.date_range(pd.Timestamp(src.start), periods=rec.shape[1], freq="MS")
    out = out.assign_coords(
        model=xr.DataArray(
            np.arange(1, src.n_models + 1), dims="model", attrs={"long_name": f"model number within {name}"}
        ),
        time=xr.DataArray(
            time, dims="time", attrs={**time_attrs(), "comment": "nominal calendar: the files hold none"}
        ),
    )
    out.attrs = {
        "title": f"ICAR-ENSO {name} records rebuilt as continuous monthly series",
        "source": f"ICAR-ENSO 2021 (Tianchi dataset 98942): {train_path.name}"
        + (f", {label_path.name}" if labels else ""),
        "icar_source": name,
        "grid_note": grid_note,
        "history": "xearthformer.datasets.open_icar_enso: every third 36-month record plus the tail of the last "
        "(the official fold rule)",
    }
    return out
