# %% [markdown]
# # Ensembles and knowledge control
#
# The companion of the user guide's "Ensembles and knowledge control" page.
#
# SKELETON (TODO(lead)): an ensemble of a demo PreDiff model on the tutorial storms (xearthformer.ensemble: n_members=, seed=, sampler, steps), kc_sigma=[-1, 0, 1] scenarios and the guidance scale; save plot_ensemble and plot_scenarios figures and print crps / spread_skill.
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
print("examples/ensembles.py: not written yet (see the TODO at the top)")
