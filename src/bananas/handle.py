"""JobHandle: what enqueue returns; wait for and read a job's result."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .brokers.base import Administration
from .brokers.records import CancelOutcome, JobResult
from .errors import BrokerError, JobFailed
from .unserved import why_unfinished, why_unfinished_sync
from .vocabulary import Status

if TYPE_CHECKING:
    from .app import Bananas
    from .brokers.base import JobProgress


@dataclass(slots=True)
class JobInfo(JobResult):
    """What `JobHandle.info()` returns: the stored result, plus `decoded`, the
    result as `result()` returns it (decoded from the JSON text in `result`,
    which stays bytes as it always was). `decoded` is None when there is no
    result, or when `result` is not valid JSON (another client wrote it)."""

    decoded: Any = None


class JobHandle:
    def __init__(
        self, app: Bananas, job_id: str, *, duplicate: bool = False, workflow_id: str = ""
    ) -> None:
        self.app = app
        self.id = job_id
        # The workflow the job is a step of, when known (docs/workflows.md).
        self.workflow_id = workflow_id
        # True: the enqueue of a unique job created nothing; this is the handle
        # of the live job that holds its key (docs/control.md).
        self.duplicate = duplicate

    def __repr__(self) -> str:
        extra = ", duplicate=True" if self.duplicate else ""
        return f"JobHandle({self.id!r}{extra})"

    def result(self, timeout: float = 30.0) -> Any:
        """Block until the job finished; return its result or raise JobFailed
        (with the error, the dead-letter reason, the traceback and attempts).

        Raises TimeoutError if it has not finished within `timeout` seconds
        (saying so when no live worker runs its type)."""
        sync = self.app.broker.sync
        found = sync.wait_result(self.id, timeout)
        if found is None:
            raise TimeoutError(_late(self.id, timeout) + why_unfinished_sync(self.app, self.id))
        if found.status != Status.COMPLETED:
            try:
                raw = sync.get_record(self.id)
            except BrokerError:  # the details are extras: the failure is known
                raw = None
            raise job_failed(self.id, found, raw)
        return _unwrap(self.id, found, timeout)

    async def wait(self, timeout: float = 30.0) -> Any:
        broker = self.app.async_broker()
        found = await broker.wait_result(self.id, timeout)
        if found is None:
            why = await why_unfinished(broker, self.id, self.app.settings.registry_expiry)
            raise TimeoutError(_late(self.id, timeout) + why)
        if found.status != Status.COMPLETED:
            try:
                raw = await broker.get_record(self.id)
            except BrokerError:
                raw = None
            raise job_failed(self.id, found, raw)
        return _unwrap(self.id, found, timeout)

    def cancel(self) -> CancelOutcome:
        """Cancel the job (docs/control.md) and say what that did:
        CANCELLED (it was queued or scheduled: it never runs), REQUESTED (it
        is running: its worker stops it within about a second and it settles
        as cancelled), ALREADY_COMPLETED / ALREADY_DEAD / ALREADY_CANCELLED,
        or UNKNOWN. A cancelled job is final: never retried, and `result()`
        raises JobFailed with the error "cancelled"."""
        return self.app.broker.sync.cancel(self.id)

    async def cancel_async(self) -> CancelOutcome:
        """`cancel()` from async code, on the running loop's broker."""
        broker = self.app.async_broker()
        if isinstance(broker, Administration):
            return await broker.cancel(self.id)
        return self.app.broker.sync.cancel(self.id)  # the test mode's broker

    def info(self) -> JobInfo | None:
        """The stored result (status, timing, `result` as JSON bytes,
        `decoded` as `result()` returns it, error), or None if not finished."""
        found = self.app.broker.sync.get_result(self.id)
        if found is None:
            return None
        try:
            decoded = found.value()
        except orjson.JSONDecodeError:
            decoded = None
        return JobInfo(**asdict(found), decoded=decoded)

    def progress(self) -> JobProgress | None:
        """What the job last reported with `current_job().set_progress()`:
        fraction (0..1), message, the attempt that reported it, updated_at
        (unix seconds). None if it has not reported any (or it expired with
        its result). Updated at most every 0.5 s while the job runs."""
        return self.app.broker.sync.get_progress(self.id)


def job_failed(job_id: str, found: JobResult, raw: bytes | None) -> JobFailed:
    """JobFailed with what the failed job's record tells (written by the
    worker that buried it); a missing or unreadable record leaves them empty."""
    try:
        loaded = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        loaded = {}
    fields: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    attempts = fields.get("attempts")
    error = found.error or found.status
    return JobFailed(
        job_id,
        error,
        reason=_text(fields.get("dead_reason")) or error,
        traceback=_text(fields.get("traceback")),
        attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else None,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _late(job_id: str, timeout: float) -> str:
    return f"job {job_id} did not finish within {timeout}s"


def _unwrap(job_id: str, found: JobResult | None, timeout: float) -> Any:
    if found is None:
        raise TimeoutError(_late(job_id, timeout))
    if found.status != Status.COMPLETED:
        raise JobFailed(job_id, found.error or found.status)
    return found.value()
