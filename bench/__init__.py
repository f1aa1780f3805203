"""Bananas benchmark harness (issue 8). Run: `make bench` or `python -m bench.harness`."""
