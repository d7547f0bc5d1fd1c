"""Metrics for Prometheus (metrics.py); see docs/observability.md."""
