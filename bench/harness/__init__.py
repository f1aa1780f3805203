"""Benchmark harness: private Redis, per-library virtualenvs, workloads, RESULTS.md."""
