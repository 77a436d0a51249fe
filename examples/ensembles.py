# %% [markdown]
# # Ensembles and knowledge control
#
# The companion of the user guide's "Ensembles and knowledge control" page: PreDiff ensembles
# of the package's synthetic ENSO data with the embedded demo model `prediff-demo-enso`
# (offline, CPU): an ensemble of `n` members, knowledge-controlled scenarios with
# `kc_sigma=[-2, 0, 2]`, the CRPS (xskillscore) and the spread-skill ratio
# (`xearthformer.metrics`) against persistence, and the ensemble and scenario figures.
#
# Environment: `XEARTHFORMER_EXAMPLE_OUT` (folder for figures, default `example_output`),
# `XEARTHFORMER_FAST=1` (few members, few denoising steps, few inits: for the test suite; the
# numbers are then noisy).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402
import xskillscore as xs  # noqa: E402

import xearthformer  # noqa: E402  (also registers the .earthformer accessor)
from xearthformer import metrics, tutorial  # noqa: E402

OUT = Path(os.environ.get("XEARTHFORMER_EXAMPLE_OUT", "example_output"))
FAST = os.environ.get("XEARTHFORMER_FAST") == "1"
OUT.mkdir(parents=True, exist_ok=True)


def save(fig, name):
    fig.savefig(OUT / f"ensembles_{name}.png", dpi=80 if FAST else 120)
    plt.close(fig)


MODEL = "prediff-demo-enso"
N = 4 if FAST else 20  # members
STEPS = 3 if FAST else None  # denoising steps; None: the model card's default (DPM-Solver++, 15)

# %% [markdown]
# ## An ensemble
# Each member is one reverse-diffusion sample from its own initial noise. All randomness comes
# from generators seeded by `seed=` (and the init): the same call gives the same members, and
# the global random state is never touched. Members are sampled `member_batch` at a time, so
# memory stays bounded for large `n`.

# %%
sst = tutorial.open_dataset("enso", n_years=4 if FAST else 60)["sst"]
ens = xearthformer.ensemble(sst, n=N, steps=STEPS, model=MODEL, seed=0)
print(ens.dims)  # ('init', 'member', 'lead', 'lat', 'lon')
print({k: ens.attrs[k] for k in ("forecast_model", "sampler", "steps", "eta", "members",
                                  "seed")})  # a controlled one adds kc_control, guide_scale, ...
# the same as sst.earthformer.ensemble(n=N, steps=STEPS, model=MODEL, seed=0), member for member

# %%
fig, axes = ens.earthformer.plot_ensemble(lead=6, n_members=min(N, 4), threshold=1.0)
save(fig, "members")

index = metrics.nino34(ens, climatology=0)  # the tutorial SST are anomalies
fig, ax = index.earthformer.plot_index_plume(obs=metrics.nino34(sst, climatology=0))
save(fig, "plume")

# %% [markdown]
# ## Knowledge control: scenarios
# `kc_sigma=k` steers every member toward futures whose alignment quantity (here the
# forecast window's mean Nino3.4 anomaly) is `mu + k * sigma` of the training data. A list
# gives a `kc_sigma` dim; the scenarios share the members' noise, so they differ only by the
# control. `control=` picks the method (`"clean_estimate"`, this package's, is the demo
# models' default; `"mean_shift"` is PreDiff's knowledge alignment) and `guide_scale=` its
# strength; `attrs["kc_control"]` and `attrs["guide_scale"]` record what ran.

# %%
sc = xearthformer.ensemble(sst, n=N, steps=STEPS, model=MODEL, kc_sigma=[-2, 0, 2], seed=0)
print(sc.dims)  # ('init', 'kc_sigma', 'member', 'lead', 'lat', 'lon')
print(sc.attrs["kc_quantity"], "targets", [round(t, 2) for t in sc.attrs["kc_target"]])
print(sc.attrs["kc_control"], "guide_scale per step", sc.attrs["guide_scale"])
achieved = metrics.nino34(sc, climatology=0).mean(["member", "lead"]).isel(init=0)
print("achieved Nino3.4 window means:", achieved.round(2).values)

# %%
fig, axes = sc.earthformer.plot_scenarios(context=sst, leads=[1, 4, 8, 12])
save(fig, "scenarios")

# %% [markdown]
# ## Scores over a hindcast
# Ensembles from a range of inits, verified against the observations at `valid_time`. The
# CRPS of an ensemble is in the data's units (K); for a one-member "ensemble" such as
# persistence it is the mean absolute error, so the two compare directly. Land cells are NaN
# in both the forecast and the observations and are left out. The spread-skill ratio is 1 for
# a reliable ensemble; below 1 the ensemble is overconfident.

# %%
n_inits = 2 if FAST else 48
inits = sst.time.values[-14 - n_inits:-14]
hind = xearthformer.ensemble(sst, n=N, steps=STEPS, model=MODEL, init=list(inits), seed=0)
obs = metrics.at_valid_time(sst, hind)  # dims (init, lead, lat, lon)
ocean = obs.notnull().all(["init", "lead"])
dims = ["init", "lat", "lon"]
crps = xs.crps_ensemble(obs.where(ocean, 0.0), hind.where(ocean, 0.0), member_dim="member",
                        dim=dims, weights=ocean.astype(float).broadcast_like(obs))
persistence = metrics.persistence_forecast(sst, hind["init"], leads=hind["lead"].values)
mae_persistence = abs(persistence - obs).mean(dims)
spread = metrics.spread_skill(hind, obs, dim=dims)
table = xr.Dataset({"crps": crps, "mae_persistence": mae_persistence,
                    "spread_skill_ratio": spread["ratio"]})
print(table.to_dataframe().round(3))

# %%
fig, ax = xr.Dataset({"ensemble CRPS": crps, "persistence MAE": mae_persistence}).earthformer.plot_skill(
    title="CRPS of the ensemble vs MAE of persistence (K)")
save(fig, "crps")
print("figures in", OUT)
