"""Plots of xearthformer forecasts: maps, ensembles, knowledge-control scenarios, plumes, skill.

matplotlib and cartopy are imported by this subpackage (``import xearthformer``
alone does not import them). Nothing here imports torch, and nothing makes a
network call: coastlines come from cartopy's Natural Earth files when they are
already on disk, else from an outline shipped with the package.
"""

from __future__ import annotations

from ._coastlines import add_coastlines, natural_earth_coastline_path, shipped_coastline
from ._validate import (
    ExtraDimsError,
    InitNotFoundError,
    LeadNotFoundError,
    MissingMemberError,
    MissingSpatialDimsError,
    PlotInputError,
)
from .animate import animate
from .colormaps import VIL_COLORS_RGB255, VIL_LEVELS, anomaly_cmap, centred_norm, vil_cmap
from .ensemble import plot_ensemble
from .lines import plot_index_plume, plot_skill
from .maps import plot_forecast, plot_map
from .scenarios import kc_label, plot_scenarios

__all__ = [
    "ExtraDimsError",
    "InitNotFoundError",
    "LeadNotFoundError",
    "MissingMemberError",
    "MissingSpatialDimsError",
    "PlotInputError",
    "VIL_COLORS_RGB255",
    "VIL_LEVELS",
    "add_coastlines",
    "animate",
    "anomaly_cmap",
    "centred_norm",
    "kc_label",
    "natural_earth_coastline_path",
    "plot_ensemble",
    "plot_forecast",
    "plot_index_plume",
    "plot_map",
    "plot_scenarios",
    "plot_skill",
    "shipped_coastline",
    "vil_cmap",
]
