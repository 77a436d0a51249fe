"""Tests of xearthformer.plot (offline, Agg backend)."""
