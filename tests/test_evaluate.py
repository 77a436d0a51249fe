"""evaluate(): agrees with the metrics applied directly, independent of chunking and
workers, resumable from a store, lazy on archives opened from disk; and its CLI."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import xskillscore as xs

from xearthformer._precision import correlation_error, reduction_error, sum_error
from xearthformer.evaluate import (
    ForecastLayoutError,
    StoreMismatchError,
    evaluate,
)
from xearthformer.metrics import (
    ArchiveGapError,
    ThresholdScaleWarning,
    at_valid_time,
    contingency,
    crps,
    enso_skill,
    persistence_forecast,
)

ALL = ["mse", "rmse", "mae", "correlation", "enso", "contingency"]


def mean_rtol(n: int) -> float:
    """Two float64 means of n non-negative terms (MSE, MAE), in any order: 2 gamma_(n+1)."""
    return 2 * reduction_error(n + 1, "float64")


def r_error(*series: np.ndarray, axis: int = 0) -> float:
    """evaluate's correlations come from one-pass sums (sum p, p^2, p y, ...), which cancel:
    correlation_error with kappa = 1 + mean^2 / var of each series (SST near 27 K with a
    variance near 3: kappa ~ 250), for n = the length along axis."""
    kappa = max(float(np.nanmax(1 + np.nanmean(s, axis) ** 2 / np.nanvar(s, axis))) for s in series)
    return correlation_error(series[0].shape[axis], kappa=kappa)


def nino_error(archive: xr.DataArray, n: int) -> float:
    """The Nino3.4 correlations: r_error of anomaly indices (kappa ~ 1) plus their values'
    float64 rounding (box means, 2 * sum_error), which moves r by at most 2 |dp| / std(p),
    std of the archive's smoothed index."""
    from xearthformer.metrics import nino34
    from xearthformer.metrics.enso import forward_mean

    index = forward_mean(nino34(archive, climatology=archive), dim="time").dropna("time").values
    box_error = 2 * float(sum_error(archive.values, axis=(1, 2), mean=True).max())
    return correlation_error(n, kappa=float(1 + index.mean() ** 2 / index.var())) \
        + 2 * box_error / index.std()


@pytest.fixture(scope="module")
def archive() -> xr.DataArray:
    rng = np.random.default_rng(5)
    t = pd.date_range("2000-01-01", periods=72, freq="MS")
    lat, lon = np.arange(-10.0, 10.1, 5.0), np.arange(180.0, 251.0, 10.0)
    noise = np.zeros((72, lat.size, lon.size))
    for i in range(1, 72):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(size=noise.shape[1:])
    season = np.cos(2 * np.pi * (t.month.values - 1) / 12)[:, None, None]
    da = xr.DataArray(27 + season + noise, dims=("time", "lat", "lon"),
                      coords={"time": t, "lat": lat, "lon": lon}, name="sst",
                      attrs={"units": "K"})
    return da


