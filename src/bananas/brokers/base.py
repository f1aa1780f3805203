"""The Broker protocol: the only way the worker, scheduler, CLI and dashboard
touch queue state, split by capability. Public methods do the bookkeeping
every backend shares (chunking, empty batches, state checks, defaults,
registry codec) and call a few per-backend primitives, the `_name` methods.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Collection, Sequence

from ..errors import BrokerError, ReplicationTimeout
from ..redact import redact_url
from ..vocabulary import JOB_STATES, check_state
from .capabilities import (
    Administration,
    ForeignRouting,
    Inspection,
    RateLimits,
    Registry,
    Workflows,
)
from .records import (
    ENQUEUE_CHUNK,
    BrokerStats,
    CancelOutcome,
    DeadInfo,
    DeadLetter,
    Delivery,
    JobProgress,
    JobResult,
    JobSummary,
    Lease,
    NewJob,
    QueueRef,
    Recovered,
    Throughput,
    chunks,
)

# Put-backs of an abandoned wait_and_dequeue (the loop holds tasks weakly).
_PUTTING_BACK: set[asyncio.Future[None]] = set()

# The records live in records.py; callers may keep importing them from here.
__all__ = [
    "ENQUEUE_CHUNK",
    "JOB_STATES",
    "Administration",
    "Broker",
    "BrokerStats",
    "CancelOutcome",
    "DeadInfo",
    "DeadLetter",
    "Delivery",
    "ForeignRouting",
    "Inspection",
    "JobProgress",
    "JobResult",
    "JobSummary",
    "Lease",
    "NewJob",
    "QueueRef",
    "RateLimits",
    "Recovered",
    "Registry",
    "SyncClient",
    "Throughput",
    "WorkerPath",
    "Workflows",
    "check_state",
    "foreign_routing",
]


class SyncClient(abc.ABC):
    """The client calls of plain (non-async) code: `job.enqueue()` and
    `handle.result()` from a web request thread. One object per broker
    (`broker.sync`); each backend implements the primitives with whatever is
    fastest from a thread (Redis: a sync redis-py client)."""

    def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Write jobs atomically per job; False for an id that already existed."""
        try:
            return self._enqueue(chunks(jobs))
        except ReplicationTimeout as exc:  # the ids make a retry idempotent: say them
            raise exc.for_jobs(tuple(job.id for job in jobs)) from None

    @abc.abstractmethod
    def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        """Write every batch (each one atomic per job), in order."""

    @abc.abstractmethod
    def get_result(self, job_id: str) -> JobResult | None: ...

    @abc.abstractmethod
    def get_record(self, job_id: str) -> bytes | None:
        """The job's record as stored (a failed job's details: JobFailed)."""

    def wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        found = self.get_result(job_id)
        if found is not None or timeout <= 0:
            return found
        return self._wait_result(job_id, timeout)

    @abc.abstractmethod
    def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        """Block until the result exists or `timeout` passes (it did not exist)."""

    @abc.abstractmethod
    def get_progress(self, job_id: str) -> JobProgress | None:
        """What the job last reported of its progress; None if it never did
        (or that has expired, with its result)."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> CancelOutcome:
        """`Administration.cancel` from plain code (`handle.cancel()`)."""


class Connection(abc.ABC):
    """Reaching the broker: ping, close, what it warns of, its clock."""

    url: str
    result_ttl: float
    sync: SyncClient  # the client calls from plain code

    @abc.abstractmethod
    async def ping(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def durability_warnings(self) -> list[str]:
        """Start-up warnings about settings that can lose jobs (none by default)."""
        return []

    def describe(self) -> str:
        """Broker URL with any password masked, for logs."""
        return redact_url(self.url)

    async def server_time(self) -> float:
        """The broker's clock, unix seconds: the one clock every lease, due
        time and cron firing is judged by (Redis: TIME; SQLite: this host)."""
        return time.time()


class Producer(abc.ABC):
    """What an application does: write jobs, read their results and records."""

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Write jobs atomically per job; False for an id that already existed."""
        try:
            return await self._enqueue(chunks(jobs))
        except ReplicationTimeout as exc:  # the ids make a retry idempotent: say them
            raise exc.for_jobs(tuple(job.id for job in jobs)) from None

    @abc.abstractmethod
    async def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        """Write every batch (each one atomic per job); replies in job order."""

    @abc.abstractmethod
    async def get_result(self, job_id: str) -> JobResult | None: ...

    async def wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        found = await self.get_result(job_id)
        if found is not None or timeout <= 0:
            return found
        return await self._wait_result(job_id, timeout)

    @abc.abstractmethod
    async def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        """Wait until the result exists or `timeout` passes (it did not exist)."""

    @abc.abstractmethod
    async def get_record(self, job_id: str) -> bytes | None: ...

    async def get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        return await self._get_results(job_ids) if job_ids else []

    @abc.abstractmethod
    async def _get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]: ...

    @abc.abstractmethod
    async def get_progress(self, job_id: str) -> JobProgress | None:
        """What the job last reported of its progress; None if it never did."""


