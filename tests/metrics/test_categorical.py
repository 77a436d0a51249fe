"""Contingency scores, pooled CSI and FSS against xskillscore, hand-worked cases and loops."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import xskillscore as xs

from xearthformer._precision import reduction_error, sum_error, unit_roundoff

from xearthformer.metrics import (
    SEVIR_THRESHOLDS,
    CoordinateMismatchError,
    ThresholdScaleWarning,
    bias,
    contingency,
    csi,
    csi_m,
    far,
    fss,
    hss,
    pod,
    pooled_csi,
)


@pytest.fixture
def radar():
    """VIL-like frames on the 0-255 scale: (init 4, lead 3, y 16, x 16), seeded."""
    rng = np.random.default_rng(3)
    obs = rng.gamma(0.6, 60.0, size=(4, 3, 16, 16)).clip(0, 255)
    fc = (obs + rng.normal(0, 30, size=obs.shape)).clip(0, 255)
    coords = {"init": pd.date_range("2019-07-01", periods=4, freq="h"), "lead": [5, 10, 15],
              "y": np.arange(16), "x": np.arange(16)}
    dims = ("init", "lead", "y", "x")
    return xr.DataArray(fc, dims=dims, coords=coords), xr.DataArray(obs, dims=dims, coords=coords)


def test_hand_worked_case():
    f = xr.DataArray([0.0, 20.0, 80.0, 10.0, 200.0, np.nan], dims="x")
    o = xr.DataArray([0.0, 30.0, 10.0, 90.0, 250.0, 100.0], dims="x")
    c = contingency(f, o, [16, 74])
    # thr 16: f events x1,x2,x4; o events x1,x3,x4 (x5 NaN left out)
    assert c["hits"].values.tolist() == [2, 1]
    assert c["misses"].values.tolist() == [1, 1]
    assert c["false_alarms"].values.tolist() == [1, 1]
    assert c["correct_negatives"].values.tolist() == [1, 2]
    assert c["hits"].dtype == np.int64
    np.testing.assert_allclose(csi(f, o, [16, 74]).values, [2 / 4, 1 / 3])
    np.testing.assert_allclose(pod(f, o, [16, 74]).values, [2 / 3, 1 / 2])
    np.testing.assert_allclose(far(f, o, [16, 74]).values, [1 / 3, 1 / 2])
    np.testing.assert_allclose(bias(f, o, [16, 74]).values, [1.0, 1.0])
    # HSS = 2(HC - MF) / ((H+M)(M+C) + (H+F)(F+C)): thr 16 -> 2(2-1)/(3*2+3*2)
    np.testing.assert_allclose(hss(f, o, [16, 74]).values, [2 / 12, 2 * (2 - 1) / (2 * 3 + 2 * 3)])
    # SEVIR's eps=1e-4 as an option
    np.testing.assert_allclose(csi(f, o, [16], eps=1e-4).values, [2 / (4 + 1e-4)])


def test_against_xskillscore(radar):
    fc, obs = radar
    dims = ["init", "y", "x"]
    ours = contingency(fc, obs, SEVIR_THRESHOLDS, dim=dims)
    for i, t in enumerate(SEVIR_THRESHOLDS):
        edges = np.array([-np.inf, t, np.inf])
        ref = xs.Contingency(obs, fc, edges, edges, dim=dims)
        table = ref.table  # categories 1 (below) and 2 (>= t)
        hits = table.sel(observations_category=2, forecasts_category=2)
        assert (ours["hits"].isel(threshold=i) == hits).all()
        # ratios of exact integer counts: each code rounds a handful of float64 operations
        # (HSS: up to 8, through its expected-hits form), 2u each way: rtol 16u
        rtol = 16 * unit_roundoff("float64")
        np.testing.assert_allclose(csi(fc, obs, t, dim=dims).squeeze("threshold"),
                                   ref.threat_score(), rtol=rtol)
        np.testing.assert_allclose(pod(fc, obs, t, dim=dims).squeeze("threshold"),
                                   ref.hit_rate(), rtol=rtol)
        np.testing.assert_allclose(far(fc, obs, t, dim=dims).squeeze("threshold"),
                                   ref.false_alarm_ratio(), rtol=rtol)
        np.testing.assert_allclose(bias(fc, obs, t, dim=dims).squeeze("threshold"),
                                   ref.bias_score(), rtol=rtol)
        np.testing.assert_allclose(hss(fc, obs, t, dim=dims).squeeze("threshold"),
                                   ref.heidke_score(), rtol=rtol)
    assert ours["hits"].dims == ("threshold", "lead")


def test_counts_are_additive_over_chunks(radar):
    fc, obs = radar
    whole = contingency(fc, obs)  # pooled: the SEVIR convention
    parts = [contingency(fc.isel(init=[i]), obs.isel(init=[i])) for i in range(4)]
    total = sum(parts[1:], parts[0])
    xr.testing.assert_identical(total.drop_attrs(), whole.drop_attrs())
    expected = np.mean([contingency(fc, obs, [t])["hits"].item() / (
        contingency(fc, obs, [t])[["hits", "misses", "false_alarms"]].to_array().sum().item())
        for t in SEVIR_THRESHOLDS])
    # each CSI a correctly rounded ratio of exact counts (u), then a float64 mean of 6
    csis = [contingency(fc, obs, [t])["hits"].item() / contingency(fc, obs, [t])[
        ["hits", "misses", "false_alarms"]].to_array().sum().item() for t in SEVIR_THRESHOLDS]
    assert abs(float(csi_m(fc, obs)) - expected) <= sum_error(csis, mean=True) + 2 * unit_roundoff(
        "float64") * expected


def test_dask_lazy_equal(radar, no_compute):
    fc, obs = radar
    lazy = contingency(fc.chunk({"init": 1}), obs.chunk({"init": 1}), dim=["init", "y", "x"])
    scores = csi(fc.chunk({"init": 1}), obs.chunk({"init": 1}), dim=["init", "y", "x"])
    p = pooled_csi(fc.chunk({"init": 1}), obs.chunk({"init": 1}), pool=[4, 16])
    f = fss(fc.chunk({"init": 1}), obs.chunk({"init": 1}), [74, 133], window=[1, 3])
    for obj in (lazy["hits"], scores, p, f):
        assert isinstance(obj.data, dask.array.Array)
    with dask.config.set(scheduler="sync"):
        xr.testing.assert_identical(lazy.compute(), contingency(fc, obs, dim=["init", "y", "x"]))
        # counts summed by chunk are exact integers, so the ratios are the same, to the bit
        xr.testing.assert_identical(scores.compute(), csi(fc, obs, dim=["init", "y", "x"]))
        xr.testing.assert_identical(p.compute(), pooled_csi(fc, obs, pool=[4, 16]))
        # FSS sums squared fractions (k/n^2, not exact in binary) in another order: relative
        # gamma_n of its non-negative sums, through 1 - A/B: 2 * (A/B) * 2 gamma_n <= 4 gamma_n
        n = fc.size
        xr.testing.assert_allclose(f.compute(), fss(fc, obs, [74, 133], window=[1, 3]), rtol=0,
                                   atol=4 * reduction_error(n + 4, "float64"))


def test_pooled_csi_matches_loop(radar):
    fc, obs = radar
    k = 4

    def maxpool(a):
        out = np.zeros(a.shape[:-2] + (a.shape[-2] // k, a.shape[-1] // k))
        for i in range(out.shape[-2]):
            for j in range(out.shape[-1]):
                out[..., i, j] = a[..., i * k:(i + 1) * k, j * k:(j + 1) * k].max(axis=(-2, -1))
        return out

    pf, po = maxpool(fc.values), maxpool(obs.values)
    for t, got in zip(SEVIR_THRESHOLDS, pooled_csi(fc, obs, pool=k).values):
        h = ((pf >= t) & (po >= t)).sum()
        m = ((pf < t) & (po >= t)).sum()
        fa = ((pf >= t) & (po < t)).sum()
        assert got == h / (h + m + fa)  # exact counts, one correctly rounded division


def test_fss_matches_loop(radar):
    fc, obs = radar
    n, t = 3, 74.0

    def fractions(frame):
        ny, nx = frame.shape
        out = np.zeros(frame.shape)
        for i in range(ny):
            for j in range(nx):
                win = frame[max(i - n // 2, 0):i + n - n // 2, max(j - n // 2, 0):j + n - n // 2]
                out[i, j] = win.sum() / n**2
        return out

    pf = np.array([[fractions(fr >= t) for fr in row] for row in fc.values])
    po = np.array([[fractions(fr >= t) for fr in row] for row in obs.values])
    expected = 1 - ((pf - po) ** 2).sum() / ((pf**2).sum() + (po**2).sum())
    got = fss(fc, obs, t, window=n)
    assert got.dims == ("threshold",)
    # fractions k/9 computed by a loop here and by a box filter there (a few u each), then
    # non-negative float64 sums A and B of pf.size terms (gamma_n) and 1 - A/B (A <= B):
    # 2 * (A/B) * (gamma_n + 4u) each way
    bound = 4 * reduction_error(pf.size + 4, "float64")
    assert float(got[0]) == pytest.approx(expected, rel=0, abs=bound)
    by_lead = fss(fc, obs, t, window=n, dim="init")
    assert by_lead.dims == ("threshold", "lead")


def test_threshold_scale_warning_and_mismatch(radar):
    fc, obs = radar
    with pytest.warns(ThresholdScaleWarning, match="0-255"):
        csi(fc / 255.0, obs / 255.0)  # [0, 1] data with the 0-255 SEVIR thresholds
    shifted = obs.assign_coords(x=obs.x + 1)
    with pytest.raises(CoordinateMismatchError, match="'x'.*0 vs 1"):
        contingency(fc, shifted, [16])
