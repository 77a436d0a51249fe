"""xearthformer.zoo."""
