"""JobHandle: what enqueue returns; wait for and read a job's result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import JobFailed

if TYPE_CHECKING:
    from .app import Bananas
    from .brokers.base import JobProgress, JobResult


class JobHandle:
    def __init__(self, app: Bananas, job_id: str) -> None:
        self.app = app
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def result(self, timeout: float = 30.0) -> Any:
        """Block until the job finished; return its result or raise JobFailed.

        Raises TimeoutError if it has not finished within `timeout` seconds."""
        return _unwrap(self.id, self.app.broker.sync.wait_result(self.id, timeout), timeout)

    async def wait(self, timeout: float = 30.0) -> Any:
        found = await self.app.async_broker().wait_result(self.id, timeout)
        return _unwrap(self.id, found, timeout)

    def info(self) -> JobResult | None:
        """The stored result (status, timing, result, error), or None if not finished."""
        return self.app.broker.sync.get_result(self.id)

    def progress(self) -> JobProgress | None:
        """What the job last reported with `current_job().set_progress()`:
        fraction (0..1), message, the attempt that reported it, updated_at
        (unix seconds). None if it has not reported any (or it expired with
        its result). Updated at most every 0.5 s while the job runs."""
        return self.app.broker.sync.get_progress(self.id)


def _unwrap(job_id: str, found: JobResult | None, timeout: float) -> Any:
    if found is None:
        raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
    if found.status != "completed":
        raise JobFailed(job_id, found.error or found.status)
    return found.value()
