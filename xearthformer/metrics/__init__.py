"""Skill scores and indices on labelled data (numpy + xarray + xskillscore; never torch).

Forecast first, observation second everywhere. Forecasts have dims ``init``,
``lead`` (and ``member`` for ensembles) and the coordinate ``valid_time(init, lead)``;
observations have dim ``time`` and are matched to forecasts through ``valid_time``.
Every function works on numpy- and dask-backed data and stays lazy with dask.
"""

from __future__ import annotations

from ._validate import (
    ArchiveGapError,
    BasePeriodError,
    CoordinateMismatchError,
    GridError,
    MetricsInputError,
    ThresholdScaleWarning,
    at_valid_time,
)
from .baselines import (
    BASELINES,
    climatology_forecast,
    make_climatology_forecast,
    persistence_forecast,
    valid_times,
)
from .categorical import (
    SEVIR_THRESHOLDS,
    bias,
    contingency,
    contingency_scores,
    csi,
    csi_m,
    far,
    fss,
    hss,
    pod,
    pooled_csi,
)
from .enso import enso_skill, icar_lead_weights
from .indices import NINO34_REGION, box_mean, monthly_climatology, nino34, oni
from .probabilistic import brier, crps, rank_histogram, spread_skill

__all__ = [
    "nino34", "oni", "enso_skill", "icar_lead_weights", "box_mean", "monthly_climatology",
    "NINO34_REGION",
    "contingency", "contingency_scores", "csi", "pod", "far", "bias", "hss", "csi_m",
    "pooled_csi", "fss", "SEVIR_THRESHOLDS",
    "crps", "spread_skill", "rank_histogram", "brier",
    "persistence_forecast", "climatology_forecast", "make_climatology_forecast",
    "valid_times", "at_valid_time", "BASELINES",
    "MetricsInputError", "GridError", "BasePeriodError", "CoordinateMismatchError",
    "ArchiveGapError", "ThresholdScaleWarning",
]
