# %% [markdown]
# # Plotting forecasts
#
# The companion of the user guide's "Plotting" page: every plot of `xearthformer.plot` on the
# package's tutorial data, with baseline forecasts (the layout of model forecasts).
#
# Environment: `XEARTHFORMER_EXAMPLE_OUT` (folder for the figures, default `example_output`),
# `XEARTHFORMER_FAST=1` (smaller data, for the test suite).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import xearthformer  # noqa: E402,F401  (registers the .earthformer accessor)
from xearthformer import metrics, tutorial  # noqa: E402

OUT = Path(os.environ.get("XEARTHFORMER_EXAMPLE_OUT", "example_output"))
FAST = os.environ.get("XEARTHFORMER_FAST") == "1"
OUT.mkdir(parents=True, exist_ok=True)


def save(fig, name):
    fig.savefig(OUT / f"plotting_{name}.png", dpi=80 if FAST else 120)
    plt.close(fig)


# %% [markdown]
# ## A forecast, lead by lead
# Persistence forecasts of the synthetic ENSO data, from three inits, 12 months ahead.

# %%
sst = tutorial.open_dataset("enso", n_years=5 if FAST else 30)["sst"]
inits = sst.time[-24:-21]
fc = metrics.persistence_forecast(sst, inits, leads=range(1, 13))
fig, axes = fc.earthformer.plot_forecast(leads=[1, 4, 8, 12], ncols=2)
save(fig, "forecast")

# %% [markdown]
# ## An ensemble
# A toy ensemble: the persistence forecast plus seeded, spatially smooth perturbations
# growing with lead (a PreDiff ensemble has the same layout).

# %%
rng = np.random.default_rng(0)
n_members = 6
noise = rng.normal(size=(n_members,) + fc.shape)
noise = 0.15 * np.sqrt(fc.lead.values)[None, None, :, None, None] * noise
ens = fc.expand_dims(member=n_members) + noise.astype("float32")
ens = ens.transpose("init", "member", "lead", "lat", "lon").assign_attrs(fc.attrs)
fig, axes = ens.earthformer.plot_ensemble(lead=6, n_members=4, threshold=0.5)
save(fig, "ensemble")

# %% [markdown]
# ## A Nino3.4 plume

# %%
index = metrics.nino34(ens, climatology=0)
obs_index = metrics.nino34(sst, climatology=0)
fig, ax = index.earthformer.plot_index_plume(obs=obs_index)
save(fig, "plume")

# %% [markdown]
# ## Skill by lead
# Persistence and climatology scored with `xearthformer.evaluate` (see
# `skill_and_evaluation.py`).

# %%
scores = {
    name: sst.earthformer.evaluate(name, leads="1-12", metrics=["correlation"], climatology=0)["correlation"]
    .mean(["lat", "lon"])
    for name in ("persistence", "climatology")
}
import xarray as xr  # noqa: E402

fig, ax = xr.Dataset(scores).earthformer.plot_skill(title="pattern-mean correlation")
save(fig, "skill")
print("figures in", OUT)
