"""xearthformer.metrics."""
