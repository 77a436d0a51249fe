"""enso_skill against a plain-numpy transcription of the official compute_enso_score."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xearthformer._precision import correlation_error, reduction_error, sum_error
from xearthformer.metrics import enso_skill, icar_lead_weights, nino34


def correlation_bound(fields: np.ndarray) -> float:
    """Two evaluations of the lead-wise index correlations of forecast fields (init, lead, lat,
    lon) differ by at most: the two-pass float64 correlation of n centred pairs
    (correlation_error, kappa 1), plus the index values' own rounding (a box mean, then a
    3-month mean, in another order: 2 * sum_error), which moves r by <= |dp| / std(p)."""
    n = fields.shape[0]
    box = fields[..., 10:13, 19:30]
    index_error = 2 * float(sum_error(box, axis=(-2, -1), mean=True).max())
    spread = box.mean((-2, -1)).std(0).min()
    return correlation_error(n) + 2 * index_error / spread


def official_scores(pred_field: np.ndarray, label_nino: np.ndarray) -> dict:
    """numpy loop of Earthformer's sst_to_nino + compute_enso_score (N, 14, 24, 48) -> 12 leads."""
    box = pred_field[..., 10:13, 19:30].mean(axis=(-2, -1))  # (N, 14)
    n, t = box.shape
    pred = np.stack([(box[:, j] + box[:, j + 1] + box[:, j + 2]) / 3 for j in range(t - 2)], 1)
    a = np.array([1.5] * 4 + [2] * 7 + [3] * 7 + [4] * 6)[:12] * np.log(np.arange(12) + 1)
    cor = np.zeros(12)
    for lead in range(12):
        p = pred[:, lead] - pred[:, lead].mean()
        y = label_nino[:, lead] - label_nino[:, lead].mean()
        cor[lead] = (p * y).sum() / (np.sqrt((p**2).sum() * (y**2).sum()) + 1e-6)
    rmse = np.sqrt(((pred - label_nino) ** 2).mean(0))
    return {"cor": cor, "M": cor.mean(), "WM": (a * cor).mean(), "rmse": rmse}


def test_weights_table():
    w = icar_lead_weights(12)
    expected = [0, 1.0397, 1.6479, 2.0794, 3.2189, 3.5835, 3.8918, 4.1589, 4.3944, 4.6052,
                4.7958, 7.4547]
    # the table is printed to 4 decimals: half a unit of the last one (float64 log: 1e-15)
    np.testing.assert_allclose(w, expected, rtol=0, atol=5e-5)
    assert abs(w.sum() - 40.8703) < 5e-5


@pytest.fixture
def icar_case(icar_sst):
    """Forecast SST fields (init, lead 1..14, lat, lon) and the matching label series."""
    rng = np.random.default_rng(2)
    obs = icar_sst  # 48 months of anomalies on the ICAR grid
    inits = obs.time.values[:30]
    leads = np.arange(1, 15)
    truth = np.stack([obs.values[i + 1:i + 15] for i in range(30)])
    pred = 0.6 * truth + rng.normal(size=truth.shape)
    vt = np.stack([obs.time.values[i + 1:i + 15] for i in range(30)])
    fc = xr.DataArray(pred, dims=("init", "lead", "lat", "lon"),
                      coords={"init": inits, "lead": leads, "lat": obs.lat, "lon": obs.lon,
                              "valid_time": (("init", "lead"), vt)})
    fc["lead"].attrs["units"] = "months"
    box = obs.values[:, 10:13, 19:30].mean((-2, -1))
    labels = np.stack([[box[i + 1 + j:i + 4 + j].mean() for j in range(12)] for i in range(30)])
    return fc, obs, labels


