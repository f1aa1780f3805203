"""Concurrency limits on Redis Cluster (docs/control.md): the steps of
slots.py with each call routed, a bucket's to its partition
(partitions.partition_of_key), a job's to the job's; the usage view
gathered over every partition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..capabilities import SlotUsage
from .partitions import partition_of, partition_of_key
from .slots import RedisSlotCalls, SlotSteps

if TYPE_CHECKING:
    from .redis_broker import RedisBroker

T = TypeVar("T")


class PartitionedSlots(SlotSteps):
    count: int

    async def parts(self) -> list[RedisBroker]:
        raise NotImplementedError

    async def on(self, p: int, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _in_bucket(self, bucket: str, fn: Callable[[RedisSlotCalls], Awaitable[T]]) -> T:
        await self.parts()
        return await self.on(partition_of_key(bucket, self.count), fn)

    async def _in_jobs(
        self, ids: Sequence[str], fn: Callable[[RedisSlotCalls, list[int]], Awaitable[list[T]]]
    ) -> list[T]:
        await self.parts()
        groups: dict[int, list[int]] = {}
        for n, job_id in enumerate(ids):
            groups.setdefault(partition_of(job_id, self.count), []).append(n)

        async def one(p: int, rows: list[int]) -> list[T]:
            return await self.on(p, lambda b: fn(b, rows))

        replies = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        out: list[T | None] = [None] * len(ids)
        for rows, reply in zip(groups.values(), replies, strict=True):
            for n, value in zip(rows, reply, strict=True):
                out[n] = value
        return out  # type: ignore[return-value]

    async def slot_usage(self, limit: int = 200) -> list[SlotUsage]:
        parts = await self.parts()
        found = await asyncio.gather(
            *(self.on(p, lambda b: b._slot_usage(limit)) for p in range(len(parts)))
        )
        usage = [u for part in found for u in part]
        return sorted(usage, key=lambda u: (-u.running - u.waiting, u.bucket))[:limit]
