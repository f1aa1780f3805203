"""The Broker protocol's capabilities beside the worker path (base.py):
inspection for the CLI, the dashboard and the metrics, the fleet registry,
operator actions, and the optional routing of foreign records. Each public
method does the bookkeeping every backend shares and calls the backend's
`_name` primitives; brokers/base.py composes them into `Broker`."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence

from ..errors import UniqueConflict
from ..job import decode_record
from ..keys import lane
from ..rates import RESERVED, RateUsage
from ..vocabulary import JobState, WorkerInfo, check_state
from .records import (
    BrokerStats,
    CancelOutcome,
    DeadInfo,
    DeadLetter,
    Delivery,
    JobSummary,
    Lease,
    QueueRef,
    Throughput,
    Unique,
    decode_workers,
    encode_worker,
    record_unique,
)


class Inspection(abc.ABC):
    """Read-only views for the CLI, the dashboard and the metrics."""

    @abc.abstractmethod
    async def stats(self) -> BrokerStats: ...

    @abc.abstractmethod
    async def oldest_ready_age(self) -> dict[str, float]:
        """Per priority, seconds since the oldest ready job was created (0 if none)."""

    @abc.abstractmethod
    async def active_by_queue(self) -> dict[QueueRef, int]:
        """Leased (running) jobs per (priority, job type)."""

    async def list_jobs(
        self, state: str, offset: int = 0, limit: int = 50, job_type: str | None = None
    ) -> list[JobSummary]:
        """Jobs in one of JOB_STATES, newest first except queued (next to run
        first) and scheduled (soonest due first)."""
        return await self._list_jobs(check_state(state), offset, limit, job_type)

    @abc.abstractmethod
    async def _list_jobs(
        self, state: JobState, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]: ...

    async def count_jobs(self, state: str, job_type: str | None = None) -> int:
        return await self._count_jobs(check_state(state), job_type)

    @abc.abstractmethod
    async def _count_jobs(self, state: JobState, job_type: str | None) -> int: ...

    @abc.abstractmethod
    async def job_state(self, job_id: str) -> str | None:
        """Which of JOB_STATES the job is in, None if unknown."""

    @abc.abstractmethod
    async def get_dead_info(self, job_id: str) -> DeadInfo | None: ...

    @abc.abstractmethod
    async def job_lease(self, job_id: str) -> Lease | None:
        """Who holds the job's lease (a running job); None when nobody does."""

    @abc.abstractmethod
    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        """Completed / failed attempts per minute for the last `minutes` minutes
        of the broker's clock, oldest first, one entry per minute (zeros included)."""


class Registry(abc.ABC):
    """The fleet: workers and schedulers say who they are on a heartbeat."""

    async def heartbeat_worker(self, info: WorkerInfo) -> None:
        """Register or refresh the entry `info.id`; the broker stamps last_seen."""
        await self._heartbeat(info.id, encode_worker(info))

    @abc.abstractmethod
    async def _heartbeat(self, worker_id: str, entry: bytes) -> None: ...

    @abc.abstractmethod
    async def remove_worker(self, worker_id: str) -> None: ...

    async def list_workers(self, expiry: float) -> list[WorkerInfo]:
        """Entries heard from within `expiry` seconds (broker clock), oldest
        heartbeat first, with `last_seen`; older ones are pruned."""
        return decode_workers(await self._live_workers(expiry))

    @abc.abstractmethod
    async def _live_workers(self, expiry: float) -> list[tuple[str, bytes, float]]:
        """Prune silent entries; (id, JSON entry, last seen unix seconds) of the rest."""


class Administration(abc.ABC):
    """Operator actions: cancel a job; act on dead letters."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a job, atomically: queued or scheduled, it is removed and
        final (CANCELLED: it never runs); running, its worker is told
        (REQUESTED: it stops it and settles it cancelled); finished, the
        final state is answered (ALREADY_*); UNKNOWN for no such job."""

    @abc.abstractmethod
    async def get_record(self, job_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def delete_dead(self, job_id: str) -> bool: ...

    @abc.abstractmethod
    async def _replay(
        self, job_id: str, record: bytes, priority: str, name: str, unique: Unique | None
    ) -> bool | str:
        """Make the dead job ready; a unique job (`unique`: its digest and
        unique_for in ms) takes its key again in the same step. False: not
        a dead letter; a str: the id of the job that holds the key (nothing done)."""

    async def replay_dead(self, job_id: str) -> bool:
        """Make a dead job ready again with a fresh retry budget.

        Raises InvalidRecord when its record cannot be replayed (delete it
        instead), UniqueConflict when a newer job holds its unique key."""
        raw = await self.get_record(job_id)
        rec = decode_record(raw, expected_id=job_id)
        fields = rec.fields
        # A replay starts at attempt 0 again: a slot reserved then is long gone.
        for key in ("error", "traceback", "dead_reason", "scheduled_for", RESERVED):
            fields.pop(key, None)
        unique = record_unique(fields)
        record = rec.updated(attempts=0, status="pending")
        done = await self._replay(job_id, record, lane(rec.route, rec.priority), rec.name, unique)
        if isinstance(done, str):
            raise UniqueConflict(job_id, done)
        return done


class RateLimits(abc.ABC):
    """Rate limits (docs/control.md, "Rate limits"): the worker's admission
    (worker/rates.py) reserves start slots in a bucket and parks the jobs
    whose slot is later, without charging an attempt."""

    @abc.abstractmethod
    async def rate_admit(self, bucket: str, interval: float, count: int) -> list[float]:
        """Reserve `count` start slots of `bucket` (rates.bucket_id), one every
        `interval` seconds (broker clock): seconds from now until each; 0 is now."""

    @abc.abstractmethod
    async def rate_park(
        self, delivery: Delivery, record: bytes, delay: float, throttled: str | None
    ) -> bool:
        """End the lease and schedule the job `delay` seconds from now with
        `record` (attempts unchanged). `throttled`: its type while it waits for
        a rate-limit slot (counted as throttled until then); None for a
        RetryLater. False: the lease is not ours; CancelRequested: cancelled."""

    @abc.abstractmethod
    async def rate_wake(self, job_ids: Sequence[str]) -> int:
        """Move the due scheduled jobs where `job_ids` live, now (the worker's
        wake-up at a slot it reserved): how many moved."""

    @abc.abstractmethod
    async def declare_rate_limits(self, limits: Mapping[str, str | None]) -> None:
        """A worker's job types and their limits ("50/s"; None: unlimited), for the views."""

    @abc.abstractmethod
    async def rate_usage(self) -> list[RateUsage]:
        """Every declared limit with its use now, by type name."""


class ForeignRouting(abc.ABC):
    """Optional: route job records other clients wrote without Bananas'
    routing (the SDKs' plain priority lists). Only brokers that can receive
    such records have it; the worker starts its routing loops only then."""

    @abc.abstractmethod
    async def register_types(self, names: Sequence[str]) -> None:
        """Record that a worker can run these job types (for routing foreign jobs)."""

    @abc.abstractmethod
    async def pump_foreign(self, priority: str, timeout: float, route: str | None = None) -> int:
        """Route jobs other clients pushed without routing: the Redis plain
        list of `priority` (route None), or the Go scheduler's list of due
        jobs of `route` (bananas:route:{route}:queue:{priority})."""