def noisy_ensemble(context, inits, leads):
    """Persistence plus noise seeded by each init (so independent of chunking)."""
    fc = persistence_forecast(context, inits, leads)
    members = []
    for m in range(4):
        noise = np.stack([np.random.default_rng([int(pd.Timestamp(i).value // 10**9), m])
                          .normal(size=fc.shape[1:]) for i in inits])
        members.append(fc + 0.5 * noise)
    return xr.concat(members, "member").transpose("init", "member", ...)


def test_agrees_with_direct_metrics(archive):
    leads = [1, 2, 3, 4, 5]
    out = evaluate("persistence", archive, leads=leads, metrics=ALL, thresholds=[27.0, 28.5],
                   chunk_size=7)
    inits = archive.time.values[:-5]
    assert out.attrs["n_inits"] == len(inits) == 67
    fc = persistence_forecast(archive, inits, leads)
    ob = at_valid_time(archive, fc)
    err = (fc - ob).values
    n = err.size // err.shape[1]
    np.testing.assert_allclose(out["mse"].values, (err**2).mean((0, 2, 3)), rtol=mean_rtol(n))
    np.testing.assert_allclose(out["mae"].values, np.abs(err).mean((0, 2, 3)), rtol=mean_rtol(n))
    ref_corr = xs.pearson_r(ob, fc, dim="init")
    np.testing.assert_allclose(out["correlation"].values, ref_corr.values, rtol=0,
                               atol=r_error(fc.values, ob.values))
    counts = contingency(fc, ob, [27.0, 28.5], dim=["init", "lat", "lon"])
    for k in counts.data_vars:
        np.testing.assert_array_equal(out[k].transpose("threshold", "lead").values,
                                      counts[k].values)
    skill = enso_skill(fc, archive, climatology=archive)
    r_tol = nino_error(archive, len(inits))
    np.testing.assert_allclose(out["nino34_correlation"].values,
                               skill["correlation"].values, rtol=0, atol=r_tol)
    # a weighted mean of the correlations, weights up to 4.8 (5 leads)
    assert float(out["C_Nino34_WM"]) == pytest.approx(float(skill["C_Nino34_WM"]), rel=0,
                                                      abs=5 * r_tol)
    assert out["lead"].attrs["units"] == "months"


def test_climpred_agrees(archive, cf_standard_name_table):
    import climpred
    leads = [1, 2, 3]
    inits = archive.time.values[:-3]
    fc = persistence_forecast(archive, inits, leads).drop_vars("valid_time")
    hind = climpred.HindcastEnsemble(fc.to_dataset(name="sst")).add_observations(
        archive.to_dataset())
    ref = hind.verify(metric="pearson_r", comparison="e2o", dim="init", alignment="same_inits")
    ours = evaluate("persistence", archive, leads=leads, metrics=["correlation"])
    values = archive.values[:len(inits)]
    np.testing.assert_allclose(ours["correlation"].values,
                               ref["sst"].transpose("lead", "lat", "lon").values, rtol=0,
                               atol=r_error(values, archive.values[3:]))


def test_independent_of_chunking(archive):
    runs = [evaluate("persistence", archive, leads=4, metrics=ALL, thresholds=[27.0, 28.0],
                     chunk_size=c) for c in (1, 5, 1000)]
    for other in runs[1:]:
        for name in ("hits", "misses", "false_alarms", "correct_negatives"):
            xr.testing.assert_identical(other[name], runs[0][name])  # counts: to the bit
        # the same sums in another order: the bounds of test_agrees_with_direct_metrics
        n = len(archive.time) - 4
        np.testing.assert_allclose(other["mse"].values, runs[0]["mse"].values,
                                   rtol=mean_rtol(n * 40))
        np.testing.assert_allclose(other["correlation"].values, runs[0]["correlation"].values,
                                   rtol=0, atol=r_error(archive.values))
        for name in ("nino34_correlation", "C_Nino34_M"):
            np.testing.assert_allclose(other[name].values, runs[0][name].values, rtol=0,
                                       atol=nino_error(archive, n))


def test_ensemble_metrics(archive):
    leads = [1, 2]
    out = evaluate(noisy_ensemble, archive, leads=leads, metrics=["crps", "spread_skill", "rmse"],
                   chunk_size=10)
    inits = archive.time.values[:-2]
    fc = noisy_ensemble(archive, inits, leads)
    ob = at_valid_time(archive, fc)
    ref = crps(fc, ob, dim=["init", "lat", "lon"])
    # CRPS: float64 means of |X - y| and |X - X'| (sum_error of those terms, as in
    # tests/metrics/test_probabilistic.py); spread: a non-negative mean, 2 gamma relative
    x, y = fc.values, ob.values
    crps_tol = (float(sum_error(np.abs(x - y[:, None]), axis=(0, 1, 3, 4), mean=True).max())
                + float(sum_error(0.5 * np.abs(x[:, :, None] - x[:, None]), axis=(0, 1, 2, 4, 5),
                                  mean=True).max()))
    np.testing.assert_allclose(out["crps"].values, ref.values, rtol=0, atol=crps_tol)
    spread = np.sqrt(fc.var("member", ddof=1).mean(["init", "lat", "lon"]))
    np.testing.assert_allclose(out["spread"].values, spread.values,
                               rtol=mean_rtol(x.size // x.shape[2] + 5))


def test_lazy_archive_from_disk(archive, tmp_path):
    path = tmp_path / "archive.nc"
    archive.to_netcdf(path)
    with xr.open_dataset(path, chunks={"time": 12}) as ds:
        assert hasattr(ds["sst"].data, "dask")
        lazy = evaluate("climatology", ds, leads=3, metrics=["rmse", "correlation"])
    eager = evaluate("climatology", archive, leads=3, metrics=["rmse", "correlation"])
    # the same sums of the same values: RMSE relative mean_rtol, correlations r_error
    xr.testing.assert_allclose(lazy, eager, rtol=mean_rtol(archive.size),
                               atol=r_error(archive.values))


def test_store_resumes_after_interruption(archive, tmp_path):
    store = tmp_path / "partials"
    calls = {"n": 0}
    lock = threading.Lock()

    def failing(context, inits, leads):
        with lock:
            calls["n"] += 1
            if calls["n"] > 3:
                raise RuntimeError("killed")
        return persistence_forecast(context, inits, leads)

    kw = dict(leads=3, metrics=["rmse", "correlation", "contingency"], thresholds=[27.0],
              chunk_size=6, store=store)
    with pytest.raises(RuntimeError, match="killed"):
        evaluate(failing, archive, scheduler="sync", **kw)
    finished = sorted(p for p in os.listdir(store) if p.startswith("chunk-"))
    assert len(finished) == 3

    def counting(context, inits, leads):
        with lock:
            calls["n"] += 1
        return persistence_forecast(context, inits, leads)

    calls["n"] = 0
    counting.__name__ = "failing"  # same model name as the first run
    resumed = evaluate(counting, archive, **kw)
    n_chunks = int(np.ceil(69 / 6))
    assert calls["n"] == n_chunks - 3
    full = evaluate(persistence_forecast, archive, **{**kw, "store": None})
    # partial sums read back from the store and added in another order (see above)
    xr.testing.assert_allclose(resumed.drop_attrs(), full.drop_attrs(),
                               rtol=mean_rtol(archive.size), atol=r_error(archive.values))
    xr.testing.assert_identical(resumed["hits"], full["hits"])
    with pytest.raises(StoreMismatchError, match="leads"):
        evaluate(counting, archive, **{**kw, "leads": 2})


@pytest.mark.slow
def test_distributed_two_workers(archive):
    import distributed
    kw = dict(leads=4, metrics=ALL, thresholds=[27.0, 28.0])
    threaded = evaluate("persistence", archive, chunk_size=5, **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        two = evaluate("persistence", archive, chunk_size=3, client=client, **kw)
        cluster.scale(1)
        # Wait on the client's own view. ``client.wait_for_workers`` would overwrite the
        # cluster's worker table with a scheduler snapshot that already lacks the retired
        # worker; the scheduler's "remove" message then finds no entry and distributed's
        # SpecCluster raises KeyError on close (a race seen in CI with distributed 2026.8).
        deadline = time.monotonic() + 60
        while len(client.nthreads()) != 1:
            assert time.monotonic() < deadline, "the cluster did not scale down to one worker"
            time.sleep(0.1)
        one = evaluate("persistence", archive, chunk_size=3, client=client, **kw)
    for res in (two, one):
        xr.testing.assert_identical(res["hits"], threaded["hits"])
        np.testing.assert_allclose(res["correlation"].values, threaded["correlation"].values,
                                   rtol=0, atol=r_error(archive.values))
        np.testing.assert_allclose(res["C_Nino34_WM"].values, threaded["C_Nino34_WM"].values,
                                   rtol=0, atol=4 * nino_error(archive, len(archive.time)))


def test_init_selection_and_minute_leads(archive):
    out = evaluate("persistence", archive, leads=2, init=slice("2001-01", "2001-12"))
    assert out.attrs["n_inits"] == 12 and out.attrs["first_init"].startswith("2001-01-01")
    radar = archive.assign_coords(time=pd.date_range("2019-07-01", periods=72, freq="5min"))
    out = evaluate("persistence", radar, leads=[5, 10], chunk_size=1, metrics=["mse"])
    assert out["lead"].attrs["units"] == "minutes" and out.attrs["n_inits"] == 70
    fc = persistence_forecast(radar, radar.time.values[:70], [5, 10])
    err = (fc - at_valid_time(radar, fc)).values
    np.testing.assert_allclose(out["mse"].values, (err**2).mean((0, 2, 3)),
                               rtol=mean_rtol(err.size // err.shape[1]))


def test_bad_input(archive):
    gappy = archive.drop_sel(time=archive.time.values[[10, 11, 30]])
    with pytest.raises(ArchiveGapError, match="2000-11, 2000-12, 2002-07"):
        evaluate("persistence", gappy, leads=2)
    with pytest.raises(ValueError, match="unknown model 'earthformer-icar-ens'.*Did you mean "
                       "'earthformer-icar-enso'"):
        evaluate("earthformer-icar-ens", archive, leads=2)
    with pytest.raises(ForecastLayoutError, match="dims"):
        evaluate(lambda c, i, l: c.isel(time=0), archive, leads=2)
    with pytest.warns(ThresholdScaleWarning, match="above the data maximum"):
        evaluate("persistence", archive, leads=2, metrics=["contingency"])  # 0-255 default
    with pytest.raises(ValueError, match="lack context or verifying"):
        evaluate("persistence", archive, leads=2, init=archive.time.values[-1:])


def test_cli(archive, tmp_path, capsys):
    from xearthformer.cli import main

    path = tmp_path / "archive.nc"
    archive.to_netcdf(path)
    out = tmp_path / "scores.nc"
    code = main(["evaluate", str(path), "--model", "persistence", "--leads", "1-3",
                 "-o", str(out), "--metrics", "rmse,enso", "--chunk-size", "20"])
    assert code == 0 and "evaluated 69 inits" in capsys.readouterr().out
    with xr.open_dataset(out) as scores:
        assert scores["rmse"].sizes["lead"] == 3 and "C_Nino34_WM" in scores
    code = main(["evaluate", str(tmp_path / "missing*.nc"), "--model", "persistence",
                 "-o", str(out)])
    assert code == 2 and "no archive found" in capsys.readouterr().err
