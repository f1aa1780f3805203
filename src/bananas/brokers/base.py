"""The Broker protocol: the only way the worker, scheduler, CLI and dashboard
touch queue state. Each backend implements the abstract primitives; the
public helpers here do the bookkeeping that is the same for every backend.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..job import decode_record
from ..vocabulary import JOB_STATES as JOB_STATES  # re-exported
from ..vocabulary import check_state as check_state  # re-exported

QueueRef = tuple[str, str]
"""A routed ready queue: (priority, job type)."""


@dataclass(slots=True)
class NewJob:
    """A job ready to be written: its record is already encoded."""

    id: str
    name: str
    priority: str
    record: bytes
    due: float | None = None  # unix seconds; None = ready now


@dataclass(slots=True)
class Delivery:
    """A job leased to this worker. `token` proves the lease is still ours."""

    id: str
    raw: bytes | None
    token: str
    settling: bool = False  # its outcome (ack / retry / bury) is being recorded


@dataclass(slots=True)
class JobResult:
    status: str
    completed_at: str
    duration_ms: float
    result: bytes | None = None  # JSON text
    error: str | None = None

    def value(self) -> Any:
        return None if self.result is None else orjson.loads(self.result)


@dataclass(slots=True)
class DeadInfo:
    reason: str
    error: str
    traceback: str = ""
    failed_at: str = ""
    priority: str = ""
    name: str = ""
    source: str = "worker"

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "reason": self.reason,
                "error": self.error,
                "traceback": self.traceback,
                "failed_at": self.failed_at,
                "priority": self.priority,
                "name": self.name,
                "source": self.source,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | None) -> DeadInfo:
        try:
            data = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls(**{k: str(data.get(k) or "") for k in cls.__slots__})


@dataclass(slots=True)
class DeadLetter:
    id: str
    died_at_ms: int
    info: DeadInfo
    record: bytes | None


@dataclass(slots=True)
class BrokerStats:
    ready: dict[QueueRef, int] = field(default_factory=dict)
    unrouted: dict[str, int] = field(default_factory=dict)  # plain SDK lists by priority
    scheduled: int = 0
    active: int = 0
    dead: int = 0
    completed: int = 0  # entries in the recent-completions index


@dataclass(slots=True)
class JobSummary:
    """One job in a listing. `when_ms` depends on the state: lease deadline
    (running), due time (scheduled), finish time (completed, dead), and 0 for
    queued jobs."""

    id: str
    state: str
    when_ms: int
    record: bytes | None
    priority: str = ""
    name: str = ""


@dataclass(slots=True)
class Throughput:
    minute: int  # unix minute (unix seconds // 60)
    completed: int
    failed: int


@dataclass(slots=True)
class Recovered:
    recovered: list[str]
    buried: list[str]


class WorkerPath(abc.ABC):
    """The worker's hot path and the client calls: write, lease, heartbeat,
    settle, put back, recover, move due jobs, read results. Every time-based
    decision here is judged by the broker's clock (`server_time`)."""

    url: str
    result_ttl: float

    # -- lifecycle --------------------------------------------------------
    @abc.abstractmethod
    async def ping(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def durability_warnings(self) -> list[str]:
        """Start-up warnings about settings that can lose jobs (none by default)."""
        return []

    def describe(self) -> str:
        """Broker URL with any password masked, for logs."""
        return _mask(self.url)

    async def server_time(self) -> float:
        """The broker's clock, unix seconds: the one clock every lease, due
        time and cron firing is judged by (Redis: TIME; SQLite: this host)."""
        return time.time()

    # -- client -----------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Write jobs atomically per job; False for an id that already existed."""

    @abc.abstractmethod
    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[bool]: ...

    @abc.abstractmethod
    async def get_result(self, job_id: str) -> JobResult | None: ...

    @abc.abstractmethod
    def get_result_sync(self, job_id: str) -> JobResult | None: ...

    @abc.abstractmethod
    async def wait_result(self, job_id: str, timeout: float) -> JobResult | None: ...

    @abc.abstractmethod
    def wait_result_sync(self, job_id: str, timeout: float) -> JobResult | None: ...

    @abc.abstractmethod
    async def get_record(self, job_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]: ...

    # -- worker -----------------------------------------------------------
    @abc.abstractmethod
    async def dequeue(
        self, queues: Sequence[QueueRef], count: int, lease_seconds: float, token_prefix: str
    ) -> list[Delivery]:
        """Lease up to `count` ready jobs, taking the queues in the order given."""

    @abc.abstractmethod
    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        """Block until one of the queues may have a job, or `timeout` passes."""

    @abc.abstractmethod
    async def extend_leases(
        self, leases: Sequence[tuple[str, str]], lease_seconds: float
    ) -> list[str]:
        """Heartbeat (id, token) leases; returns the ids whose lease we lost."""

    @abc.abstractmethod
    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        """Ack with the result; False if the lease was lost (stale ack refused)."""

    @abc.abstractmethod
    async def retry(self, delivery: Delivery, record: bytes, due: float) -> bool: ...

    @abc.abstractmethod
    async def bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool: ...

    @abc.abstractmethod
    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        """Put leased jobs back at the head of their queue, no attempt charged."""

    # -- maintenance ------------------------------------------------------
    @abc.abstractmethod
    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        """Return expired leases to their queues (burying at max_stalls). Also the
        periodic upkeep point: a backend may trim its indexes here."""

    @abc.abstractmethod
    async def move_due(self, limit: int = 1000) -> int:
        """Route scheduled jobs that are due; returns how many moved."""


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

    @abc.abstractmethod
    async def list_jobs(
        self, state: str, offset: int = 0, limit: int = 50, job_type: str | None = None
    ) -> list[JobSummary]:
        """Jobs in one of JOB_STATES, newest first except queued (next to run
        first) and scheduled (soonest due first)."""

    @abc.abstractmethod
    async def count_jobs(self, state: str, job_type: str | None = None) -> int: ...

    @abc.abstractmethod
    async def job_state(self, job_id: str) -> str | None:
        """Which of JOB_STATES the job is in, None if unknown."""

    @abc.abstractmethod
    async def get_dead_info(self, job_id: str) -> DeadInfo | None: ...

    @abc.abstractmethod
    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        """Completed / failed attempts per minute for the last `minutes` minutes,
        oldest first, one entry per minute (zeros included)."""


class Registry(abc.ABC):
    """The fleet: workers and schedulers say who they are on a heartbeat."""

    @abc.abstractmethod
    async def heartbeat_worker(self, worker_id: str, info: dict[str, Any]) -> None:
        """Register or refresh a worker / scheduler entry (JSON-able info)."""

    @abc.abstractmethod
    async def remove_worker(self, worker_id: str) -> None: ...

    @abc.abstractmethod
    async def list_workers(self, expiry: float) -> list[dict[str, Any]]:
        """Entries heard from within `expiry` seconds; older ones are pruned.
        Each dict is the info given plus `last_seen` (unix seconds)."""


class Administration(abc.ABC):
    """Operator actions on dead letters."""

    @abc.abstractmethod
    async def get_record(self, job_id: str) -> bytes | None: ...

    @abc.abstractmethod
    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def delete_dead(self, job_id: str) -> bool: ...

    @abc.abstractmethod
    async def _replay(self, job_id: str, record: bytes, priority: str, name: str) -> bool: ...

    async def replay_dead(self, job_id: str) -> bool:
        """Make a dead job ready again with a fresh retry budget.

        Raises InvalidRecord when its record cannot be replayed (delete it instead)."""
        raw = await self.get_record(job_id)
        rec = decode_record(raw, expected_id=job_id)
        fields = rec.fields
        for key in ("error", "traceback", "scheduled_for"):
            fields.pop(key, None)
        record = rec.updated(attempts=0, status="pending")
        return await self._replay(job_id, record, rec.priority, rec.name)


class ForeignRouting(abc.ABC):
    """Optional: route job records other clients wrote without Bananas'
    routing (the SDKs' plain priority lists). Only brokers that can receive
    such records have it; the worker starts its routing loops only then."""

    @abc.abstractmethod
    async def register_types(self, names: Sequence[str]) -> None:
        """Record that a worker can run these job types (for routing foreign jobs)."""

    @abc.abstractmethod
    async def pump_foreign(self, priority: str, timeout: float) -> int:
        """Route jobs other clients pushed without routing (Redis plain lists)."""


class Broker(WorkerPath, Inspection, Registry, Administration):
    """A whole broker: every capability but the optional ones. The worker,
    scheduler, CLI and dashboard talk only to these classes."""


def foreign_routing(broker: Broker) -> ForeignRouting | None:
    """The broker's foreign-record router, if it has one."""
    return broker if isinstance(broker, ForeignRouting) else None


def _mask(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"
