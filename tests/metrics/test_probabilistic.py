"""Ensemble scores against hand-worked cases, numpy loops and xskillscore."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
import xskillscore as xs

from xearthformer._precision import reduction_error, sum_error
from xearthformer.metrics import MetricsInputError, brier, crps, rank_histogram, spread_skill


def crps_error(x, y, axis=None):
    """Two evaluations of CRPS = mean|X - y| - 0.5 mean|X - X'| (any formula, any order) differ
    by at most the float64 sum bounds of the two means' terms: sum_error of their |terms|."""
    term1 = np.abs(x - y[:, None])
    term2 = 0.5 * np.abs(x[:, :, None] - x[:, None, :])
    axes = [int(a) for a in np.atleast_1d(axis)] if axis is not None else []
    members = (1, *[a + (a > 0) for a in axes])  # axes of y -> axes of (init, member, ...)
    pairs = (1, 2, *[a + 2 * (a > 0) for a in axes])
    return (sum_error(term1, axis=None if axis is None else members, mean=True)
            + sum_error(term2, axis=None if axis is None else pairs, mean=True))


@pytest.fixture
def ensemble():
    rng = np.random.default_rng(4)
    obs = rng.normal(size=(20, 3, 5))
    fc = obs[:, None] * 0.5 + rng.normal(size=(20, 8, 3, 5))
    coords = {"init": np.arange(20), "lat": [0.0, 1.0, 2.0], "lon": np.arange(5.0)}
    f = xr.DataArray(fc, dims=("init", "member", "lat", "lon"), coords=coords)
    o = xr.DataArray(obs, dims=("init", "lat", "lon"), coords=coords)
    return f, o


def test_crps_loop_and_order(ensemble):
    f, o = ensemble
    x, y = f.values, o.values
    term1 = np.abs(x - y[:, None]).mean(1)
    term2 = np.abs(x[:, :, None] - x[:, None, :]).mean((1, 2))
    expected = (term1 - 0.5 * term2).mean()
    assert float(crps(f, o)) == pytest.approx(expected, rel=0, abs=crps_error(x, y))
    by_lat = crps(f, o, dim=["init", "lon"])
    np.testing.assert_allclose(by_lat.values, (term1 - 0.5 * term2).mean((0, 2)), rtol=0,
                               atol=crps_error(x, y, axis=(0, 2)).max())
    # forecast first: same as xskillscore with observations first (a sorted formula)
    xr.testing.assert_allclose(crps(f, o, dim="init"), xs.crps_ensemble(o, f, dim="init"),
                               check_dim_order=False, rtol=0,
                               atol=float(crps_error(x, y, axis=0).max()))


def test_spread_skill_loop(ensemble):
    f, o = ensemble
    x, y = f.values, o.values
    spread = np.sqrt(x.var(1, ddof=1).mean())
    rmse = np.sqrt(((x.mean(1) - y) ** 2).mean())
    s = spread_skill(f, o)
    # float64: a two-pass variance of 8 members (non-negative terms: gamma_9 relative),
    # averaged over 300 points (gamma_301), square root: 2 * gamma_310 relative covers both
    # evaluations; the RMSE's ensemble mean is off by gamma_9 * max|x| before it is squared
    rel = 2 * reduction_error(8 + 300 + 2, x.dtype)
    assert float(s["spread"]) == pytest.approx(spread, rel=rel)
    err = rel * rmse + 2 * reduction_error(9, x.dtype) * np.abs(x).max()
    assert float(s["rmse"]) == pytest.approx(rmse, rel=0, abs=err)
    assert float(s["ratio"]) == pytest.approx(np.sqrt(9 / 8) * spread / rmse,
                                              rel=2 * rel + err / rmse)


def test_rank_histogram_against_xskillscore_and_ties(ensemble):
    f, o = ensemble
    ours = rank_histogram(f, o)
    ref = xs.rank_histogram(o, f, dim=["init", "lat", "lon"])  # no ties in continuous data
    np.testing.assert_array_equal(ours.values, ref.values)
    assert ours.sum() == o.size
    # ties: obs 1 equal to one of members [1, 2] -> ranks 1 and 2 share it
    tied = rank_histogram(xr.DataArray([[1.0, 2.0]], dims=("x", "member")),
                          xr.DataArray([1.0], dims="x"))
    np.testing.assert_array_equal(tied.values, [0.5, 0.5, 0.0])


def test_brier_and_reliability(ensemble):
    f, o = ensemble
    out = brier(f, o, [0.0, 1.0], bins=5)
    for i, t in enumerate([0.0, 1.0]):
        p = (f >= t).mean("member")
        y = (o >= t).astype(float)
        # probabilities are k/8 (exact), squared errors in [0, 1]: a float64 mean of 300
        brier_error = 2 * reduction_error(301, "float64")
        assert float(out["brier"][i]) == pytest.approx(float(xs.brier_score(y, p)), rel=0,
                                                       abs=brier_error)
        rel = xs.reliability(o >= t, p, dim=["init", "lat", "lon"],
                             probability_bin_edges=np.linspace(0, 1, 6))
        # a count over a count: each ratio correctly rounded (u), in two codes (2u)
        np.testing.assert_allclose(out["observed_frequency"][i].values, rel.values,
                                   rtol=2 * reduction_error(1, "float64"))
        np.testing.assert_array_equal(out["count"][i].values, rel["samples"].values)
        # mean forecast probability per bin, by a loop
        pv = p.values.ravel()
        for b, (lo, hi) in enumerate(zip(np.linspace(0, 1, 6)[:-1], np.linspace(0, 1, 6)[1:])):
            sel = (pv >= lo) & ((pv <= hi) if b == 4 else (pv < hi))
            if sel.any():
                # a float64 mean of at most 300 probabilities in [0, 1]
                assert float(out["forecast_probability"][i, b]) == pytest.approx(
                    pv[sel].mean(), rel=0, abs=2 * reduction_error(sel.sum() + 1, "float64"))


def test_dask_lazy_equal(ensemble, no_compute):
    f, o = ensemble
    fl, ol = f.chunk({"init": 5}), o.chunk({"init": 5})
    results = [crps(fl, ol, dim="init"), spread_skill(fl, ol, dim="init"),
               rank_histogram(fl, ol), brier(fl, ol, 0.5, dim=["init", "lon"])]
    for r in results:
        for v in (r.data_vars.values() if isinstance(r, xr.Dataset) else [r]):
            assert isinstance(v.data, dask.array.Array)
    x, y = f.values, o.values
    # chunks of 5 inits: the same float64 means summed in another order (sum_error); the
    # spread and RMSE as in test_spread_skill_loop; rank counts are integers (exact)
    rel = 2 * reduction_error(8 + 20 + 2, x.dtype)
    with dask.config.set(scheduler="sync"):
        xr.testing.assert_allclose(results[0].compute(), crps(f, o, dim="init"), rtol=0,
                                   atol=float(crps_error(x, y, axis=0).max()))
        xr.testing.assert_allclose(results[1].compute(), spread_skill(f, o, dim="init"),
                                   rtol=4 * rel,
                                   atol=2 * reduction_error(9, x.dtype) * np.abs(x).max())
        xr.testing.assert_equal(results[2].compute(), rank_histogram(f, o))
        xr.testing.assert_allclose(results[3].compute(), brier(f, o, 0.5, dim=["init", "lon"]),
                                   rtol=0, atol=2 * reduction_error(20 * 5 + 1, x.dtype))


def test_needs_members(ensemble):
    f, o = ensemble
    with pytest.raises(MetricsInputError, match="no 'member' dimension"):
        crps(f.isel(member=0), o)
