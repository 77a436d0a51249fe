"""The ICAR-ENSO 5-degree grid, its coordinates with CF attributes, and a coarse land mask.

The grid is the one the official Earthformer ENSO model sees: 24 latitude rows
-55..60 N and 48 longitude columns 95..330 E, both every 5 degrees. The Nino3.4
box (5S-5N, 170W-120W) is rows 10..12 and columns 19..29 of that grid.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .._precision import coordinate_tolerance

LAT = np.arange(-55.0, 60.0 + 1e-9, 5.0)  # 24 rows
LON = np.arange(95.0, 330.0 + 1e-9, 5.0)  # 48 columns
FULL_LON = np.arange(0.0, 355.0 + 1e-9, 5.0)  # 72 columns of the raw ICAR-ENSO files
NINO34_LAT = (-5.0, 5.0)
NINO34_LON = (190.0, 240.0)

# Land, by latitude row: inclusive (lon_min, lon_max) intervals in degrees E, picked
# by hand on the 5-degree grid (grid-point centres). Coarse on purpose: the Americas
# on the east edge; Asia, the Maritime Continent, Australia and New Zealand on the west.
_LAND: dict[int, list[tuple[int, int]]] = {
    60: [(95, 175), (195, 265), (280, 295)],
    55: [(95, 135), (155, 160), (230, 270), (280, 300)],
    50: [(95, 140), (235, 300)],
    45: [(95, 135), (140, 140), (235, 290)],
    40: [(95, 120), (125, 130), (140, 140), (240, 285)],
    35: [(95, 120), (135, 140), (240, 280)],
    30: [(95, 120), (245, 275)],
    25: [(95, 120), (250, 260)],
    20: [(95, 105), (110, 110), (255, 260), (270, 270), (285, 285)],
    15: [(100, 105), (120, 120), (270, 275)],
    10: [(105, 105), (125, 125), (275, 275), (285, 295)],
    5: [(100, 100), (115, 115), (285, 305)],
    0: [(100, 100), (110, 115), (120, 120), (280, 310)],
    -5: [(105, 105), (120, 120), (135, 145), (280, 320)],
    -10: [(125, 125), (285, 320)],
    -15: [(125, 135), (145, 145), (285, 320)],
    -20: [(120, 145), (290, 315)],
    -25: [(115, 150), (290, 310)],
    -30: [(115, 150), (290, 305)],
    -35: [(115, 115), (140, 150), (290, 300)],
    -40: [(175, 175), (290, 295)],
    -45: [(170, 170), (290, 290)],
    -50: [(290, 290)],
    -55: [(290, 290)],
}


def land_mask(lat: np.ndarray = LAT, lon: np.ndarray = LON) -> np.ndarray:
    """Boolean array ``(lat, lon)``: True over land, on the 5-degree grid points given."""
    mask = np.zeros((lat.size, lon.size), dtype=bool)
    for i, phi in enumerate(lat):
        for lo, hi in _LAND.get(int(round(phi)), []):
            tol = coordinate_tolerance(lon)  # float32 longitudes are off by up to ~2e-5
            mask[i] |= (lon >= lo - tol) & (lon <= hi + tol)
    return mask


def lat_coord(values: np.ndarray = LAT) -> xr.DataArray:
    """Latitude coordinate with CF attributes."""
    return xr.DataArray(
        np.asarray(values, dtype="float64"),
        dims="lat",
        attrs={"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"},
    )


def lon_coord(values: np.ndarray = LON) -> xr.DataArray:
    """Longitude coordinate (degrees east, 0..360) with CF attributes."""
    return xr.DataArray(
        np.asarray(values, dtype="float64"),
        dims="lon",
        attrs={"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"},
    )


def time_attrs() -> dict[str, str]:
    """CF attributes of a ``time`` coordinate (no ``units``: xarray encodes datetimes itself)."""
    return {"standard_name": "time", "long_name": "time", "axis": "T"}
