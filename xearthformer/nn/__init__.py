"""xearthformer.nn."""
