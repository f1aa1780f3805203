"""The test mode's broker: job state in a dict, judged by a clock the test
moves (`TestClock`), no server, no thread, no file.

It has only the `WorkerPath` capability, the calls an application and the
job runner make: enqueue, results and records (`Producer`, plus the sync
client), and the settle calls of a leased job (`Consumer`). What it stores
is what the production path encoded: record bytes from `specs.encode_specs`,
result JSON from the runner. Inspection, the registry and the dead-letter
administration are not there (no `bananas status` runs against a test).

Jobs are taken one at a time by the test mode (`take`), high priority first,
then by due time and enqueue order: a drain is deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from ..brokers.base import SyncClient, WorkerPath
from ..brokers.records import (
    CancelOutcome,
    DeadInfo,
    Delivery,
    JobProgress,
    JobResult,
    NewJob,
    QueueRef,
    Recovered,
)
from ..durations import parse_duration
from ..errors import BananasError
from ..job import now_iso
from ..vocabulary import PRIORITIES, JobState

_RANK = {p: i for i, p in enumerate(PRIORITIES)}
WAITING = (JobState.QUEUED, JobState.SCHEDULED)


class TestClock:
    """The broker's clock in test mode: unix seconds that move only when the
    test moves them. Starts at the real time, so an `_at` of "in an hour" is
    due after `advance("1h")`."""

    __test__ = False  # not a pytest test class, whatever imports it

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self.on_advance: Callable[[], None] = lambda: None  # set by the test mode

    def now(self) -> float:
        return self._now

    def advance(self, by: str | float | timedelta) -> float:
        """Move forward by a duration ("5m", 300, a timedelta); jobs that fall
        due run at the next drain (at once in inline mode). Returns the new time."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else parse_duration(by)
        if seconds < 0:
            raise BananasError(f"the test clock only moves forward (advance({by!r}))")
        self._now += seconds
        self.on_advance()
        return self._now

    def move_to(self, when: float) -> None:
        """Jump to `when` (unix seconds) if it is later; no jobs run."""
        self._now = max(self._now, when)


@dataclass(slots=True)
class Entry:
    """One job as the memory broker holds it."""

    name: str
    priority: str
    record: bytes
    due: float
    seq: int
    state: JobState
    token: str = ""
    dead: DeadInfo | None = None


