"""Tutorial data and benchmark-format readers.

Synthetic generators (offline, deterministic, cheap) and readers that return the
real benchmark files in the same labelled layout:

- :func:`synthetic_enso` / :func:`open_icar_enso`: monthly SST on the ICAR-ENSO
  5-degree grid, dims ``(time, lat, lon)`` (readers add ``model``).
- :func:`synthetic_storms` / :func:`open_sevir`: VIL sequences, dims
  ``(event, time, y, x)``, uint8 on the 0-255 SEVIR scale.
"""

from __future__ import annotations

from .errors import (
    DataFileNotFoundError,
    DataFormatError,
    DatasetError,
    DatasetParameterError,
    UnknownDatasetError,
)
from .icar_enso import ICAR_SOURCES, IcarSource, fold_indices, open_icar_enso
from .sevir import SEVIR_CATALOG_COLUMNS, open_sevir, read_sevir_catalog
from .synthetic_enso import ENSO_PARAMETERS, synthetic_enso
from .synthetic_storms import STORM_PARAMETERS, synthetic_storms

__all__ = [
    "DataFileNotFoundError",
    "DataFormatError",
    "DatasetError",
    "DatasetParameterError",
    "ENSO_PARAMETERS",
    "ICAR_SOURCES",
    "IcarSource",
    "SEVIR_CATALOG_COLUMNS",
    "STORM_PARAMETERS",
    "UnknownDatasetError",
    "fold_indices",
    "open_icar_enso",
    "open_sevir",
    "read_sevir_catalog",
    "synthetic_enso",
    "synthetic_storms",
]
