"""The words of the system, each spelled once: priorities, worker modes, job
states, dead-letter reasons, and the worker-registry record with its codec.

Everything else imports these instead of comparing bare strings, so a new
mode or state is added here and the type checker finds every place to touch.
This module imports nothing from the package (it sits under everything).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
"""All priorities, in the order a worker takes them (high first)."""
PRIORITY_NAMES = frozenset(PRIORITIES)
DEFAULT_PRIORITY_WEIGHTS: tuple[tuple[str, int], ...] = (("high", 6), ("normal", 3), ("low", 1))


class Status(StrEnum):
    """The `status` field of a job record (wire format, docs/wire-format.md)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    SCHEDULED = "scheduled"


class JobState(StrEnum):
    """Where a job is on the broker (inspection, listings, the dashboard)."""

    QUEUED = "queued"
    RUNNING = "running"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    DEAD = "dead"


JOB_STATES: tuple[str, ...] = tuple(s.value for s in JobState)


def check_state(state: str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        raise ValueError(
            f"unknown job state {state!r} (allowed: {', '.join(JOB_STATES)})"
        ) from None


class Mode(StrEnum):
    """WORKER_MODE. The properties answer what each mode implies, so callers
    ask `mode.takes_jobs` instead of comparing with "scheduler-only"."""

    THIN = "thin"
    DEFAULT = "default"
    SPECIALIZED = "specialized"
    JOB_SPECIALIZED = "job-specialized"
    SCHEDULER_ONLY = "scheduler-only"

    @property
    def takes_jobs(self) -> bool:
        return self is not Mode.SCHEDULER_ONLY

    @property
    def scheduler_by_default(self) -> bool:
        """ENABLE_SCHEDULER's default in this mode."""
        return self in (Mode.THIN, Mode.DEFAULT, Mode.SCHEDULER_ONLY)

    @property
    def takes_all_priorities(self) -> bool:
        """Thin ignores WORKER_PRIORITIES: it takes everything, high first."""
        return self is Mode.THIN

    @property
    def needs_job_types(self) -> bool:
        return self is Mode.JOB_SPECIALIZED

    @property
    def registry_kind(self) -> str:
        return "worker" if self.takes_jobs else "scheduler"


MODES: tuple[str, ...] = tuple(m.value for m in Mode)


class DeadReason:
    """The reason texts stored with a dead letter (operators grep for them)."""

    @staticmethod
    def failed(attempts: int, budget: int) -> str:
        return f"failed {attempts} times (max_retries={budget})"

    @staticmethod
    def stalled(stalls: int) -> str:
        return f"stalled {stalls} times (MAX_STALLS)"


class DeadSource(StrEnum):
    """Who dead-lettered a job."""

    WORKER = "worker"
    ROUTER = "router"
    RECOVERER = "recoverer"


@dataclass(slots=True)
class WorkerInfo:
    """One entry of the worker registry: what a worker or scheduler says of
    itself on every registry heartbeat. The codec is lenient on decode: an
    entry written by another version (a missing or mistyped field) decodes to
    the field's empty value, never raises."""

    id: str
    kind: str = "worker"  # "worker" | "scheduler" (Mode.registry_kind)
    host: str = ""
    pid: int | None = None
    mode: str = ""
    group: str = ""
    priorities: list[str] = field(default_factory=list)
    job_types: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # WORKER_ROUTING_KEYS; [] from older workers
    concurrency: int | None = None
    in_flight: int | None = None  # jobs running (started), settling included
    prefetched: int | None = None  # leased ahead of a free slot, not started yet
    utilization: float | None = None
    scheduler: bool = False
    started_at: float | None = None
    draining: bool = False
    state: str = ""
    jobs_completed: int | None = None
    jobs_failed: int | None = None
    threads_stuck: int | None = None  # job threads running a handler that timed out
    last_seen: float | None = None  # filled in by the broker on read (its clock)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("last_seen")
        return data

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> WorkerInfo:
        kind = _text(entry.get("kind")) or "worker"
        mode = _text(entry.get("mode"))
        if mode == Mode.SCHEDULER_ONLY.value:
            kind = "scheduler"
        return cls(
            id=_text(entry.get("id")) or "?",
            kind=kind,
            host=_text(entry.get("host")),
            pid=_int(entry.get("pid")),
            mode=mode,
            group=_text(entry.get("group")),
            priorities=_texts(entry.get("priorities")),
            job_types=_texts(entry.get("job_types")),
            routes=_texts(entry.get("routes")),
            concurrency=_int(entry.get("concurrency")),
            in_flight=_int(entry.get("in_flight")),
            prefetched=_int(entry.get("prefetched")),
            utilization=_num(entry.get("utilization")),
            scheduler=entry.get("scheduler") is True,
            started_at=_num(entry.get("started_at")),
            draining=entry.get("draining") is True,
            state=_text(entry.get("state")),
            jobs_completed=_int(entry.get("jobs_completed")),
            jobs_failed=_int(entry.get("jobs_failed")),
            threads_stuck=_int(entry.get("threads_stuck")),
            last_seen=_num(entry.get("last_seen")),
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _texts(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [] if value in (None, "") else [str(value)]
