"""xearthformer.ensemble with the DPM-Solver++(2M) sampler (issue 23 §1)."""

from __future__ import annotations

import numpy as np
import pytest

import xearthformer
from xearthformer._ensemble import DPMPP_DEFAULT_STEPS
from xearthformer.ensembles import EnsembleOptionError


@pytest.fixture(scope="module")
def sst():
    return xearthformer.tutorial.open_dataset("enso", n_years=3)["sst"]


def test_dpmpp_ensemble_attrs_reproducible_and_spread(sst):
    a = xearthformer.ensemble(sst, n=3, sampler="dpmpp", steps=4, lead=3, seed=1, progress=False)
    b = xearthformer.ensemble(sst, n=3, sampler="dpmpp", steps=4, lead=3, seed=1, progress=False)
    ode = xearthformer.ensemble(sst, n=3, sampler="dpmpp", steps=4, lead=3, seed=1, eta=0,
                                progress=False)
    assert a.attrs["sampler"] == "dpmpp" and a.attrs["steps"] == 4
    assert a.attrs["eta"] == 1.0 and ode.attrs["eta"] == 0.0  # the model's eta: 1, the SDE
    assert not np.allclose(a.values, ode.values, equal_nan=True)
    np.testing.assert_array_equal(a.values, b.values)
    assert float(a.std("member").mean()) > 0
    ocean = sst.isel(time=-1).notnull()
    assert bool(np.isfinite(a).where(ocean, True).all())
    # the same members' noise as DDIM: with 2 steps both samplers make the same first-order
    # move (eta = 1: the same noise too), then return the clean estimate (float32 latents, see
    # tests/diffusion/test_dpmpp.py; then the decoder and de-normalisation to K, scale ~1)
    d2 = xearthformer.ensemble(sst, n=2, sampler="dpmpp", steps=2, lead=3, progress=False)
    i2 = xearthformer.ensemble(sst, n=2, sampler="ddim", steps=2, eta=1.0, lead=3,
                               progress=False)
    np.testing.assert_allclose(d2.values, i2.values, rtol=1e-4, atol=1e-4)


def test_dpmpp_default_steps(sst):
    ens = xearthformer.ensemble(sst, n=1, sampler="dpmpp", lead=1, progress=False)
    assert ens.attrs["steps"] == DPMPP_DEFAULT_STEPS


def test_dpmpp_with_knowledge_control_moves_the_quantity(sst):
    sc = xearthformer.ensemble(sst, n=2, kc_sigma=[-2, 2], sampler="dpmpp", steps=6,
                               progress=False)
    box = sc.sel(lat=slice(-5, 5), lon=slice(190, 240)).mean(["init", "lat", "lon", "lead",
                                                             "member"])
    assert float(box.sel(kc_sigma=2)) > float(box.sel(kc_sigma=-2)) + 0.5


def test_dpmpp_bad_steps_and_eta(sst):
    with pytest.raises(EnsembleOptionError, match="DPMPP takes 1..1000 steps"):
        xearthformer.ensemble(sst, n=1, sampler="dpmpp", steps=0, progress=False)
    with pytest.raises(EnsembleOptionError, match="eta=0.5: sampler='dpmpp' takes eta=0"):
        xearthformer.ensemble(sst, n=1, sampler="dpmpp", eta=0.5, progress=False)


def test_default_sampler_is_the_cards_choice(tmp_path):
    """Both demo cards make DPM-Solver++ (15 steps, the SDE) their default, with the evidence
    beside it; a card without one keeps the sampler it was tuned with, and an explicit
    ``sampler=`` or ``steps=`` wins (issue 23 §1)."""
    import json
    import shutil

    from xearthformer import _ensemble
    from xearthformer.zoo import registry

    def resolved(name, **kw):
        opts = dict(control=None, sampler=None, steps=None, norm=None, guide_scale=None) | kw
        return _ensemble.resolve_options(xearthformer.load_model(name), **opts)

    for name in ("prediff-demo-enso", "prediff-demo-storms"):
        chosen = resolved(name)
        assert (chosen.sampler, chosen.steps, chosen.eta) == ("dpmpp", DPMPP_DEFAULT_STEPS, 1.0)
        card = xearthformer.load_model(name).card.training
        assert f"bench_ensemble.py{' --model ' + name if 'storms' in name else ''}" in (
            card["default_sampler"]["evidence"])
    seven = resolved("prediff-demo-enso", steps=7)
    assert (seven.sampler, seven.steps) == ("dpmpp", 7)
    ddim = resolved("prediff-demo-enso", sampler="ddim")
    card = xearthformer.load_model("prediff-demo-enso").card.training
    assert (ddim.sampler, ddim.steps) == ("ddim", card["sampler"]["num_steps"])

    # a model trained by a user: no default_sampler in its card
    own = tmp_path / "own-storms"
    shutil.copytree(registry.DEMO_DIR / "prediff-demo-storms", own)
    meta = json.loads((own / "model.json").read_text())
    del meta["training"]["default_sampler"]
    (own / "model.json").write_text(json.dumps(meta))
    tuned = resolved(str(own))
    assert (tuned.sampler, tuned.steps) == ("ddim", meta["training"]["sampler"]["num_steps"])
    by_name = resolved(str(own), sampler="dpmpp")
    assert (by_name.sampler, by_name.steps) == ("dpmpp", DPMPP_DEFAULT_STEPS)
