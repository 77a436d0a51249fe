"""The embedded demo Earthformers: they load, and they beat persistence on held-out data.

The held-out data are the default tutorial datasets (seed 0), which the training script
(``scripts/train_demo_models.py``, which trains with :func:`xearthformer.fit`) never sees (it
trains on seed 1 and selects on seed 2).
The scores are computed here with the package's metrics (:func:`xearthformer.metrics.enso_skill`,
:func:`xearthformer.metrics.csi_m`), independently of the script's evaluation (the ENSO
forecasts go through the public :func:`xearthformer.forecast`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

import xearthformer
from xearthformer import tutorial
from xearthformer._precision import output_tolerance, unit_roundoff
from xearthformer.metrics import (
    SEVIR_THRESHOLDS,
    at_valid_time,
    csi_m,
    enso_skill,
    nino34,
    persistence_forecast,
)
from xearthformer.metrics.enso import forward_mean
from xearthformer.models import Earthformer
from xearthformer.zoo.model_dir import load_model_dir

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "xearthformer" / "zoo" / "demo"
NAMES = ("earthformer-demo-enso", "earthformer-demo-storms")
#: how each demo model was trained by fit: (loss, augmentation)
FIT_OPTIONS = {"earthformer-demo-enso": ("mse", None),
               "earthformer-demo-storms": ("balanced", "flip_rotate")}


def _load(name: str) -> tuple:
    card, weights = load_model_dir(DEMO / name)
    model = Earthformer.from_official_kwargs(card.official_kwargs)
    model.load_state_dict(weights, strict=True)
    return card, model.eval()


@torch.no_grad()
def _predict(model: Earthformer, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """x: "n t h w" in model units -> "n t h w"."""
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[..., None]
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])[..., 0].numpy()


@pytest.mark.parametrize("name", NAMES)
def test_demo_model_loads_strictly(name: str) -> None:
    card, model = _load(name)
    c = card.contract
    assert card.name == name and card.kind == "earthformer" and card.demo
    assert card.licence == "Apache-2.0" and "not for real forecasts" in card.description
    assert tuple(card.official_kwargs["input_shape"]) == (c.in_len, *c.grid_shape, 1)
    assert tuple(card.official_kwargs["target_shape"]) == (c.out_len, *c.grid_shape, 1)
    held = card.training["held_out"]
    assert set(held) == {"model", "persistence", "metric"}
    size = sum(f.stat().st_size for f in (DEMO / name).iterdir())
    assert size < 5e6, f"{name} is {size / 1e6:.1f} MB; demo models must stay a few MB"
    out = model(torch.zeros(1, c.in_len, *c.grid_shape, 1))
    assert out.shape == (1, c.out_len, *c.grid_shape, 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_demo_model_was_trained_by_fit(name: str) -> None:
    card, _ = load_model_dir(DEMO / name)
    t = card.training
    assert t["trainer"] == "xearthformer.fit"
    assert t["script"] == "scripts/train_demo_models.py"  # the full run, not --quick
    assert (t["loss"], t["augment"]) == FIT_OPTIONS[name]
    assert {"loss_curve", "validation", "best_step", "scores", "monitor"} <= set(t)
    assert t["steps_done"] == t["steps"] and t["world_size"] == 1 and t["device"] == "cpu"
    assert t["train_seconds"] < 3600, "each demo model must train in well under an hour"
    report = (DEMO / name / "report.md").read_text()
    assert "xearthformer.fit" in report and "persistence" in report


@pytest.mark.slow
def test_enso_demo_beats_persistence_on_held_out_data() -> None:
    card, _ = load_model_dir(DEMO / "earthformer-demo-enso")
    c = card.contract
    sst = tutorial.open_dataset("enso").sst  # held out: seed 0
    # every init with a full context and a full forecast window, through the public forecast
    inits = sst["time"].values[c.in_len - 1:sst.sizes["time"] - c.out_len]
    leads = np.arange(1, c.out_len + 1)
    fc = xearthformer.forecast(sst, lead=c.out_len, init=inits, model="earthformer-demo-enso", progress=False)
    skill = enso_skill(fc, sst, weights=None, climatology=0.0)
    pers_fc = persistence_forecast(sst, inits, leads)
    pers = enso_skill(pers_fc, sst, weights=None, climatology=0.0)
    model_score, pers_score = float(skill["C_Nino34_M"]), float(pers["C_Nino34_M"])
    assert model_score > pers_score + 0.1, (model_score, pers_score)
    # the numbers shipped in model.json are the ones this evaluation reproduces, to what float32
    # promises: on another CPU (or batch size) each forecast value moves by up to eps (the
    # float32 network bound, output_tolerance), so does the box-mean, 3-month index; a
    # correlation over N inits moves by at most |dp| / |p - mean(p)| <= eps / std(p), per lead,
    # and C-Nino3.4-M by the mean of that over the leads. The data are float32 (rounded from
    # float64 exp/sin, which may round differently: one ulp, 2u|x|), moving both series.
    held = card.training["held_out"]
    assert held["metric"] == "C-Nino3.4-M"
    eps_data = 2 * unit_roundoff("float32") * float(np.nanmax(np.abs(sst.values)))

    def spread(forecast):  # std over inits of the 3-month index, by lead
        return forward_mean(nino34(forecast, climatology=0.0, weights=None)).std("init")

    observed = at_valid_time(forward_mean(nino34(sst, climatology=0.0, weights=None), dim="time"), fc)
    eps = output_tolerance(fc, scale=c.scale, offset=c.offset) + eps_data
    inv_obs = 1 / observed.std("init")
    model_bound = float((eps / spread(fc) + eps_data * inv_obs).mean())
    pers_bound = float((eps_data / spread(pers_fc) + eps_data * inv_obs).mean())
    print(f"enso: model {model_score - held['model']:.2e} (bound {model_bound:.2e}), "
          f"persistence {pers_score - held['persistence']:.2e} (bound {pers_bound:.2e})")
    assert abs(model_score - held["model"]) <= model_bound
    assert abs(pers_score - held["persistence"]) <= pers_bound


@pytest.mark.slow
def test_storms_demo_beats_persistence_on_held_out_data() -> None:
    card, model = _load("earthformer-demo-storms")
    c = card.contract
    vil = tutorial.open_dataset("storms").vil  # held out: seed 0
    values = vil.values.astype(np.float32)
    context, target = values[:, :c.in_len], values[:, c.in_len:c.in_len + c.out_len]
    pred = c.denormalise(_predict(model, c.normalise(context)))
    dims = ("event", "lead", "y", "x")
    obs = xr.DataArray(target, dims=dims)
    model_score = float(csi_m(xr.DataArray(pred, dims=dims), obs))
    pers = np.repeat(context[:, -1:], c.out_len, axis=1)
    pers_score = float(csi_m(xr.DataArray(pers, dims=dims), obs))
    assert model_score > pers_score, (model_score, pers_score)
    # the numbers shipped in model.json are the ones this evaluation reproduces, to what float32
    # promises: each predicted value moves by up to eps (output_tolerance, 0..255 scale) on
    # another CPU; only pixels within eps of a threshold t can change their event, k_t of them,
    # and CSI_t = H / (H + M + F) (H + M fixed by the observations) by at most
    # k_t / (H + M + F - k_t). Persistence is uint8 data against uint8 data: exact counts, so
    # the same float64 ratios, bit for bit.
    held = card.training["held_out"]
    assert held["metric"] == "CSI-M"
    eps = output_tolerance(pred, scale=c.scale, offset=c.offset)
    bounds = []
    for t in SEVIR_THRESHOLDS:
        near = int((np.abs(pred - t) <= eps).sum())
        union = int(((pred >= t) | (target >= t)).sum())
        bounds.append(near / max(union - near, 1))
    model_bound = float(np.mean(bounds))
    print(f"storms: model {model_score - held['model']:.2e} (bound {model_bound:.2e}), "
          f"persistence {pers_score - held['persistence']:.2e}")
    assert abs(model_score - held["model"]) <= model_bound
    assert pers_score == held["persistence"]


@pytest.mark.slow
def test_training_script_quick_run(tmp_path: Path) -> None:
    script = REPO / "scripts" / "train_demo_models.py"
    run = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in NAMES:
        card, weights = load_model_dir(tmp_path / name)
        model = Earthformer.from_official_kwargs(card.official_kwargs)
        model.load_state_dict(weights, strict=True)
        assert set(card.training["held_out"]) == {"model", "persistence", "metric"}
        assert card.training["trainer"] == "xearthformer.fit" and card.demo
        assert (card.training["loss"], card.training["augment"]) == FIT_OPTIONS[name]
        assert (tmp_path / name / "report.md").read_text().startswith(f"# {name}")
