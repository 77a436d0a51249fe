# %% [markdown]
# # Training and fine-tuning
#
# The companion of the user guide's "Training and fine-tuning" page: a tiny Earthformer
# trained with `xearthformer.fit` on the package's synthetic ENSO data, on the CPU. The run is
# interrupted and resumed from its checkpoint, the model directory it writes is used for a
# forecast, fine-tuned further, and its loss curve is drawn.
#
# The settings are tiny so that the script runs in seconds: the model learns little. For a
# real run use more data, a bigger configuration (e.g. the official one,
# `xearthformer.zoo.official_kwargs("earthformer-icar-enso")`), and thousands of steps on a GPU.
#
# Environment: `XEARTHFORMER_EXAMPLE_OUT` (folder for figures and the model directories,
# default `example_output`), `XEARTHFORMER_FAST=1` (fewer steps, for the test suite).

# %%
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402

import xearthformer  # noqa: E402  (also registers the .earthformer accessor)
from xearthformer import metrics, tutorial  # noqa: E402
from xearthformer.models import EarthformerConfig  # noqa: E402

OUT = Path(os.environ.get("XEARTHFORMER_EXAMPLE_OUT", "example_output"))
FAST = os.environ.get("XEARTHFORMER_FAST") == "1"
OUT.mkdir(parents=True, exist_ok=True)
STEPS = 4 if FAST else 300
BATCH = 2 if FAST else 8


def save(fig, name):
    fig.savefig(OUT / f"training_{name}.png", dpi=80 if FAST else 120)
    plt.close(fig)


# %% [markdown]
# ## Data: a training and a validation period
# Any DataArray with a time dim and two spatial dims works (numpy- or dask-backed, e.g. from
# `xr.open_mfdataset`). Here: the tropical Pacific box of the tutorial SST anomalies, which
# keeps the model small. Everything `forecast` later needs (land mask, monthly climatology,
# normalisation) is computed from the training period only and stored with the model.

# %%
sst = tutorial.open_dataset("enso", n_years=8 if FAST else 60)["sst"]
box = sst.sel(lat=slice(-15, 15), lon=slice(160, 260))
split = str(box.time.dt.year.values[0] + (5 if FAST else 45))
train = box.sel(time=slice(None, split))
valid = box.sel(time=slice(str(int(split) + 1), None))
print(dict(train.sizes), "training,", valid.sizes["time"], "validation months")

# %% [markdown]
# ## A small configuration
# `fit` takes an `EarthformerConfig`, a dict of official Earthformer kwargs, a JSON file of
# them, an `Earthformer` module, a model directory or a zoo name. The input and target shapes
# of a configuration are set from `in_len`, `out_len` and the data's grid.

# %%
config = EarthformerConfig(
    input_shape=(1, 1, 1, 1), target_shape=(1, 1, 1, 1), base_units=16, num_heads=2,
    enc_depth=(1,), dec_depth=(1,), num_global_vectors=0, enc_attn_patterns="axial",
    dec_self_attn_patterns="axial", dec_cross_attn_patterns="cross_1x1", z_init_method="zeros",
    padding_type="zeros", pos_embed_type="t+h+w", initial_downsample_scale=(1, 1, 1))
run = OUT / "tiny-enso"
for path in (run, OUT / "tiny-enso.work"):
    shutil.rmtree(path, ignore_errors=True)
settings = dict(in_len=12, out_len=6, steps=STEPS, batch_size=BATCH, lr=2e-3, valid=valid,
                valid_every=STEPS // 2, max_valid_windows=8, seed=0, device="cpu",
                progress=not FAST)

# %% [markdown]
# ## An interrupted run, resumed
# Checkpoints go to `<out_dir>.work/` every `checkpoint_every` steps (default: at each
# validation). Here a callback stops the run half-way, as a crash or a time limit would; the
# same call again continues from the checkpoint (same settings, same result as an
# uninterrupted run) and, once the model directory is written, removes the working folder.


# %%
class Interrupted(Exception):
    pass


def stop_half_way(step, logs):
    if step == STEPS // 2:
        raise Interrupted(f"stopped at step {step}, loss {logs['loss']:.3f}")


try:
    xearthformer.fit(config, train, out_dir=run, callbacks=[stop_half_way], **settings)
except Interrupted as err:
    print(err, "; checkpoint:", sorted(p.name for p in (OUT / "tiny-enso.work").iterdir()))
path = xearthformer.fit(config, train, out_dir=run, **settings)
print(path, sorted(p.name for p in path.iterdir()))

# %% [markdown]
# ## The model directory
# `model.json` (configuration, input contract, training summary), `weights.pt`, `arrays.npz`
# (grid, land mask, climatology) and `report.md`. `load_model` reads it like a zoo model.

# %%
model = xearthformer.load_model(path)
training = model.card.training
print(model.card.contract.grid_shape, model.card.contract.in_len, "->", model.card.contract.out_len)
print("best step", training["best_step"], "scores", training["scores"])

# %% [markdown]
# ## Forecasting with the trained model
# The model's grid is a subset of the tutorial grid: the full data can be given as they are,
# the model's points are selected and the forecast keeps the data's coordinates.

# %%
fc = xearthformer.forecast(sst, lead=12, model=path)
print(dict(fc.sizes), fc.attrs["rollout"])
persistence = metrics.persistence_forecast(sst, fc["init"], leads=fc["lead"].values)
for name, f in (("model", fc), ("persistence", persistence)):
    print(f"Nino3.4 {name:12s}", metrics.nino34(f, climatology=0).round(2).values[0, :6])

# %% [markdown]
# ## Fine-tuning
# A model directory (or a zoo name with the same grid, `in_len` and `out_len`, such as
# `earthformer-demo-enso` for 12 -> 14 months on the ICAR-ENSO grid) as `model=` starts from
# its weights and keeps its normalisation and climatology; usually with a lower learning rate.

# %%
tuned_dir = OUT / "tiny-enso-tuned"
shutil.rmtree(tuned_dir, ignore_errors=True)
tuned = xearthformer.fit(path, train, out_dir=tuned_dir,
                         **{**settings, "steps": 1 if FAST else 100, "lr": 2e-4, "valid": None,
                            "valid_every": None})
print(xearthformer.load_model(tuned).card.training["started_from"])

# %% [markdown]
# ## The loss curve
# The training history is stored in `model.json` (`training["loss_curve"]`: step and loss;
# `training["validation"]`: the scores of the model and of persistence at each validation).

# %%
steps, loss = zip(*training["loss_curve"])
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(steps, loss, label="training loss (normalised MSE)")
val = training["validation"]
ax.plot([v["step"] for v in val], [v["model"]["mse_normalised"] for v in val], "o-",
        label="validation, model")
ax.plot([v["step"] for v in val], [v["persistence"]["mse_normalised"] for v in val], "s--",
        label="validation, persistence")
ax.set_xlabel("optimizer step")
ax.set_ylabel("MSE (normalised units)")
ax.legend()
fig.tight_layout()
save(fig, "loss")
print("figures in", OUT)
