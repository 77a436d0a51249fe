"""xearthformer.diffusion."""
