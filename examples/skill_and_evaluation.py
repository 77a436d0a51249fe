# %% [markdown]
# # Skill and evaluation at scale
#
# The companion of the user guide's "Skill scores" and "Evaluation at scale" pages: scores
# of the persistence and climatology baselines over the synthetic ENSO archive with
# `xearthformer.evaluate.evaluate`, on dask's threaded scheduler, resumably, and on a
# `dask.distributed` cluster.
#
# Environment: `XEARTHFORMER_EXAMPLE_OUT` (folder for figures and stores, default
# `example_output`), `XEARTHFORMER_FAST=1` (a short archive, for the test suite).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

import xearthformer  # noqa: E402,F401  (registers the .earthformer accessor)
from xearthformer import metrics, tutorial  # noqa: E402
from xearthformer.evaluate import evaluate  # noqa: E402

OUT = Path(os.environ.get("XEARTHFORMER_EXAMPLE_OUT", "example_output"))
FAST = os.environ.get("XEARTHFORMER_FAST") == "1"
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## An archive, opened lazily
# The tutorial data written to netCDF and opened again with dask chunks, as a real archive
# would be (`xr.open_mfdataset("sst_*.nc", chunks=...)`).

# %%
n_years = 8 if FAST else 60
path = Path(tempfile.mkdtemp()) / "sst.nc"
tutorial.open_dataset("enso", n_years=n_years).to_netcdf(path)
archive = xr.open_dataset(path, chunks={"time": 120})["sst"]
print(archive)

# %% [markdown]
# ## Scores by lead, one machine
# Each chunk of `chunk_size` inits is one dask task; nothing is computed before `evaluate`
# runs the graph, and only one chunk's forecasts per worker are in memory.

# %%
leads = "1-6" if FAST else "1-14"
scores = {}
for name in ("persistence", "climatology"):
    scores[name] = evaluate(name, archive, leads=leads, metrics=["rmse", "enso"], climatology=0,
                            chunk_size=12, num_workers=2)
print(scores["persistence"])

# %% [markdown]
# ## The same scores from the metrics functions
# On one chunk of inits, the forecasts can be made and scored directly; `enso_skill` gives
# the ICAR-ENSO scores (`C-Nino3.4-M`, `C-Nino3.4-WM`; `evaluate` names them `C_Nino34_M`, `C_Nino34_WM`).

# %%
inits = archive.time[12:-14]
fc = metrics.persistence_forecast(archive, inits, leads=range(1, 15)).compute()
skill = metrics.enso_skill(fc, archive.compute())
print(skill)

# %% [markdown]
# ## Resumable runs
# With `store=`, each finished chunk is written at once; running again with the same
# settings reads the finished chunks instead of recomputing them.

# %%
store = OUT / "evaluation.partial"
first = evaluate("persistence", archive, leads=leads, metrics=["rmse"], store=str(store))
again = evaluate("persistence", archive, leads=leads, metrics=["rmse"], store=str(store))
xr.testing.assert_allclose(first, again)

# %% [markdown]
# ## On a dask.distributed cluster
# Pass a `Client`; the library never creates one. On HPC, make the cluster with
# dask-jobqueue (e.g. `SLURMCluster`) instead of `LocalCluster`.

# %%
from dask.distributed import Client, LocalCluster  # noqa: E402

with LocalCluster(n_workers=1 if FAST else 2, threads_per_worker=1, processes=not FAST,
                  dashboard_address=None) as cluster, Client(cluster) as client:
    on_cluster = evaluate("persistence", archive, leads=leads, metrics=["rmse", "enso"], climatology=0,
                          client=client)
xr.testing.assert_allclose(on_cluster["rmse"], scores["persistence"]["rmse"])

# %% [markdown]
# ## A skill plot

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
xr.Dataset({k: v["rmse"] for k, v in scores.items()}).earthformer.plot_skill(ax=axes[0], title="RMSE (K)")
xr.Dataset({k: v["nino34_correlation"] for k, v in scores.items()}).earthformer.plot_skill(
    ax=axes[1], title="Nino3.4 correlation (3-month means)")
fig.tight_layout()
fig.savefig(OUT / "skill_by_lead.png", dpi=80 if FAST else 120)
plt.close(fig)
print("figures in", OUT)
