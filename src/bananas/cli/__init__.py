"""The `bananas` command: worker, scheduler, enqueue, status, job, workflow, cancel, dlq,
demo, dashboard.

Errors are one line on stderr and a non-zero exit: 2 for bad configuration or
arguments, 1 when the broker cannot be reached or an operation fails.
"""

from . import cancel, dlq, job, jobs, tools, worker, workflow
from .common import main

__all__ = ["cancel", "dlq", "job", "jobs", "main", "tools", "worker", "workflow"]
