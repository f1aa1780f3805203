"""The `bananas` command: worker, scheduler, enqueue, status, job, dlq, demo, dashboard.

Errors are one line on stderr and a non-zero exit: 2 for bad configuration or
arguments, 1 when the broker cannot be reached or an operation fails.
"""

from . import dlq, job, jobs, tools, worker
from .common import main

__all__ = ["dlq", "job", "jobs", "main", "tools", "worker"]
