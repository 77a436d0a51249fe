"""Scores of ensemble forecasts (dim ``member``): CRPS, spread-skill, rank histogram, Brier.

Forecast first, observation second everywhere. xskillscore takes observations
first: :func:`crps` wraps :func:`xskillscore.crps_ensemble` and swaps them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr
import xskillscore as xs

from ._validate import MetricsInputError, as_list, check_matching_coords, reduce_dims

__all__ = ["crps", "spread_skill", "rank_histogram", "brier"]

Dims = str | Sequence[Hashable] | None


def _ensemble(forecast: xr.DataArray, observed: xr.DataArray, member_dim: str):
    if member_dim not in forecast.dims:
        raise MetricsInputError(
            f"the forecast has no {member_dim!r} dimension (dims {list(forecast.dims)}); expected "
            f"an ensemble. Pass member_dim= with the name of its member dimension."
        )
    if member_dim in observed.dims:
        raise MetricsInputError(
            f"the observation has a {member_dim!r} dimension; expected it only on the forecast."
        )
    check_matching_coords(forecast, observed, skip=[member_dim])
    return xr.align(forecast, observed, join="override", exclude=[member_dim])


def crps(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    dim: Dims = None,
    member_dim: str = "member",
    weights: xr.DataArray | None = None,
    keep_attrs: bool = False,
) -> xr.DataArray:
    """Continuous ranked probability score of an ensemble, averaged over ``dim``.

    Wraps :func:`xskillscore.crps_ensemble`, which takes observations first: this
    wrapper takes the forecast first and swaps them. The score is the empirical-CDF
    form ``mean|X - y| - 0.5 mean|X - X'|``. ``dim=None`` averages over every dim.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([[0.0, 2.0]], dims=("x", "member"))
    >>> o = xr.DataArray([1.0], dims="x")
    >>> float(crps(f, o))  # mean|X-y| = 1, mean|X-X'| = 1
    0.5
    """
    f, o = _ensemble(forecast, observed, member_dim)
    out = xs.crps_ensemble(o, f, member_dim=member_dim, dim=dim, weights=weights,
                           keep_attrs=keep_attrs)
    return out.rename("crps")


def spread_skill(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    dim: Dims = None,
    member_dim: str = "member",
) -> xr.Dataset:
    """Ensemble spread, RMSE of the ensemble mean, and their ratio.

    ``spread = sqrt(mean(var))`` with the member variance ``var`` (ddof=1) averaged
    over ``dim``; ``rmse`` of the ensemble mean; ``ratio = sqrt((M+1)/M) * spread /
    rmse`` (Fortin et al. 2014), 1 in expectation for a reliable ensemble of M members.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([[0.0, 2.0], [1.0, 3.0]], dims=("x", "member"))
    >>> o = xr.DataArray([1.0, 1.0], dims="x")
    >>> s = spread_skill(f, o)
    >>> float(s["spread"]), float(s["rmse"])
    (1.4142135623730951, 0.7071067811865476)
    """
    f, o = _ensemble(forecast, observed, member_dim)
    dims = reduce_dims(o, dim)
    m = f.sizes[member_dim]
    valid = o.notnull() & f.notnull().all(member_dim)
    var = f.var(member_dim, ddof=1).where(valid)
    err2 = ((f.mean(member_dim) - o) ** 2).where(valid)
    spread = np.sqrt(var.mean(dims))
    rmse = np.sqrt(err2.mean(dims))
    ratio = np.sqrt((m + 1) / m) * spread / rmse
    return xr.Dataset({
        "spread": spread.assign_attrs(long_name="ensemble spread (sqrt of mean variance)"),
        "rmse": rmse.assign_attrs(long_name="RMSE of the ensemble mean"),
        "ratio": ratio.assign_attrs(long_name="spread-skill ratio sqrt((M+1)/M) spread/rmse"),
    })


def rank_histogram(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    *,
    dim: Dims = None,
    member_dim: str = "member",
) -> xr.DataArray:
    """Rank histogram (Talagrand diagram): counts of the observation's rank 1..M+1.

    Ties between the observation and members are spread evenly over the ranks they
    allow (deterministic; the expectation of random tie-breaking), so counts may be
    fractional with ties and always sum to the number of valid observations.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]], dims=("x", "member"))
    >>> o = xr.DataArray([0.0, 1.5, 5.0], dims="x")
    >>> rank_histogram(f, o).values
    array([1., 1., 1.])
    """
    f, o = _ensemble(forecast, observed, member_dim)
    dims = reduce_dims(o, dim)
    m = f.sizes[member_dim]
    valid = o.notnull() & f.notnull().all(member_dim)
    below = (f < o).sum(member_dim)
    ties = (f == o).sum(member_dim)
    share = 1.0 / (ties + 1.0)
    counts = []
    for r in range(m + 1):  # rank r + 1
        inside = (below <= r) & (r <= below + ties) & valid
        counts.append((share * inside).sum(dims))
    out = xr.concat(counts, xr.DataArray(np.arange(1, m + 2), dims="rank"))
    return out.rename("rank_histogram").assign_attrs(long_name="count of observation ranks")


def brier(
    forecast: xr.DataArray,
    observed: xr.DataArray,
    thresholds: float | Sequence[float],
    *,
    dim: Dims = None,
    member_dim: str = "member",
    bins: int | Sequence[float] = 10,
) -> xr.Dataset:
    """Brier score of the exceedance ``value >= threshold``, with reliability data.

    The forecast probability is the fraction of members at or above the threshold.

    Returns
    -------
    xarray.Dataset
        ``brier(threshold)``; for a reliability diagram, by ``threshold`` and probability
        ``bin``: ``count``, ``forecast_probability`` (mean forecast probability in the bin)
        and ``observed_frequency``. ``bins`` is a number of equal bins on [0, 1] or their
        edges; bins are ``[lo, hi)``, the last one ``[lo, 1]``.

    Examples
    --------
    >>> import xarray as xr
    >>> f = xr.DataArray([[1.0, 3.0], [3.0, 3.0]], dims=("x", "member"))
    >>> o = xr.DataArray([2.0, 0.0], dims="x")
    >>> float(brier(f, o, 2.0)["brier"][0])  # p = [0.5, 1], o = [1, 0]
    0.625
    """
    f, o = _ensemble(forecast, observed, member_dim)
    dims = reduce_dims(o, dim)
    edges = np.linspace(0.0, 1.0, int(bins) + 1) if np.ndim(bins) == 0 else np.asarray(bins,
                                                                                     float)
    valid = o.notnull() & f.notnull().all(member_dim)
    out = []
    for t in [float(v) for v in as_list(thresholds)]:
        p = (f >= t).mean(member_dim).where(valid)
        y = (o >= t).astype(float).where(valid)
        parts = {"brier": ((p - y) ** 2).mean(dims)}
        count, sum_p, sum_y = [], [], []
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            last = i == len(edges) - 2
            inside = (p >= lo) & ((p <= hi) if last else (p < hi))
            count.append(inside.sum(dims))
            sum_p.append(p.where(inside).sum(dims))
            sum_y.append(y.where(inside).sum(dims))
        bin_dim = xr.DataArray(0.5 * (edges[:-1] + edges[1:]), dims="bin")
        c = xr.concat(count, bin_dim)
        parts["count"] = c
        parts["forecast_probability"] = xr.concat(sum_p, bin_dim) / c.where(c > 0)
        parts["observed_frequency"] = xr.concat(sum_y, bin_dim) / c.where(c > 0)
        out.append(xr.Dataset(parts))
    res = xr.concat(out, "threshold").assign_coords(
        threshold=[float(v) for v in as_list(thresholds)],
        bin_lower=("bin", edges[:-1]), bin_upper=("bin", edges[1:]))
    res["brier"].attrs["long_name"] = "Brier score of value >= threshold"
    return res
