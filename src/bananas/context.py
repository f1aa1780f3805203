"""`current_job()`: what a running handler can know about its own job, and
`set_progress` to say how far it got (progress.py)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import JobCancelled
from .progress import check_progress


class ProgressSink(Protocol):
    """Where a job's progress goes: the worker's hub (worker/progress.py) or,
    in a process-pool child, the pipe to the worker (progress.ChildProgress)."""

    def report(self, job: JobContext, fraction: float, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class JobContext:
    id: str
    name: str
    priority: str
    attempt: int  # 1 on the first run
    sink: ProgressSink | None = field(default=None, repr=False, compare=False)
    lease: Any = field(default=None, repr=False, compare=False)  # the worker's Delivery

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job got: `fraction` from 0 to 1 and a short
        message (cut at 500 characters). Throttled: at most one broker write
        every 0.5 s per job, the latest value always written before the job's
        outcome. Raises TypeError / ValueError on a bad fraction or message.
        Outside a worker (a JobContext made by hand) it only checks its input."""
        value, text = check_progress(fraction, message)
        if self.sink is not None:
            self.sink.report(self, value, text)

    @property
    def cancelled(self) -> bool:
        """Someone cancelled this job (`handle.cancel()`, `bananas cancel`, the
        dashboard) and its worker has heard (within about a second). A
        thread handler polls this (or `check_cancelled()`) in its loop; an
        async handler is cancelled and a process handler killed instead."""
        return bool(getattr(self.lease, "cancel_requested", False))

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the job was cancelled: the job then settles
        as cancelled (never retried). Cheap: call it as often as you like."""
        if self.cancelled:
            raise JobCancelled(f"job {self.id} was cancelled")


_current: ContextVar[JobContext | None] = ContextVar("bananas_current_job", default=None)


def current_job() -> JobContext | None:
    """The job the calling handler is running (any executor: async, thread and
    process); None outside a job."""
    return _current.get()


def set_current(context: JobContext) -> None:
    _current.set(context)
