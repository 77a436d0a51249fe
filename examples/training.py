# %% [markdown]
# # Training and fine-tuning
#
# The companion of the user guide's "Training and fine-tuning" page.
#
# SKELETON (TODO(lead)): a tiny xearthformer.fit of an Earthformer on the tutorial ENSO data on CPU (epochs, batch size, seed), resuming, fine-tuning a zoo model, the model directory it writes, forecasting with it; save a loss-curve figure.
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
print("examples/training.py: not written yet (see the TODO at the top)")
