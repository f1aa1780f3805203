"""Operability: health endpoints, Prometheus metrics, metrics log, worker registry."""
