"""Inspection and dead-letter administration on Redis Cluster (a mixin of
PartitionedBroker): a per-job question goes to the job's partition; a
fleet-wide one asks every partition at once and adds the answers up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain, zip_longest
from typing import TYPE_CHECKING, TypeVar

from ...vocabulary import JobState
from ..records import (
    BrokerStats,
    DeadInfo,
    DeadLetter,
    JobProgress,
    JobResult,
    JobSummary,
    Lease,
    QueueRef,
    Throughput,
)

if TYPE_CHECKING:
    from .redis_broker import RedisBroker

T = TypeVar("T")

# Listings of these states are newest first (the others soonest first).
_NEWEST_FIRST = {"completed", "dead"}


class PartitionedViews:
    count: int

    async def on(self, p: int, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def on_job(self, job_id: str, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def parts(self) -> list[RedisBroker]:
        raise NotImplementedError

    def _grouped(self, ids: Sequence[str]) -> dict[int, list[int]]:
        raise NotImplementedError

    async def _all(self, fn: Callable[[RedisBroker], Awaitable[T]]) -> list[T]:
        await self.parts()
        return list(await asyncio.gather(*(self.on(p, fn) for p in range(self.count))))

    # -- fleet-wide -------------------------------------------------------------
    async def stats(self) -> BrokerStats:
        total = BrokerStats()
        for part in await self._all(lambda b: b.stats()):
            for ref, depth in part.ready.items():
                total.ready[ref] = total.ready.get(ref, 0) + depth
            for priority, n in part.unrouted.items():
                total.unrouted[priority] = total.unrouted.get(priority, 0) + n
            for route, n in part.unrouted_routes.items():
                total.unrouted_routes[route] = total.unrouted_routes.get(route, 0) + n
            total.scheduled += part.scheduled
            total.active += part.active
            total.dead += part.dead
            total.completed += part.completed
        return total

    async def oldest_ready_age(self) -> dict[str, float]:
        ages: dict[str, float] = {}
        for part in await self._all(lambda b: b.oldest_ready_age()):
            for priority, age in part.items():
                ages[priority] = max(ages.get(priority, 0.0), age)
        return ages

    async def active_by_queue(self) -> dict[QueueRef, int]:
        counts: dict[QueueRef, int] = {}
        for part in await self._all(lambda b: b.active_by_queue()):
            for ref, n in part.items():
                counts[ref] = counts.get(ref, 0) + n
        return counts

    async def _list_jobs(
        self, state: JobState, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]:
        # Each partition's first offset+limit, merged: queued in turns (each
        # partition's next to run first), the others by time.
        parts = await self._all(lambda b: b._list_jobs(state, 0, offset + limit, job_type))
        if state is JobState.QUEUED:
            merged = [j for row in zip_longest(*parts) for j in row if j is not None]
        else:
            merged = sorted(
                chain.from_iterable(parts),
                key=lambda j: j.when_ms,
                reverse=state.value in _NEWEST_FIRST,
            )
        return merged[offset : offset + limit]

    async def _count_jobs(self, state: JobState, job_type: str | None) -> int:
        return sum(await self._all(lambda b: b._count_jobs(state, job_type)))

    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        parts = await self._all(lambda b: b.throughput(minutes))
        by_minute: dict[int, Throughput] = {}
        for rows in parts:
            for row in rows:
                seen = by_minute.setdefault(row.minute, Throughput(row.minute, 0, 0))
                seen.completed += row.completed
                seen.failed += row.failed
        newest = max(by_minute, default=0)
        return [
            by_minute.get(m, Throughput(m, 0, 0)) for m in range(newest - minutes + 1, newest + 1)
        ]

    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        parts = await self._all(lambda b: b.list_dead(0, offset + limit))
        merged = sorted(chain.from_iterable(parts), key=lambda d: d.died_at_ms, reverse=True)
        return merged[offset : offset + limit]

    # -- one job ----------------------------------------------------------------
    async def job_state(self, job_id: str) -> str | None:
        return await self.on_job(job_id, lambda b: b.job_state(job_id))

    async def get_dead_info(self, job_id: str) -> DeadInfo | None:
        return await self.on_job(job_id, lambda b: b.get_dead_info(job_id))

    async def job_lease(self, job_id: str) -> Lease | None:
        return await self.on_job(job_id, lambda b: b.job_lease(job_id))

    async def get_progress(self, job_id: str) -> JobProgress | None:
        return await self.on_job(job_id, lambda b: b.get_progress(job_id))

    async def _get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        await self.parts()
        groups = self._grouped(job_ids)

        async def one(p: int, rows: list[int]) -> list[JobResult | None]:
            ids = [job_ids[n] for n in rows]
            return await self.on(p, lambda b: b._get_results(ids))

        replies = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        out: list[JobResult | None] = [None] * len(job_ids)
        for rows, reply in zip(groups.values(), replies, strict=True):
            for n, result in zip(rows, reply, strict=True):
                out[n] = result
        return out

    async def delete_dead(self, job_id: str) -> bool:
        return await self.on_job(job_id, lambda b: b.delete_dead(job_id))

    async def _replay(self, job_id: str, record: bytes, priority: str, name: str) -> bool:
        return await self.on_job(job_id, lambda b: b._replay(job_id, record, priority, name))
