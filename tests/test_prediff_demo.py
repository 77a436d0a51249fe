"""The shipped PreDiff demo models on held-out data (issue 6 §3).

Held-out data: the default tutorial data (seed 0); the models were trained on seed 1 and
their knowledge control checked on seed 2 (``scripts/train_demo_prediff.py``). Everything goes
through the public ``xearthformer.ensemble`` / ``xearthformer.forecast``. The numbers of the
demo Earthformers are never hard-coded: they are computed here.

Sizes are kept small (few inits, members and DDIM steps) so that each test takes well under a
minute on a 2-core CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
import xskillscore as xs

import xearthformer
from xearthformer.metrics import spread_skill

KC = [-2, 0, 2]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sst() -> xr.DataArray:
    return xearthformer.tutorial.open_dataset("enso")["sst"]


def inits(sst: xr.DataArray, n: int) -> np.ndarray:
    candidates = sst.time.values[11:-14]
    return candidates[np.linspace(0, len(candidates) - 1, n).round().astype(int)]


def check_control(values: np.ndarray, mu: float, sigma: float, attrs: dict) -> None:
    """Monotonic in kc_sigma, within 0.5 sigma of each target ``mu + k sigma``."""
    assert np.all(np.diff(values) > 0), f"not monotonic in kc_sigma: {values}"
    errors = (values - (mu + np.asarray(KC) * sigma)) / sigma
    assert np.all(np.abs(errors) <= 0.5), (
        f"ensemble means {np.round(values, 3)} miss the targets mu + k sigma by "
        f"{np.round(errors, 2)} sigma (mu {mu:.3f}, sigma {sigma:.3f})")
    # the same float64 operations, mu + k * sigma, each correctly rounded: the same bits
    np.testing.assert_array_equal(attrs["kc_target"], mu + np.asarray(KC, dtype=float) * sigma)


def test_ensemble_is_calibrated_and_beats_the_deterministic_demo(sst):
    chosen = inits(sst, 8)
    ens = xearthformer.ensemble(sst, n=8, init=chosen, progress=False)
    det = xearthformer.forecast(sst, lead=14, init=chosen)  # the demo Earthformer
    obs = sst.sel(time=ens["valid_time"]).drop_vars("time")
    ocean = obs.notnull().all(["init", "lead"])
    crps = xs.crps_ensemble(obs.where(ocean, 0.0), ens.where(ocean, 0.0), member_dim="member",
                            dim=[])
    crps = float(crps.where(ocean).mean())
    mae_det = float(abs(det - obs).where(ocean).mean())
    ratio = float(spread_skill(ens.where(ocean), obs.where(ocean),
                               dim=["init", "lead", "lat", "lon"])["ratio"])
    assert crps < mae_det, f"ensemble CRPS {crps:.3f} K does not beat the demo Earthformer MAE {mae_det:.3f} K"
    assert 0.5 <= ratio <= 2.0, f"spread-skill ratio {ratio:.2f} outside 0.5-2"


def test_enso_knowledge_control_reaches_its_targets(sst):
    info = xearthformer.load_model("prediff-demo-enso").card.contract.alignment
    mu, sigma = info["mu"], info["sigma"]
    sc = xearthformer.ensemble(sst, n=2, kc_sigma=KC, init=inits(sst, 4), steps=20,
                               progress=False)
    box = sc.sel(lat=slice(-5, 5), lon=slice(190, 240)).mean(["lat", "lon"])  # unweighted, as trained
    values = box.mean(["lead", "member", "init"]).values  # Nino3.4 mean anomaly of the window
    check_control(values, mu, sigma, sc.attrs)
    # the fields stay physical: within the training extremes widened by 50 percent
    train = xearthformer.tutorial.open_dataset("enso", seed=1, n_years=300)["sst"]
    lo, hi = float(train.min()), float(train.max())
    assert float(sc.min()) >= lo - 0.5 * abs(lo) and float(sc.max()) <= hi + 0.5 * abs(hi), (
        float(sc.min()), float(sc.max()), lo, hi)


def test_storms_knowledge_control_reaches_its_targets():
    info = xearthformer.load_model("prediff-demo-storms").card.contract.alignment
    mu, sigma = info["mu"], info["sigma"]
    vil = xearthformer.tutorial.open_dataset("storms").vil  # held out: seed 0
    events = np.linspace(0, vil.sizes["event"] - 1, 4).round().astype(int)
    context = vil.isel(event=events)
    init = context.time.values[12]  # 13 frames of context, 12 forecast
    sc = xearthformer.ensemble(context, n=2, kc_sigma=KC, init=[init], model="prediff-demo-storms",
                               progress=False)
    assert dict(sc.sizes)["lead"] == 12
    # the controlled quantity: mean intensity (VIL 0-255) over the 12 frames and every pixel
    values = sc.mean(["event", "init", "member", "lead", "y", "x"]).values
    check_control(values, mu, sigma, sc.attrs)
    # physical range: decoded radar fields are clipped to the model's valid range, and say so
    assert float(sc.min()) >= 0.0 and float(sc.max()) <= 255.0
    assert "valid range [0, 255]" in sc.attrs["postprocessing"]
    assert np.isfinite(sc.values).all()
