"""What a worker process says about itself, as values: who it is
(`WorkerIdentity`, fixed at start), how it is doing (`WorkerStatus`, a frozen
snapshot the runtime builds on request), and the two small shared cells its
parts report into (`BrokerLink`, `BrokerSnapshot`).

Health, /metrics, the metrics log and the registry read a `WorkerStatus`;
none of them reaches into the Worker, and none writes into it. This module
imports nothing from `bananas.worker` (observe sits under the worker).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..brokers.base import BrokerStats
from ..rates import RateUsage
from ..vocabulary import Mode, WorkerInfo
from .limits import LimitRow
from .stats import WorkerStats

FETCH_STALL = 15.0  # /livez fails when the fetch loop is this quiet with free slots


class WorkerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class BrokerLink:
    """Whether the broker answered the last call any part made: the fetcher,
    the lease heartbeat and the monitor's probe all report here, last one wins
    (what /readyz and `bananas_broker_up` show).

    `refusing` is apart: the broker answers but refuses writes (Redis at
    maxmemory). Set by the write that was refused (an ack, a dequeue),
    cleared by the next write accepted; reads and lease extensions (allowed
    at maxmemory) leave it alone. While set, /readyz fails with the reason
    and the fetcher starts no buffered job."""

    __slots__ = ("ok", "refusing")

    def __init__(self) -> None:
        self.ok = False
        self.refusing: str | None = None

    def up(self) -> None:
        self.ok = True

    def down(self) -> None:
        self.ok = False

    def refuses(self, reason: str) -> bool:
        """Record a refused write; True when it is news (log it once)."""
        news = self.refusing is None
        self.ok = True  # it answered
        self.refusing = reason
        return news

    def accepts(self) -> bool:
        """Record an accepted write; True when it ends a refusal."""
        self.ok = True
        ended = self.refusing is not None
        self.refusing = None
        return ended


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    """Queue state read from the broker every few seconds (not per scrape).
    Frozen and replaced whole, so the health thread never reads half of one."""

    stats: BrokerStats = field(default_factory=BrokerStats)
    oldest_age: dict[str, float] = field(default_factory=dict)
    taken_at: float = 0.0  # monotonic seconds; 0 = never taken
    limits: tuple[LimitRow, ...] = ()  # concurrency buckets in use (only where limits run)
    # Rate limits and their use (read only by a worker running a limited type).
    rates: tuple[RateUsage, ...] = ()
    workflows: dict[str, int] = field(default_factory=dict)  # count per WORKFLOW_STATES

    @property
    def queue_depth(self) -> int:
        return sum(self.stats.ready.values()) + sum(self.stats.unrouted.values())


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """The facts of a worker process that do not change while it runs."""

    id: str
    pid: int
    mode: Mode
    group: str
    priorities: tuple[str, ...]
    job_types: tuple[str, ...]
    concurrency: int
    scheduler: bool
    host: str = field(default_factory=socket.gethostname)
    routes: tuple[str, ...] = ("default",)


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker's state at one moment. Times are monotonic seconds."""

    state: WorkerState
    in_flight: int
    concurrency: int
    fetching: bool  # it has job types to fetch (a scheduler-only process has none)
    takes_jobs: bool  # its mode runs jobs
    broker_ok: bool
    utilization: float
    error_rate: float
    drain_elapsed_s: float | None  # None until a drain starts
    drain_duration_s: float  # of the finished drain; 0 if none
    shutdown_timeout_s: float
    last_fetch: float
    last_tick: float
    snapshot: BrokerSnapshot
    writes_refused: str | None = None  # why the broker refuses writes, or None
    threads_stuck: int = 0  # job threads still running a handler that timed out
    threads_total: int = 0  # the job thread pool's size
    prefetched: int = 0  # leased ahead of a free slot, not started (not in in_flight)

    @property
    def draining(self) -> bool:
        return self.state is WorkerState.DRAINING

    def liveness_problems(self, now: float, loop_stall: float) -> list[str]:
        """Why /livez fails: a blocked event loop, a fetch loop that stopped
        making progress while slots are free, or every job thread stuck in a
        handler that timed out (Python cannot stop a thread: only a restart frees it)."""
        problems = []
        lag = now - self.last_tick
        if lag > loop_stall:
            problems.append(
                f"event loop blocked for {lag:.1f}s (LIVENESS_LOOP_STALL={loop_stall:g}s)"
            )
        idle = now - self.last_fetch
        if (
            self.state is WorkerState.RUNNING
            and self.fetching
            and self.in_flight < self.concurrency
            and idle > max(loop_stall, FETCH_STALL)
        ):
            problems.append(f"fetch loop made no progress for {idle:.1f}s with free slots")
        if self.threads_total and self.threads_stuck >= self.threads_total:
            problems.append(
                f"all {self.threads_total} job threads are stuck in handlers that timed out: "
                "thread jobs cannot start until the worker restarts"
            )
        return problems

    def readiness_problems(self) -> list[str]:
        problems = []
        if self.state is not WorkerState.RUNNING:
            problems.append(f"worker is {self.state}")
        if not self.broker_ok:
            problems.append("broker unreachable")
        elif self.writes_refused is not None:
            problems.append(f"broker refuses writes: {self.writes_refused}")
        if not self.fetching and self.takes_jobs:
            problems.append("no job handlers registered")
        return problems

    def drain_info(self) -> dict[str, Any]:
        """The /drainz body."""
        return {
            "state": str(self.state),
            "draining": self.draining,
            "in_flight": self.in_flight,
            "drain_elapsed_s": self.drain_elapsed_s,
            "shutdown_timeout_s": self.shutdown_timeout_s,
        }


def registry_info(identity: WorkerIdentity, status: WorkerStatus, stats: WorkerStats) -> WorkerInfo:
    """The worker-registry entry of this process."""
    return WorkerInfo(
        id=identity.id,
        kind=identity.mode.registry_kind,
        host=identity.host,
        pid=identity.pid,
        mode=str(identity.mode),
        group=identity.group,
        priorities=list(identity.priorities),
        job_types=list(identity.job_types),
        routes=list(identity.routes),
        concurrency=identity.concurrency if identity.job_types else 0,
        in_flight=status.in_flight,
        prefetched=status.prefetched,
        utilization=round(status.utilization, 4),
        scheduler=identity.scheduler,
        started_at=stats.started_at,
        draining=status.draining,
        state=str(status.state),
        jobs_completed=stats.completed,
        jobs_failed=stats.failed,
        threads_stuck=status.threads_stuck,
    )
