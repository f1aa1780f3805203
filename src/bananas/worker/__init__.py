"""Worker runtime: fetch loop, executors, leases, drain."""

from .runtime import Worker

__all__ = ["Worker"]
