"""The labelled layout shared by the SEVIR reader and the synthetic storms: coords and attrs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


def vil_attrs() -> dict[str, object]:
    """Attributes of the ``vil`` variable (SEVIR digital levels, uint8)."""
    return {
        "long_name": "vertically integrated liquid (SEVIR digital level)",
        "units": "1",
        "valid_range": np.array([0, 255], dtype="uint8"),
        "comment": "0-255 digital levels as in SEVIR; models use vil / 255. "
        "Thresholds of the SEVIR scores: 16, 74, 133, 160, 181, 219.",
    }


def xy_coords(size: int | tuple[int, int], pixel_size_km: float) -> dict[str, xr.DataArray]:
    """Pixel-centre ``y`` and ``x`` coordinates in km with CF attributes (row 0 = first stored row)."""
    ny, nx = (size, size) if isinstance(size, int) else size

    def axis(n: int, name: str, std: str, cf_axis: str) -> xr.DataArray:
        return xr.DataArray(
            (np.arange(n) + 0.5) * pixel_size_km,
            dims=name,
            attrs={"units": "km", "standard_name": std, "long_name": f"{name} distance", "axis": cf_axis},
        )

    return {
        "y": axis(ny, "y", "projection_y_coordinate", "Y"),
        "x": axis(nx, "x", "projection_x_coordinate", "X"),
    }


def event_coords(
    ids: np.ndarray,
    event_time: pd.DatetimeIndex,
    offsets: pd.TimedeltaIndex,
    valid_time: np.ndarray | None = None,
) -> dict[str, xr.DataArray]:
    """``event`` ids, ``time`` offsets, ``event_time(event)`` and ``valid_time(event, time)``."""
    if valid_time is None:
        valid_time = np.asarray(event_time)[:, None] + np.asarray(offsets)[None, :]
    return {
        "event": xr.DataArray(np.asarray(ids, dtype=str), dims="event", attrs={"long_name": "event id"}),
        "time": xr.DataArray(
            np.asarray(offsets, dtype="timedelta64[ns]"),
            dims="time",
            attrs={"long_name": "time offset of the frame from event_time", "axis": "T"},
        ),
        "event_time": xr.DataArray(
            np.asarray(event_time, dtype="datetime64[ns]"),
            dims="event",
            attrs={"long_name": "reference time of the event", "standard_name": "time"},
        ),
        "valid_time": xr.DataArray(
            np.asarray(valid_time, dtype="datetime64[ns]"),
            dims=("event", "time"),
            attrs={"long_name": "time of the frame", "standard_name": "time"},
        ),
    }
