# %% [markdown]
# # Forecasting your own data
#
# The companion of the user guide's "Forecasting your own data" page: Earthformer forecasts of
# the package's synthetic ENSO data with the embedded demo model `earthformer-demo-enso`
# (offline, CPU): the quick-start forecast, a hindcast over a range of inits scored against
# persistence with the Nino3.4 index, a dask-backed input that stays lazy, the result written
# to netCDF, and a map of the forecast.
#
# Environment: `XEARTHFORMER_EXAMPLE_OUT` (folder for figures and files, default
# `example_output`), `XEARTHFORMER_FAST=1` (a shorter record and fewer inits, for the test
# suite).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

import xearthformer  # noqa: E402  (also registers the .earthformer accessor)
from xearthformer import metrics, tutorial  # noqa: E402

OUT = Path(os.environ.get("XEARTHFORMER_EXAMPLE_OUT", "example_output"))
FAST = os.environ.get("XEARTHFORMER_FAST") == "1"
OUT.mkdir(parents=True, exist_ok=True)


def save(fig, name):
    fig.savefig(OUT / f"forecasting_{name}.png", dpi=80 if FAST else 120)
    plt.close(fig)


# %% [markdown]
# ## The model
# `earthformer-demo-enso` is a small Earthformer shipped inside the package (12 months of
# context -> 14 months ahead on the ICAR-ENSO 5-degree grid), trained on the synthetic data
# with `xearthformer.fit` by a script of the repository (`scripts/train_demo_models.py`). `xearthformer.list_models()` lists every model the zoo
# knows; `model=` also takes a model directory written by `xearthformer.fit`.

# %%
MODEL = "earthformer-demo-enso"
print([row["name"] for row in xearthformer.list_models()])
model = xearthformer.load_model(MODEL)
contract = model.card.contract
print(f"{model.name}: {contract.in_len} -> {contract.out_len} {contract.step_units}, "
      f"grid {contract.grid_shape}, units {contract.units}")

# %% [markdown]
# ## The quick-start forecast
# From the last month of the data, 12 months ahead. The result keeps the input's spatial
# coordinates and attributes and adds `init`, `lead` and `valid_time(init, lead)`.

# %%
sst = tutorial.open_dataset("enso", n_years=8 if FAST else 60)["sst"]
fc = xearthformer.forecast(sst, lead=12, model=MODEL)
print(fc.dims)  # ('init', 'lead', 'lat', 'lon')
print(fc["valid_time"].values[0, [0, -1]])
print({k: fc.attrs[k] for k in ("forecast_model", "forecast_model_demo", "rollout")})

# %% [markdown]
# ## A hindcast and the Nino3.4 index against persistence
# `init=` takes one time, a list or a slice: one forecast per init that has a full 12-month
# context. The same call is available as a method of the DataArray. Here the inits leave
# 16 months of observations after them, so that every lead (and the 3-month running mean of
# the index that the ICAR-ENSO scores use) can be verified.

# %%
n_inits = 24 if FAST else 240
inits = slice(sst.time.values[-16 - n_inits], sst.time.values[-17])
hindcast = sst.earthformer.forecast(lead=14, model=MODEL, init=inits)
persistence = metrics.persistence_forecast(sst, hindcast["init"], leads=range(1, 15))
skill = xr.Dataset({
    name: metrics.enso_skill(f, sst)["correlation"]
    for name, f in (("model", hindcast), ("persistence", persistence))
}).dropna("lead", how="all")  # the running mean leaves 12 index leads of 14
print(skill.to_dataframe().round(2))

# %%
fig, ax = skill.earthformer.plot_skill(title="Nino3.4 correlation (3-month mean)")
save(fig, "nino34_skill")

# %% [markdown]
# ## Dask in, dask out
# A dask-backed input (e.g. `xr.open_mfdataset(..., chunks=...)`) gives a lazy forecast: one
# task per `batch_size` inits, each loading the model once per worker process. Nothing runs
# before `.compute()` (or `.to_netcdf`): here a scheduler that refuses to run anything proves
# it. (The demo model works on anomalies with a near-zero residual climatology, so deciding
# whether the input is anomalies needs no data; for a model with a real climatology, pass
# `anomalies=` to stay lazy.)

# %%
import dask  # noqa: E402


def refuse(*args, **kwargs):
    raise RuntimeError("the forecast was computed too early")


lazy_sst = sst.chunk({"time": 24})
with dask.config.set(scheduler=refuse):
    lazy = xearthformer.forecast(lazy_sst, lead=14, model=MODEL, init=inits, batch_size=4)
print(lazy.data)  # dask.array<concatenate, ...>
xr.testing.assert_allclose(lazy.compute(), hindcast)

# %% [markdown]
# ## Writing the result
# The attributes are strings and numbers only, so the forecast writes to netCDF (or zarr,
# `fc.to_zarr(...)`) as it is.

# %%
path = OUT / "forecasting_hindcast.nc"
hindcast.to_netcdf(path)
again = xr.open_dataarray(path)
print(path, dict(again.sizes), again.attrs["forecast_model"])
again.close()

# %% [markdown]
# ## A map of the forecast

# %%
fig, axes = fc.earthformer.plot_forecast(leads=[1, 4, 8, 12], ncols=2)
save(fig, "forecast")
print("figures in", OUT)
