"""What each page shows, read from the Broker protocol only. The HTML pages and
the JSON API render the same objects (`to_json()` gives the API's shape)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ..brokers.base import JOB_STATES, Broker, DeadInfo, JobResult, Throughput
from ..vocabulary import PRIORITIES

PAGE_SIZES = (25, 50, 100, 200)
PREVIEW_CHARS = 120


def parse_time(value: Any) -> float | None:
    """Unix seconds of an ISO 8601 text (as records carry), None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def pretty_json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return repr(value)


def _loads(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# -- overview -----------------------------------------------------------------


@dataclass(slots=True)
class QueueRow:
    job_type: str
    depth: dict[str, int]
    total: int
    running: int


@dataclass(slots=True)
class Overview:
    broker: str
    rows: list[QueueRow]
    depth_by_priority: dict[str, int]
    unrouted: dict[str, int]
    queued: int
    scheduled: int
    running: int
    dead: int
    completed_recent: int
    oldest_age: dict[str, float]
    throughput: list[Throughput]
    completed_hour: int
    failed_hour: int
    workers: int
    schedulers: int
    capacity: int
    draining: int
    now: float = field(default_factory=time.time)

    @property
    def failure_rate(self) -> float:
        done = self.completed_hour + self.failed_hour
        return self.failed_hour / done if done else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput"] = [asdict(t) for t in self.throughput]
        data["failure_rate"] = self.failure_rate
        return data


async def overview(broker: Broker, worker_expiry: float) -> Overview:
    stats, running, oldest, throughput, workers = await asyncio.gather(
        broker.stats(),
        broker.active_by_queue(),
        broker.oldest_ready_age(),
        broker.throughput(60),
        broker.list_workers(worker_expiry),
    )
    types = sorted({name for _, name in stats.ready} | {name for _, name in running})
    rows = []
    for name in types:
        depth = {p: stats.ready.get((p, name), 0) for p in PRIORITIES}
        rows.append(
            QueueRow(
                name,
                depth,
                sum(depth.values()),
                sum(n for (_, t), n in running.items() if t == name),
            )
        )
    by_priority = {p: sum(r.depth[p] for r in rows) + stats.unrouted.get(p, 0) for p in PRIORITIES}
    fleet = [normalize_worker(asdict(w), time.time()) for w in workers]
    return Overview(
        broker=broker.describe(),
        rows=rows,
        depth_by_priority=by_priority,
        unrouted={p: n for p, n in stats.unrouted.items() if n},
        queued=sum(by_priority.values()),
        scheduled=stats.scheduled,
        running=stats.active,
        dead=stats.dead,
        completed_recent=stats.completed,
        oldest_age={p: oldest.get(p, 0.0) for p in PRIORITIES},
        throughput=throughput,
        completed_hour=sum(t.completed for t in throughput),
        failed_hour=sum(t.failed for t in throughput),
        workers=sum(1 for w in fleet if not w.is_scheduler),
        schedulers=sum(1 for w in fleet if w.is_scheduler),
        capacity=sum(w.concurrency or 0 for w in fleet if not w.is_scheduler),
        draining=sum(1 for w in fleet if w.draining),
    )


# -- workers ----------------------------------------------------------------------


@dataclass(slots=True)
class WorkerRow:
    id: str
    kind: str
    host: str
    pid: int | None
    mode: str
    group: str
    priorities: list[str]
    job_types: list[str]
    concurrency: int | None
    in_flight: int | None
    utilization: float | None
    started_at: float | None
    last_seen: float | None
    draining: bool
    state: str
    heartbeat_age: float | None
    uptime: float | None
    scheduler_loop: bool = False
    jobs_completed: int | None = None
    jobs_failed: int | None = None

    @property
    def is_scheduler(self) -> bool:
        return self.kind == "scheduler"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


def _texts(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [] if value in (None, "") else [str(value)]


def normalize_worker(entry: dict[str, Any], now: float) -> WorkerRow:
    """A registry entry as the pages show it; a missing or mistyped field is None/""."""
    last_seen = _num(entry.get("last_seen"))
    started = _num(entry.get("started_at"))
    utilization = _num(entry.get("utilization"))
    kind = str(entry.get("kind") or "worker")
    if kind != "scheduler" and entry.get("mode") == "scheduler-only":
        kind = "scheduler"
    return WorkerRow(
        id=str(entry.get("id") or "?"),
        kind=kind,
        host=str(entry.get("host") or ""),
        pid=_int(entry.get("pid")),
        mode=str(entry.get("mode") or ""),
        group=str(entry.get("group") or ""),
        priorities=_texts(entry.get("priorities")),
        job_types=_texts(entry.get("job_types")),
        concurrency=_int(entry.get("concurrency")),
        in_flight=_int(entry.get("in_flight")),
        utilization=None if utilization is None else min(max(utilization, 0.0), 1.0),
        started_at=started,
        last_seen=last_seen,
        draining=entry.get("draining") is True,
        state=str(entry.get("state") or ""),
        heartbeat_age=None if last_seen is None else max(0.0, now - last_seen),
        uptime=None if started is None else max(0.0, now - started),
        scheduler_loop=entry.get("scheduler") is True,
        jobs_completed=_int(entry.get("jobs_completed")),
        jobs_failed=_int(entry.get("jobs_failed")),
    )


@dataclass(slots=True)
class PoolRow:
    group: str
    mode: str
    workers: int
    concurrency: int
    in_flight: int
    utilization: float | None


@dataclass(slots=True)
class Fleet:
    workers: list[WorkerRow]
    schedulers: list[WorkerRow]
    pools: list[PoolRow]
    expiry: float

    def to_json(self) -> dict[str, Any]:
        return {
            "workers": [asdict(w) for w in self.workers],
            "schedulers": [asdict(s) for s in self.schedulers],
            "pools": [asdict(p) for p in self.pools],
            "expiry": self.expiry,
        }


async def fleet(broker: Broker, expiry: float) -> Fleet:
    now = time.time()
    rows = [normalize_worker(asdict(e), now) for e in await broker.list_workers(expiry)]
    rows.sort(key=lambda w: (w.group, w.host, w.pid or 0, w.id))
    workers = [w for w in rows if not w.is_scheduler]
    pools: dict[tuple[str, str], list[WorkerRow]] = {}
    for w in workers:
        pools.setdefault((w.group, w.mode), []).append(w)
    pool_rows = []
    for (group, mode), members in sorted(pools.items()):
        utils = [w.utilization for w in members if w.utilization is not None]
        pool_rows.append(
            PoolRow(
                group,
                mode,
                len(members),
                sum(w.concurrency or 0 for w in members),
                sum(w.in_flight or 0 for w in members),
                sum(utils) / len(utils) if utils else None,
            )
        )
    return Fleet(workers, [w for w in rows if w.is_scheduler], pool_rows, expiry)


# -- job listings -------------------------------------------------------------------


@dataclass(slots=True)
class JobRow:
    id: str
    state: str
    when_ms: int
    priority: str
    name: str
    attempts: int | None
    created_at: float | None
    error: str
    preview: str
    readable: bool
    status: str = ""
    missing: bool = False  # no record any more (a finished job's record expired)


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


def _preview(payload: Any) -> str:
    text = orjson.dumps(payload).decode() if payload is not None else ""
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


async def job_list(
    broker: Broker, state: str, offset: int, limit: int, job_type: str | None
) -> JobList:
    """One page of a state. The total is counted only when that is cheap (no type
    filter, or queued); otherwise one extra job is fetched to know if a next page exists."""
    countable = job_type is None or state == "queued"
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
        fields = _loads(s.record)
        rows.append(
            JobRow(
                id=s.id,
                state=s.state,
                when_ms=s.when_ms,
                priority=s.priority or str((fields or {}).get("priority") or ""),
                name=s.name or str((fields or {}).get("name") or ""),
                attempts=_int((fields or {}).get("attempts")),
                created_at=parse_time((fields or {}).get("created_at")),
                error=str((fields or {}).get("error") or ""),
                preview=_preview((fields or {}).get("payload")),
                readable=fields is not None,
                status=str((fields or {}).get("status") or ""),
                missing=s.record is None,
            )
        )
    return JobList(state, job_type, offset, limit, rows, total, has_more)


# -- one job ------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    at: float
    label: str
    detail: str = ""


@dataclass(slots=True)
class JobDetail:
    id: str
    state: str | None
    fields: dict[str, Any] | None
    raw_record: str | None
    payload: str | None
    result: JobResult | None
    result_value: str | None
    dead: DeadInfo | None
    timeline: list[Event]

    @property
    def found(self) -> bool:
        return self.state is not None or self.raw_record is not None or self.result is not None

    @property
    def name(self) -> str:
        return str((self.fields or {}).get("name") or (self.dead.name if self.dead else ""))

    @property
    def other_fields(self) -> list[tuple[str, str]]:
        """Record fields other than the payload, values as text."""
        out = []
        for key, value in (self.fields or {}).items():
            if key in ("payload", "traceback"):
                continue
            out.append((key, value if isinstance(value, str) else pretty_json(value)))
        return out

    @property
    def traceback(self) -> str:
        if self.dead and self.dead.traceback:
            return self.dead.traceback
        value = (self.fields or {}).get("traceback")
        return value if isinstance(value, str) else ""

    def to_json(self) -> dict[str, Any]:
        result = None
        if self.result is not None:
            result = {
                "status": self.result.status,
                "completed_at": self.result.completed_at,
                "duration_ms": self.result.duration_ms,
                "result": self.result.value() if self.result_value is not None else None,
                "error": self.result.error,
            }
        return {
            "id": self.id,
            "state": self.state,
            "record": self.fields,
            "raw_record": self.raw_record if self.fields is None else None,
            "result": result,
            "dead": asdict(self.dead) if self.dead else None,
            "timeline": [asdict(e) for e in self.timeline],
        }


async def job_detail(broker: Broker, job_id: str) -> JobDetail:
    raw, state, results, dead = await asyncio.gather(
        broker.get_record(job_id),
        broker.job_state(job_id),
        broker.get_results([job_id]),
        broker.get_dead_info(job_id),
    )
    result = results[0] if results else None
    fields = _loads(raw)
    result_value = None
    if result is not None and result.result is not None:
        try:
            result_value = pretty_json(result.value())
        except orjson.JSONDecodeError:
            result_value = result.result.decode("utf-8", "replace")
    payload = fields.get("payload") if fields else None
    return JobDetail(
        id=job_id,
        state=state,
        fields=fields,
        raw_record=None if raw is None else raw.decode("utf-8", "replace"),
        payload=None if fields is None or "payload" not in fields else pretty_json(payload),
        result=result,
        result_value=result_value,
        dead=dead,
        timeline=_timeline(fields or {}, result, dead),
    )


def _timeline(
    fields: dict[str, Any], result: JobResult | None, dead: DeadInfo | None
) -> list[Event]:
    events: list[Event] = []

    def add(value: Any, label: str, detail: str = "") -> None:
        at = parse_time(value)
        if at is not None:
            events.append(Event(at, label, detail))

    add(fields.get("created_at"), "created")
    add(fields.get("scheduled_for"), "scheduled for", "due time (a delay or a retry back-off)")
    add(fields.get("updated_at"), "updated", f"status {fields.get('status') or '?'}")
    if result is not None:
        detail = f"{result.duration_ms:.0f} ms" + (f": {result.error}" if result.error else "")
        add(result.completed_at, "completed" if result.status == "completed" else "failed", detail)
    if dead is not None:
        add(dead.failed_at, "dead-lettered", dead.reason)
    events.sort(key=lambda e: e.at)
    return events


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
        broker.list_dead(offset, limit), broker.count_jobs("dead")
    )
    rows = []
    for d in letters:
        fields = _loads(d.record) or {}
        rows.append(
            DeadRow(
                id=d.id,
                died_at_ms=d.died_at_ms,
                name=d.info.name or str(fields.get("name") or ""),
                priority=d.info.priority or str(fields.get("priority") or ""),
                reason=d.info.reason,
                error=d.info.error,
                attempts=_int(fields.get("attempts")),
            )
        )
    return DeadList(offset, limit, total, rows)


async def all_dead_ids(broker: Broker) -> list[str]:
    """Every dead-lettered id, read before acting (acting shifts the pages)."""
    ids: list[str] = []
    while batch := await broker.list_dead(len(ids), 1000):
        ids += [d.id for d in batch]
    return ids


__all__ = ["JOB_STATES", "PAGE_SIZES"]
