"""What the overview, job-list and dead-letter pages show, read from the Broker
protocol only. The HTML pages and the JSON API render the same objects
(`to_json()` gives the API's shape). The workers page is in fleet.py, one job's
page in job_detail.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..brokers.base import Broker, Throughput
from ..keys import lane as lane_of
from ..keys import split_lane
from ..observe.limits import LimitRow, limit_rows
from ..rates import RESERVED, RateUsage
from ..routes import DEFAULT_ROUTE
from ..vocabulary import PRIORITIES, JobState
from .fleet import normalize_worker
from .records import load_fields, parse_time, preview, whole_number

PAGE_SIZES = (25, 50, 100, 200)


# -- overview -----------------------------------------------------------------


@dataclass(slots=True)
class QueueRow:
    job_type: str
    depth: dict[str, int]
    total: int
    running: int
    route: str = "default"


@dataclass(slots=True)
class Overview:
    broker: str
    rows: list[QueueRow]
    depth_by_priority: dict[str, int]
    unrouted: dict[str, int]
    queued: int
    scheduled: int
    running: int  # leased jobs that started (active minus prefetched)
    dead: int
    cancelled: int  # cancelled jobs whose result is still kept
    completed_recent: int
    oldest_age: dict[str, float]
    throughput: list[Throughput]
    completed_hour: int
    failed_hour: int
    workers: int
    schedulers: int
    capacity: int
    draining: int
    prefetched: int = 0  # leased ahead of a free slot, as the workers report it
    routed: bool = False  # some queue is on a named route: the table shows the column
    limits: list[LimitRow] = field(default_factory=list)  # concurrency buckets in use
    # Rate limits and their use (docs/control.md); throttled jobs are not in `scheduled`.
    throttled: int = 0
    rate_limits: list[RateUsage] = field(default_factory=list)
    now: float = field(default_factory=time.time)

    @property
    def failure_rate(self) -> float:
        done = self.completed_hour + self.failed_hour
        return self.failed_hour / done if done else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput"] = [asdict(t) for t in self.throughput]
        data["failure_rate"] = self.failure_rate
        data["limits"] = [row.to_json() for row in self.limits]
        return data


async def overview(broker: Broker, worker_expiry: float) -> Overview:
    stats, running, oldest, throughput, workers, (limits, rates) = await asyncio.gather(
        broker.stats(),
        broker.active_by_queue(),
        broker.oldest_ready_age(),
        broker.throughput(60),
        broker.list_workers(worker_expiry),
        asyncio.gather(limit_rows(broker), broker.rate_usage()),
    )
    throttled = sum(r.throttled for r in rates)
    # One row per (route, job type): the default route's first, as before routes.
    types = sorted(
        {
            (split_lane(lane)[0] != DEFAULT_ROUTE, split_lane(lane)[0], name)
            for lane, name in (*stats.ready, *running)
        }
    )
    rows = []
    for _, route, name in types:
        depth = {p: stats.ready.get((lane_of(route, p), name), 0) for p in PRIORITIES}
        rows.append(
            QueueRow(
                name,
                depth,
                sum(depth.values()),
                sum(n for (q, t), n in running.items() if t == name and split_lane(q)[0] == route),
                route,
            )
        )
    by_priority = {p: sum(r.depth[p] for r in rows) + stats.unrouted.get(p, 0) for p in PRIORITIES}
    for (_, p), n in stats.unrouted_routes.items():  # the Go scheduler's route lists
        by_priority[p] = by_priority.get(p, 0) + n
    fleet = [normalize_worker(w, time.time()) for w in workers]
    # The broker counts every leased job active, started or not; the workers
    # say how many of theirs wait in the prefetch buffer (a heartbeat behind).
    prefetched = min(stats.active, sum(w.prefetched or 0 for w in fleet if not w.is_scheduler))
    return Overview(
        broker=broker.describe(),
        rows=rows,
        depth_by_priority=by_priority,
        unrouted={p: n for p, n in stats.unrouted.items() if n},
        queued=sum(by_priority.values()),
        scheduled=max(0, stats.scheduled - throttled),  # read apart: may cross
        running=stats.active - prefetched,
        dead=stats.dead,
        cancelled=stats.cancelled,
        completed_recent=stats.completed,
        oldest_age={p: oldest.get(p, 0.0) for p in PRIORITIES},
        throughput=throughput,
        completed_hour=sum(t.completed for t in throughput),
        failed_hour=sum(t.failed for t in throughput),
        workers=sum(1 for w in fleet if not w.is_scheduler),
        schedulers=sum(1 for w in fleet if w.is_scheduler),
        capacity=sum(w.concurrency or 0 for w in fleet if not w.is_scheduler),
        draining=sum(1 for w in fleet if w.draining),
        prefetched=prefetched,
        routed=any(r.route != DEFAULT_ROUTE for r in rows),
        limits=limits,
        throttled=throttled,
        rate_limits=rates,
    )


# -- job listings -------------------------------------------------------------------


@dataclass(slots=True)
class JobRow:
    id: str
    state: str
    when_ms: int
    priority: str
    name: str
    attempts: int | None  # of a running job: the attempt it is on (finished + 1)
    created_at: float | None
    error: str
    preview: str
    readable: bool
    status: str = ""
    missing: bool = False  # no record any more (a finished job's record expired)
    # Scheduled: waiting for its rate-limit slot (rates.py), not a delay or a retry.
    throttled: bool = False


@dataclass(slots=True)
class JobList:
    state: str
    job_type: str | None
    offset: int
    limit: int
    rows: list[JobRow]
    total: int | None  # None when counting would mean scanning (a type filter)
    has_more: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def job_list(
    broker: Broker, state: str, offset: int, limit: int, job_type: str | None
) -> JobList:
    """One page of a state. The total is counted only when that is cheap (no type
    filter, or queued); otherwise one extra job is fetched to know if a next page exists."""
    countable = job_type is None or state == JobState.QUEUED
    if countable:
        summaries, total = await asyncio.gather(
            broker.list_jobs(state, offset, limit, job_type), broker.count_jobs(state, job_type)
        )
        has_more = offset + len(summaries) < total
    else:
        summaries = await broker.list_jobs(state, offset, limit + 1, job_type)
        total = None
        has_more = len(summaries) > limit
        summaries = summaries[:limit]
    rows = []
    for s in summaries:
        fields = load_fields(s.record)
        attempts = whole_number((fields or {}).get("attempts"))
        if s.state == JobState.RUNNING and attempts is not None:
            # The record counts finished attempts; a running job is on the
            # next one, the number its worker logs (`attempt=1` for a first run).
            attempts += 1
        rows.append(
            JobRow(
                id=s.id,
                state=s.state,
                when_ms=s.when_ms,
                priority=s.priority or str((fields or {}).get("priority") or ""),
                name=s.name or str((fields or {}).get("name") or ""),
                attempts=attempts,
                created_at=parse_time((fields or {}).get("created_at")),
                error=str((fields or {}).get("error") or ""),
                preview=preview((fields or {}).get("payload")),
                readable=fields is not None,
                status=str((fields or {}).get("status") or ""),
                missing=s.record is None,
                throttled=s.state == JobState.SCHEDULED and _holds_slot(fields or {}),
            )
        )
    return JobList(state, job_type, offset, limit, rows, total, has_more)


def _holds_slot(fields: dict[str, Any]) -> bool:
    """Parked for the slot it reserved (a retry's record still names an older one)."""
    reserved = fields.get(RESERVED)
    return reserved is not None and reserved == (fields.get("attempts") or 0)


# -- dead letters -------------------------------------------------------------------------------


@dataclass(slots=True)
class DeadRow:
    id: str
    died_at_ms: int
    name: str
    priority: str
    reason: str
    error: str
    attempts: int | None


@dataclass(slots=True)
class DeadList:
    offset: int
    limit: int
    total: int
    rows: list[DeadRow]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def dead_list(broker: Broker, offset: int, limit: int) -> DeadList:
    letters, total = await asyncio.gather(
        broker.list_dead(offset, limit), broker.count_jobs(JobState.DEAD)
    )
    rows = []
    for d in letters:
        fields = load_fields(d.record) or {}
        rows.append(
            DeadRow(
                id=d.id,
                died_at_ms=d.died_at_ms,
                name=d.info.name or str(fields.get("name") or ""),
                priority=d.info.priority or str(fields.get("priority") or ""),
                reason=d.info.reason,
                error=d.info.error,
                attempts=whole_number(fields.get("attempts")),
            )
        )
    return DeadList(offset, limit, total, rows)


async def all_dead_ids(broker: Broker) -> list[str]:
    """Every dead-lettered id, read before acting (acting shifts the pages)."""
    ids: list[str] = []
    while batch := await broker.list_dead(len(ids), 1000):
        ids += [d.id for d in batch]
    return ids


__all__ = [
    "PAGE_SIZES",
    "DeadList",
    "DeadRow",
    "JobList",
    "JobRow",
    "Overview",
    "QueueRow",
    "all_dead_ids",
    "dead_list",
    "job_list",
    "overview",
]
