"""Operability: counters (`stats`), the status snapshot and identity types
(`status`), health endpoints, Prometheus metrics, the monitor (metrics log,
worker registry). Sits under `bananas.worker` and never imports it."""
