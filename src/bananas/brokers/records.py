"""The records brokers exchange with their callers, and the small pieces of
logic every backend shares: chunking, registry decoding, dead-info defaults,
the record of a job dead-lettered for stalling."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import orjson

from ..errors import InvalidRecord
from ..job import decode_record, now_iso
from ..vocabulary import Status, WorkerInfo

T = TypeVar("T")

QueueRef = tuple[str, str]
"""A routed ready queue: (lane, job type); a lane is the priority on the
default route and "route:priority" on another (keys.lane)."""

# Enqueue batches are split so that one script / transaction never holds the
# broker for long; each job is still written atomically.
ENQUEUE_CHUNK = 500
# Size of the recent-completions index the dashboard pages through.
KEEP_COMPLETED = 100_000
# How long a minute's throughput counters are kept (seconds). Sent to the
# Redis scripts in ARGV and used by the SQLite purge, so both keep the same.
THROUGHPUT_KEEP_S = 7200


@dataclass(slots=True)
class NewJob:
    """A job ready to be written: its record is already encoded.

    `due` is absolute (unix seconds, for `_at`); `delay` is relative to the
    broker's clock (for `_delay`), so a client whose clock is off still
    delays by what it asked. With neither the job is ready now; `due` wins
    when both are set.

    A unique job's id may be chosen again by the broker before it is written
    (Redis Cluster puts the job in its key's partition, with the lock): read
    `id` after `enqueue`."""

    id: str
    name: str
    priority: str
    record: bytes
    due: float | None = None
    delay: float | None = None
    route: str | None = None  # None: the default route (nothing to look up)
    # A unique job (docs/control.md): the hashed key (specs.unique_digest) and
    # how long the lock lasts at most (ms, the broker's clock). None: no lock,
    # and the enqueue costs exactly what it did before unique jobs.
    unique: str | None = None
    unique_ms: int = 0
    # Set by the broker's enqueue: the id of the live job that already held
    # the key (this one was not created; `enqueue` answered False for it).
    duplicate_of: str | None = None


CANCELLED = "cancelled"
"""JobResult.status of a cancelled job, as Bananas reads it; on the wire the
result and the record say `failed`, with `cancelled` (docs/wire-format.md)."""


def cancelled_record(rec: Any, attempts: int | None = None) -> bytes:
    """A JobRecord's record once cancelled: status `failed` (what SDK readers
    know), error `cancelled`, and `cancelled_at`."""
    changes: dict[str, Any] = {"status": "failed", "error": CANCELLED, "cancelled_at": now_iso()}
    if attempts is not None:
        changes["attempts"] = attempts
    data: bytes = rec.updated(**changes)
    return data


class CancelOutcome(StrEnum):
    """What `cancel(job_id)` did (docs/control.md)."""

    CANCELLED = "cancelled"  # queued or scheduled: removed, it never runs
    REQUESTED = "cancel_requested"  # running: the worker holding it is told
    ALREADY_COMPLETED = "already_completed"
    ALREADY_DEAD = "already_dead"
    ALREADY_CANCELLED = "already_cancelled"
    UNROUTED = "unrouted"  # in an SDK's plain list, not routed yet: try again
    UNKNOWN = "unknown"  # no such job (or its record expired)

    @property
    def finished(self) -> bool:
        """The job had already reached a final state."""
        return self.value.startswith("already_")

    def describe(self) -> str:
        return _CANCEL_TEXT[self]


_CANCEL_TEXT = {
    CancelOutcome.CANCELLED: "cancelled before it ran: it will never run",
    CancelOutcome.REQUESTED: "running: cancel requested, its worker stops it within a second",
    CancelOutcome.ALREADY_COMPLETED: "already finished: completed",
    CancelOutcome.ALREADY_DEAD: "already finished: dead-lettered",
    CancelOutcome.ALREADY_CANCELLED: "already finished: cancelled",
    CancelOutcome.UNROUTED: "waiting in an SDK list, not routed yet: try again in a moment",
    CancelOutcome.UNKNOWN: "unknown job (never enqueued, or its record expired)",
}


@dataclass(slots=True)
class Delivery:
    """A job leased to this worker. `token` proves the lease is still ours."""

    id: str
    raw: bytes | None
    token: str
    settling: bool = False  # its outcome (ack / retry / bury) is being recorded
    started: bool = False  # its handler was started (set by the worker's fetcher)
    # Until when the lease is surely ours, on this process's monotonic clock
    # (set by the fetcher and the heartbeat; 0 once the broker said it is gone).
    held_until: float = float("inf")
    # Someone cancelled the job while this worker held it (worker/cancels.py).
    cancel_requested: bool = False
    # The workflow the job is a step of (its record's `wf`, set by the
    # runner): it then settles through the member transitions (workflows.md).
    workflow: str | None = None


@dataclass(slots=True)
class JobResult:
    status: str
    completed_at: str
    duration_ms: float
    result: bytes | None = None  # JSON text
    error: str | None = None

    def value(self) -> Any:
        return None if self.result is None else orjson.loads(self.result)


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What a running job last reported (`current_job().set_progress`):
    `fraction` in [0, 1], a short message, the attempt that reported it and
    when the broker stored it (unix seconds, the broker's clock)."""

    fraction: float
    message: str
    attempt: int
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "message": self.message,
            "attempt": self.attempt,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a running job: the worker id (from the lease token, which is
    "<worker id>:<call>:<n>"), until when (unix seconds, broker clock), and
    whether its handler started (False while it waits in a prefetch buffer)."""

    worker: str
    deadline: float
    started: bool

    @classmethod
    def from_token(cls, token: str, deadline: float) -> Lease:
        started = not token.startswith("~")
        return cls(token.lstrip("~").rsplit(":", 2)[0], deadline, started)


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

    def with_defaults(self) -> DeadInfo:
        """Fill in what a caller may leave empty (the time of death)."""
        if not self.failed_at:
            self.failed_at = now_iso()
        return self

    @property
    def result_error(self) -> str:
        """The `error` of the failed result: the error, else the reason."""
        return self.error or self.reason


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
    # The Go scheduler's lists (bananas:route:{route}:queue:{priority}) holding
    # jobs, by (route, priority): only a worker of the route moves them on.
    # Redis only; the routes looked at are default and those of `ready`.
    unrouted_routes: dict[tuple[str, str], int] = field(default_factory=dict)
    scheduled: int = 0
    active: int = 0
    dead: int = 0
    completed: int = 0  # entries in the recent-completions index
    cancelled: int = 0  # jobs cancelled (kept like results, for RESULT_TTL)


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


def chunks(items: Sequence[T], size: int = ENQUEUE_CHUNK) -> list[Sequence[T]]:
    """`items` in slices of at most `size`; a short batch is not copied."""
    if len(items) <= size:
        return [items]
    return [items[start : start + size] for start in range(0, len(items), size)]


def stall_reason(stalls: int, max_stalls: int) -> str:
    return (
        f"worker lost while running the job {stalls} times "
        f"(MAX_STALLS={max_stalls}): it may be crashing its worker"
    )


def stalled_record(raw: bytes | None, reason: str) -> bytes | None:
    """The record of a job dead-lettered for stalling: failed, with the error
    and the lost run counted as its attempt (as a worker's own bury does).
    None when the record cannot be decoded: it is then kept as it was, for
    inspection."""
    try:
        rec = decode_record(raw)
    except InvalidRecord:
        return None
    return rec.updated(status=Status.FAILED.value, attempts=rec.attempts + 1, error=reason)


Unique = tuple[str, int]
"""A unique job's lock: (digest, unique_for in ms)."""


def record_unique(fields: dict[str, Any]) -> Unique | None:
    """The lock a job record names (`unique_key`, `unique_for_ms`: Bananas'
    own fields, written at enqueue), None for a job that is not unique or a
    record whose fields are not what Bananas writes."""
    digest, ttl_ms = fields.get("unique_key"), fields.get("unique_for_ms")
    if not isinstance(digest, str) or not digest or isinstance(ttl_ms, bool):
        return None
    if not isinstance(ttl_ms, int) or ttl_ms <= 0:
        return None
    return digest, ttl_ms


def encode_worker(info: WorkerInfo) -> bytes:
    return orjson.dumps(info.to_dict())


def decode_workers(rows: Iterable[tuple[str, bytes, float]]) -> list[WorkerInfo]:
    """Registry rows (id, JSON entry, last seen in unix seconds) as WorkerInfo;
    an entry that is not a JSON object is skipped. The row's id wins over
    the entry's own: it is the key the broker files the entry under."""
    out = []
    for worker_id, raw, seen in rows:
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entry["id"] = worker_id
            entry["last_seen"] = seen
            out.append(WorkerInfo.from_dict(entry))
    return out
