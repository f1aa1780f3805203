"""The worker process: a runtime (`Worker`) and its parts, each with one
lifecycle (see `runtime.py` for the parts and their stop order)."""

from ..observe.status import WorkerState, WorkerStatus
from .runtime import Worker

__all__ = ["Worker", "WorkerState", "WorkerStatus"]
