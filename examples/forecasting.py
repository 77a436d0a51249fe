# %% [markdown]
# # Forecasting your own data
#
# The companion of the user guide's "Forecasting your own data" page.
#
# SKELETON (TODO(lead)): forecast the tutorial ENSO data with the embedded demo model (xearthformer.forecast / da.earthformer.forecast): choosing init=, model= (zoo name or model directory), the validation errors (grid, time step, units) and regrid=, a dask input staying lazy, device=, writing to netCDF/zarr; save a plot_forecast figure.
# Remove the SKELETON marker when the script is written: tests/test_examples.py then
# requires it to write at least one figure.
#
# Environment: `XEARTHFORMER_EXAMPLE_OUT` (folder for figures, default `example_output`),
# `XEARTHFORMER_FAST=1` (small settings, for the test suite).

# %%
import os
from pathlib import Path

OUT = Path(os.environ.get("XEARTHFORMER_EXAMPLE_OUT", "example_output"))
FAST = os.environ.get("XEARTHFORMER_FAST") == "1"
OUT.mkdir(parents=True, exist_ok=True)

# %%
print("examples/forecasting.py: not written yet (see the TODO at the top)")
