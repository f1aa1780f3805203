"""The workers page: registry entries as rows, and pools summed from them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..brokers.base import Broker
from ..vocabulary import WorkerInfo


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
    prefetched: int | None = None  # leased, waiting for a free slot (not in in_flight)

    @property
    def is_scheduler(self) -> bool:
        return self.kind == "scheduler"


def normalize_worker(entry: dict[str, Any] | WorkerInfo, now: float) -> WorkerRow:
    """A registry entry as the pages show it. WorkerInfo's codec does the
    checking (a missing or mistyped field is None/""); the row adds the ages
    and keeps utilization within 0-100 % whatever a worker wrote."""
    info = entry if isinstance(entry, WorkerInfo) else WorkerInfo.from_dict(entry)
    utilization = info.utilization
    return WorkerRow(
        id=info.id,
        kind=info.kind,
        host=info.host,
        pid=info.pid,
        mode=info.mode,
        group=info.group,
        priorities=info.priorities,
        job_types=info.job_types,
        concurrency=info.concurrency,
        in_flight=info.in_flight,
        utilization=None if utilization is None else min(max(utilization, 0.0), 1.0),
        started_at=info.started_at,
        last_seen=info.last_seen,
        draining=info.draining,
        state=info.state,
        heartbeat_age=None if info.last_seen is None else max(0.0, now - info.last_seen),
        uptime=None if info.started_at is None else max(0.0, now - info.started_at),
        scheduler_loop=info.scheduler,
        jobs_completed=info.jobs_completed,
        jobs_failed=info.jobs_failed,
        prefetched=info.prefetched,
    )


@dataclass(slots=True)
class PoolRow:
    group: str
    mode: str
    workers: int
    concurrency: int
    in_flight: int
    utilization: float | None
    prefetched: int = 0


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
    rows = [normalize_worker(e, now) for e in await broker.list_workers(expiry)]
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
                sum(w.prefetched or 0 for w in members),
            )
        )
    return Fleet(workers, [w for w in rows if w.is_scheduler], pool_rows, expiry)


__all__ = ["Fleet", "PoolRow", "WorkerRow", "fleet", "normalize_worker"]
