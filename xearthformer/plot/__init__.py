"""xearthformer.plot."""
