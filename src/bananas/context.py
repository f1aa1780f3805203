"""`current_job()`: what a running handler can know about its own job."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobContext:
    id: str
    name: str
    priority: str
    attempt: int  # 1 on the first run


_current: ContextVar[JobContext | None] = ContextVar("bananas_current_job", default=None)


def current_job() -> JobContext | None:
    """The job the calling handler is running (async and thread executors;
    None outside a job and in process-executor handlers)."""
    return _current.get()


def set_current(context: JobContext) -> None:
    _current.set(context)