class MemoryBroker(WorkerPath):
    url = "memory://test-mode"

    def __init__(self, clock: TestClock, result_ttl: float = 86400.0) -> None:
        self.clock = clock
        self.result_ttl = result_ttl
        self.jobs: dict[str, Entry] = {}
        self.results: dict[str, JobResult] = {}
        self.progress: dict[str, JobProgress] = {}
        # Unique keys (docs/control.md): digest -> (holder id, until). A key
        # is held while its job is live (not completed nor dead) and `until`
        # has not passed on the test clock: judged when the key is asked for.
        self.unique: dict[str, tuple[str, float]] = {}
        self._seq = 0
        # Handlers in the thread executor enqueue from their threads while the
        # drain reads the jobs on its loop (a timed-out thread runs on).
        self._lock = threading.Lock()
        # Called after jobs were written (the inline mode runs them there).
        self.after_enqueue: Callable[[], None] = lambda: None
        self.after_enqueue_async: Callable[[], Awaitable[None]] = _nothing
        self.explain: Callable[[str], str] = lambda job_id: f"job {job_id} has not finished"
        self.sync: SyncClient = _Sync(self)

    # -- what the test mode calls ---------------------------------------------
    def write(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        with self._lock:
            return self._write(batches)

    def _write(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        now = self.clock.now()
        replies = []
        for job in (j for batch in batches for j in batch):
            if job.id in self.jobs:  # an idempotent `_job_id`: the second is ignored
                replies.append(False)
                continue
            if job.unique is not None:
                holder = self._unique_holder(job.unique, now)
                if holder is not None:
                    job.duplicate_of = holder
                    replies.append(False)
                    continue
                self.unique[job.unique] = (job.id, now + job.unique_ms / 1000)
            due = job.due if job.due is not None else now + (job.delay or 0.0)
            state = JobState.SCHEDULED if due > now else JobState.QUEUED
            self._seq += 1
            self.jobs[job.id] = Entry(job.name, job.priority, job.record, due, self._seq, state)
            replies.append(True)
        return replies

    def _unique_holder(self, digest: str, now: float) -> str | None:
        held = self.unique.get(digest)
        if held is None or held[1] <= now:
            return None
        entry = self.jobs.get(held[0])
        if entry is None or entry.state in (JobState.COMPLETED, JobState.DEAD):
            return None
        return held[0]

    def take(self, types: Collection[str]) -> Delivery | None:
        """Lease the next due job of one of `types` (the ones the app runs:
        like a worker's, a job of another type waits), or None."""
        with self._lock:
            return self._take(types)

    def _take(self, types: Collection[str]) -> Delivery | None:
        now = self.clock.now()
        due = [
            (e, i)
            for i, e in self.jobs.items()
            if e.state in WAITING and e.due <= now and e.name in types
        ]
        if not due:
            return None
        entry, job_id = min(due, key=lambda d: (_RANK.get(d[0].priority, 9), d[0].due, d[0].seq))
        self._seq += 1
        entry.state, entry.token = JobState.RUNNING, f"test:{self._seq}"
        return Delivery(job_id, entry.record, entry.token, started=True)

    def next_due(self, types: Collection[str]) -> float | None:
        """When the soonest job of `types` that is not due yet falls due."""
        now = self.clock.now()
        with self._lock:
            entries = list(self.jobs.values())
        times = [e.due for e in entries if e.state in WAITING and e.due > now and e.name in types]
        return min(times) if times else None

    # -- Connection -----------------------------------------------------------
    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def server_time(self) -> float:
        return self.clock.now()

    # -- Producer -------------------------------------------------------------
    async def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        replies = self.write(batches)
        await self.after_enqueue_async()
        return replies

    async def get_result(self, job_id: str) -> JobResult | None:
        return self.results.get(job_id)

    async def wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        # Nothing runs in the background, so waiting could only time out.
        found = self.results.get(job_id)
        if found is None:
            raise TimeoutError(self.explain(job_id))
        return found

    async def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        return await self.wait_result(job_id, timeout)

    async def get_record(self, job_id: str) -> bytes | None:
        entry = self.jobs.get(job_id)
        return entry.record if entry else None

    async def get_progress(self, job_id: str) -> JobProgress | None:
        return self.progress.get(job_id)

    async def set_progress(
        self, delivery: Delivery, fraction: float, message: str, attempt: int, ttl: float
    ) -> bool:
        if not self._holds(delivery.id, delivery.token):
            return False
        self.progress[delivery.id] = JobProgress(fraction, message, attempt, self.clock.now())
        return True

    async def _get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        return [self.results.get(i) for i in job_ids]

    # -- Consumer -------------------------------------------------------------
    async def dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        raise BananasError("the test mode runs jobs with drain(), not with a worker")

    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        return False

    async def _extend(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]:
        return [i for i, token in leases if not self._holds(i, token)]

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        entry = self._held(delivery)
        if entry is None:
            return False
        entry.state, entry.record = JobState.COMPLETED, record
        self.results[delivery.id] = JobResult("completed", now_iso(), duration_ms, result=result)
        return True

    async def retry(self, delivery: Delivery, record: bytes, delay_seconds: float) -> bool:
        entry = self._held(delivery)
        if entry is None:
            return False
        entry.state, entry.record = JobState.SCHEDULED, record
        entry.due = self.clock.now() + delay_seconds
        return True

    async def _bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        entry = self._held(delivery)
        if entry is None:
            return False
        entry.state, entry.dead = JobState.DEAD, info
        if record:
            entry.record = record
        self.results[delivery.id] = JobResult(
            "failed", info.failed_at, duration_ms, error=info.result_error
        )
        return True

    async def _requeue(self, deliveries: Sequence[Delivery]) -> int:
        held = [e for e in (self._held(d) for d in deliveries) if e is not None]
        for entry in held:
            entry.state = JobState.QUEUED
        return len(held)

    async def _settle_cancelled(
        self, delivery: Delivery, record: bytes | None, duration_ms: float
    ) -> bool:
        if self._held(delivery) is None:
            return False
        del self.jobs[delivery.id]
        self.results[delivery.id] = JobResult(
            "cancelled", now_iso(), duration_ms, error="cancelled"
        )
        return True

    async def _cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        return []  # a test-mode job runs inline: it is never running when cancelled

    def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a waiting job (the test mode's `handle.cancel()`)."""
        with self._lock:
            entry = self.jobs.get(job_id)
            if entry is not None and entry.state in WAITING:
                del self.jobs[job_id]
                self.results[job_id] = JobResult("cancelled", now_iso(), 0.0, error="cancelled")
                return CancelOutcome.CANCELLED
            if entry is not None and entry.state == JobState.RUNNING:
                return CancelOutcome.REQUESTED
            found = self.results.get(job_id)
            if found is None:
                return CancelOutcome.UNKNOWN
            return {
                "completed": CancelOutcome.ALREADY_COMPLETED,
                "cancelled": CancelOutcome.ALREADY_CANCELLED,
            }.get(found.status, CancelOutcome.ALREADY_DEAD)

    # -- Upkeep (nothing expires: a test mode lease is never lost) ------------
    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        return Recovered([], [])

    async def move_due(self, limit: int = 1000) -> int:
        return 0  # due jobs are found by time at `take`

    def _held(self, delivery: Delivery) -> Entry | None:
        entry = self.jobs.get(delivery.id)
        if entry is None or entry.state != JobState.RUNNING or entry.token != delivery.token:
            return None
        return entry

    def _holds(self, job_id: str, token: str) -> bool:
        entry = self.jobs.get(job_id)
        return entry is not None and entry.state == JobState.RUNNING and entry.token == token


async def _nothing() -> None:
    return None


class _Sync(SyncClient):
    """`broker.sync`: the same dicts from plain code."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        replies = self.broker.write(batches)
        self.broker.after_enqueue()
        return replies

    def get_result(self, job_id: str) -> JobResult | None:
        return self.broker.results.get(job_id)

    def get_record(self, job_id: str) -> bytes | None:
        entry = self.broker.jobs.get(job_id)
        return entry.record if entry else None

    def get_progress(self, job_id: str) -> JobProgress | None:
        return self.broker.progress.get(job_id)

    def cancel(self, job_id: str) -> CancelOutcome:
        return self.broker.cancel(job_id)

    def wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        found = self.broker.results.get(job_id)
        if found is None:
            raise TimeoutError(self.broker.explain(job_id))
        return found

    def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        return self.wait_result(job_id, timeout)


__all__ = ["Entry", "MemoryBroker", "TestClock"]
