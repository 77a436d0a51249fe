"""xearthformer.datasets."""
