"""xearthformer.models."""
