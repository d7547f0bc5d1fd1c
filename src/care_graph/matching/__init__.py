"""Matching helpers around the compiled solver: a plain-Python reference, instance generators."""