class Consumer(abc.ABC):
    """What a worker does with jobs: lease, wait, heartbeat, settle, put back.
    Every lease deadline is judged by the broker's clock."""

    @abc.abstractmethod
    async def dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        """Lease up to `count` ready jobs, taking the queues in the order given;
        each lease runs `lease_seconds` from now on the broker's clock.

        `token_prefix` is "<worker id>:<sequence>:"; a call sent again with
        the same prefix (its reply was lost) gets the same jobs again, not
        more. The first `start` jobs (all when None) count as started at
        once; the rest as prefetched, not started: a stall is charged only
        to a job that started (see `extend_leases`)."""

    @abc.abstractmethod
    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        """Block until one of the queues may have a job, or `timeout` passes."""

    async def wait_and_dequeue(
        self,
        queues: Sequence[QueueRef],
        timeout: float,
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        """An idle worker's fetch: wait up to `timeout` for a job in `queues`,
        then `dequeue` (also when the wait timed out: a job whose wake-up was
        missed is found then). Same lease and token contract as `dequeue`;
        cancelling it (a stop) leaves no job leased to nobody. A broker that
        can do both in one round trip (Redis: brokers/redis/wake.py) overrides
        it."""
        await self.wait_for_jobs(queues, timeout)
        # A cancel landing while the dequeue runs (a SQLite transaction in
        # its thread) would drop jobs it leased until their lease ran out; the
        # dequeue finishes instead and puts back uncharged what it took.
        fetch = asyncio.ensure_future(
            self.dequeue(queues, count, lease_seconds, token_prefix, start)
        )
        try:
            return await asyncio.shield(fetch)
        except asyncio.CancelledError:
            fetch.add_done_callback(self._put_back)
            raise

    def _put_back(self, fetch: asyncio.Future[list[Delivery]]) -> None:
        if fetch.cancelled() or fetch.exception() is not None or not fetch.result():
            return
        task = asyncio.ensure_future(self._requeue_quietly(fetch.result()))
        _PUTTING_BACK.add(task)
        task.add_done_callback(_PUTTING_BACK.discard)

    async def _requeue_quietly(self, deliveries: Sequence[Delivery]) -> None:
        with contextlib.suppress(BrokerError):  # unreachable: they come back by lease expiry
            await self.requeue(deliveries)

    async def extend_leases(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]:
        """Heartbeat (id, token) leases; returns the ids whose lease we lost.
        The ids in `started` are marked started (charged a stall if lost)."""
        return await self._extend(leases, lease_seconds, started) if leases else []

    @abc.abstractmethod
    async def _extend(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]: ...

    @abc.abstractmethod
    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        """Ack with the result; False if the lease was lost (stale ack refused)."""

    @abc.abstractmethod
    async def retry(self, delivery: Delivery, record: bytes, delay_seconds: float) -> bool:
        """Schedule the next attempt `delay_seconds` from now on the broker's
        clock; False if the lease was lost."""

    async def bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        """Dead-letter a leased job; `record` None keeps the stored one."""
        return await self._bury(delivery, record, info.with_defaults(), duration_ms)

    @abc.abstractmethod
    async def _bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool: ...

    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        """Put leased jobs back at the head of their queue, no attempt charged."""
        return await self._requeue(deliveries) if deliveries else 0

    @abc.abstractmethod
    async def _requeue(self, deliveries: Sequence[Delivery]) -> int: ...

    async def settle_cancelled(
        self, delivery: Delivery, record: bytes | None, duration_ms: float
    ) -> bool:
        """Settle a leased job that stopped because it was cancelled: final
        (not retried, not dead-lettered), result status `cancelled`, its
        cancel request cleared; `record` None keeps the stored one. False if
        the lease was lost."""
        return await self._settle_cancelled(delivery, record, duration_ms)

    @abc.abstractmethod
    async def _settle_cancelled(
        self, delivery: Delivery, record: bytes | None, duration_ms: float
    ) -> bool: ...

    async def cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        """Which of these (leased) jobs someone cancelled. The worker asks a
        few times a second while it holds jobs; while nobody cancels this is
        one cheap read per call, nothing per job."""
        return await self._cancel_requests(job_ids) if job_ids else []

    @abc.abstractmethod
    async def _cancel_requests(self, job_ids: Sequence[str]) -> list[str]: ...

    @abc.abstractmethod
    async def set_progress(
        self, delivery: Delivery, fraction: float, message: str, attempt: int, ttl: float
    ) -> bool:
        """Store a running job's progress, kept `ttl` seconds from now; False
        (nothing written) if the caller no longer holds the lease. Called only
        for jobs whose handler reports progress (worker/progress.py throttles
        it): nothing on the per-job path calls it."""


class Upkeep(abc.ABC):
    """What every scheduler-enabled process does on a period: recover expired
    leases, move due jobs (by the broker's clock)."""

    @abc.abstractmethod
    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        """Return expired leases to their queues; at max_stalls, bury the job
        (dead info with its type and priority, record failed). Also the
        periodic upkeep point: a backend may trim its indexes here."""

    @abc.abstractmethod
    async def move_due(self, limit: int = 1000) -> int:
        """Route scheduled jobs that are due; returns how many moved."""


class WorkerPath(Connection, Producer, Consumer, Upkeep):
    """The hot path: everything a worker and a producing application call
    per job. (Inspection, the registry and administration are apart.)"""


class Broker(WorkerPath, Inspection, Registry, Administration, Workflows, RateLimits):
    """A whole broker: every capability but the optional ones. The worker,
    scheduler, CLI and dashboard talk only to these classes."""


def foreign_routing(broker: Broker) -> ForeignRouting | None:
    """The broker's foreign-record router, if it has one."""
    return broker if isinstance(broker, ForeignRouting) else None