def test_matches_official_from_fields_and_series(icar_case):
    fc, obs, labels = icar_case
    ref = official_scores(fc.values, labels)
    skill = enso_skill(fc, obs)  # fields in, official defaults (climatology 0, unweighted)
    r_tol = correlation_bound(fc.values)
    np.testing.assert_allclose(skill["correlation"].sel(lead=slice(1, 12)).values, ref["cor"],
                               rtol=0, atol=r_tol)
    # means of 12 correlations (weights up to 7.5): the correlations' bound, times the weights
    assert abs(float(skill["C_Nino34_M"]) - ref["M"]) <= r_tol
    assert abs(float(skill["C_Nino34_WM"]) - ref["WM"]) <= r_tol * icar_lead_weights(12).max()
    # RMSE of indices: their rounding (index error <= r_tol * std by construction) plus a
    # mean of 30 squares (2 gamma_31 relative), through the square root
    rmse = ref["rmse"]
    np.testing.assert_allclose(skill["index_rmse"].sel(lead=slice(1, 12)).values, rmse,
                               rtol=2 * reduction_error(31, "float64"), atol=r_tol)
    # field MSE over all 14 leads, by lead and overall, against a numpy loop: float64 means of
    # non-negative terms, relative bound 2 gamma_(n+1)
    truth = np.stack([obs.values[i + 1:i + 15] for i in range(30)])
    sq = (fc.values - truth) ** 2
    np.testing.assert_allclose(skill["mse"].values, sq.mean((0, 2, 3)), rtol=2 * reduction_error(
        sq.size // sq.shape[1] + 1, "float64"))
    np.testing.assert_allclose(float(skill["MSE"]), sq.mean(),
                               rtol=2 * reduction_error(sq.size + 1, "float64"))
    # the same with indices in and labels per (init, lead)
    p = nino34(fc, climatology=0, weights=None)
    lab = xr.DataArray(labels, dims=("init", "lead"),
                       coords={"init": fc.init, "lead": np.arange(1, 13)})
    skill2 = enso_skill(p, lab)
    np.testing.assert_allclose(skill2["correlation"].values, ref["cor"], rtol=0, atol=r_tol)


def test_ensemble_mean_and_dask_lazy(icar_case, no_compute):
    fc, obs, labels = icar_case
    ens = xr.concat([fc, fc + 0.1, fc - 0.1], "member")
    lazy_ens = ens.chunk({"init": 7}).assign_coords(valid_time=ens.valid_time)
    lazy = enso_skill(lazy_ens, obs.chunk({"time": 12}))
    assert all(hasattr(v.data, "dask") for k, v in lazy.data_vars.items() if k != "lead_weight")
    # chunks of 7 inits: the same float64 sums in another order; the ensemble mean adds a mean
    # of 3 (gamma_4) before the box; MSE terms are as in test_matches_official_...
    tol = correlation_bound(ens.values.mean(0)) + 2 * reduction_error(4, "float64") * float(
        np.abs(ens.values).max())
    with dask.config.set(scheduler="sync"):
        xr.testing.assert_allclose(lazy.compute(), enso_skill(fc, obs), rtol=tol,
                                   atol=tol * float(icar_lead_weights(12).max()))


def test_missing_valid_times_are_named(icar_case):
    from xearthformer.metrics import CoordinateMismatchError

    fc, obs, _ = icar_case
    with pytest.raises(CoordinateMismatchError, match="2003-0"):
        enso_skill(fc, obs.isel(time=slice(0, 40)))


def test_perfect_forecast_upper_bound():
    t = pd.date_range("2000-01-01", periods=40, freq="MS")
    obs = xr.DataArray(np.sin(np.arange(40) / 3.0), dims="time", coords={"time": t})
    from xearthformer.metrics import persistence_forecast

    fc = persistence_forecast(obs, t[:20], range(1, 15))
    fc = fc.copy(data=np.stack([obs.values[i + 1:i + 15] for i in range(20)]))
    s = enso_skill(fc, obs)
    # a perfect forecast: r = S / (S + eps), S = sum of squared index anomalies (> 0.5 here),
    # with the official eps = 1e-6 in the denominator: 1 - r <= 2e-6 (rounding: 1e-15)
    assert abs(float(s["C_Nino34_WM"]) - icar_lead_weights(12).mean()) < 2e-6 * 7.5
