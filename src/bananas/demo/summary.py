"""What the demo reports once the jobs are done: outcomes, retries, delays."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime

import orjson

from ..brokers import Broker
from ..brokers.base import JobResult
from ..vocabulary import PRIORITIES, Status
from .plan import Plan


@dataclass
class Summary:
    total: int
    finished: int
    completed: int
    dead: int
    retries: int
    drain_s: float
    completed_by_priority: dict[str, int]
    retry_detail: str
    dead_detail: str
    delayed: dict[str, float]  # delayed job id -> seconds from enqueue to finish
    delayed_detail: str

    @property
    def throughput(self) -> float:
        return self.finished / self.drain_s if self.drain_s > 0 else 0.0

    def as_expected(self) -> bool:
        return self.finished == self.total and self.dead == 1

    @classmethod
    async def collect(cls, broker: Broker, plan: Plan, enqueued_at: float) -> Summary:
        results = dict(zip(plan.ids, await broker.get_results(plan.ids), strict=True))
        attempts = await _attempts(broker, plan.ids)
        done = {i: r for i, r in results.items() if r is not None}
        completed = [i for i, r in done.items() if r.status == Status.COMPLETED]
        dead = [i for i, r in done.items() if r.status != Status.COMPLETED]
        last = max((_unix(r.completed_at) for r in done.values()), default=enqueued_at)
        by_priority = {p: 0 for p in PRIORITIES}
        for job_id in completed:
            by_priority[plan.priority[job_id]] += 1
        retried = {i: n - 1 for i, n in attempts.items() if n > 1}
        delayed = {i: _unix(done[i].completed_at) - enqueued_at for i in plan.delay if i in done}
        return cls(
            total=len(plan.ids),
            finished=len(done),
            completed=len(completed),
            dead=len(dead),
            retries=sum(retried.values()),
            drain_s=max(last - enqueued_at, 0.001),
            completed_by_priority=by_priority,
            retry_detail=_retry_detail(plan, retried, done),
            dead_detail="; ".join(f"{plan.name[i]}: {done[i].error}" for i in dead) or "none",
            delayed=delayed,
            delayed_detail=_delayed_detail(plan, delayed),
        )


async def _attempts(broker: Broker, ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        records = await asyncio.gather(*(broker.get_record(i) for i in chunk))
        for job_id, raw in zip(chunk, records, strict=True):
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError):
                out[job_id] = int(orjson.loads(raw or b"{}").get("attempts") or 0)
    return out


def _unix(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return time.time()


def _retry_detail(plan: Plan, retried: dict[str, int], done: dict[str, JobResult]) -> str:
    parts = []
    for job_id, n in retried.items():
        succeeded = done[job_id].status == Status.COMPLETED
        outcome = "then succeeded" if succeeded else "then gave up"
        parts.append(f"{plan.name[job_id]} retried {n}x, {outcome}")
    return "; ".join(parts) or "none"


def _delayed_detail(plan: Plan, delayed: dict[str, float]) -> str:
    if not delayed:
        return "none finished"
    on_time = all(delayed[i] >= plan.delay[i] for i in delayed)
    span = f"{min(delayed.values()):.1f}-{max(delayed.values()):.1f} s after enqueue"
    return f"ran {span}" + (", none before its delay" if on_time else ", SOME EARLY")
