"""JobHandle: what enqueue returns; wait for and read a job's result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import JobFailed
from .unserved import why_unfinished, why_unfinished_sync

if TYPE_CHECKING:
    from .app import Bananas
    from .brokers.base import JobResult


class JobHandle:
    def __init__(self, app: Bananas, job_id: str) -> None:
        self.app = app
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def result(self, timeout: float = 30.0) -> Any:
        """Block until the job finished; return its result or raise JobFailed.

        Raises TimeoutError if it has not finished within `timeout` seconds
        (saying so when no live worker runs its type)."""
        found = self.app.broker.sync.wait_result(self.id, timeout)
        if found is None:
            raise TimeoutError(_late(self.id, timeout) + why_unfinished_sync(self.app, self.id))
        return _unwrap(self.id, found, timeout)

    async def wait(self, timeout: float = 30.0) -> Any:
        broker = self.app.async_broker()
        found = await broker.wait_result(self.id, timeout)
        if found is None:
            why = await why_unfinished(broker, self.id, self.app.settings.registry_expiry)
            raise TimeoutError(_late(self.id, timeout) + why)
        return _unwrap(self.id, found, timeout)

    def info(self) -> JobResult | None:
        """The stored result (status, timing, result, error), or None if not finished."""
        return self.app.broker.sync.get_result(self.id)


def _late(job_id: str, timeout: float) -> str:
    return f"job {job_id} did not finish within {timeout}s"


def _unwrap(job_id: str, found: JobResult | None, timeout: float) -> Any:
    if found is None:
        raise TimeoutError(_late(job_id, timeout))
    if found.status != "completed":
        raise JobFailed(job_id, found.error or found.status)
    return found.value()
