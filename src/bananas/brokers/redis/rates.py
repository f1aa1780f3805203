"""Rate limits on Redis (docs/control.md, "Rate limits"): mixins of
RedisBroker (one keyspace) and PartitionedBroker (Redis Cluster).

A bucket is one string, its theoretical arrival time (lua/rate_admit.lua);
a parked job is a scheduled job whose record says it holds its slot
(lua/rate_park.lua) and, while it waits, a member of its type's
`throttled` set. On a cluster a bucket lives in partition
`partition_of_key(bucket id)` and a parked job in its own partition, so
each script touches one slot: admitting a batch is one call per bucket,
parking it one call per job's partition (pipelined by the script batcher).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import CancelRequested
from ...keys import Keys
from ...rates import RateUsage, bucket_id
from ..records import Delivery
from . import scripts
from .connection import redis_errors
from .partitions import partition_of_key
from .script_loader import Call

if TYPE_CHECKING:
    from .redis_broker import RedisBroker

T = TypeVar("T")


class RedisRates:
    keys: Keys
    redis: Any

    async def _run(self, call: Call) -> Any:
        raise NotImplementedError

    if TYPE_CHECKING:

        async def move_due(self, limit: int = 1000) -> int: ...

    async def rate_admit(self, bucket: str, interval: float, count: int) -> list[float]:
        call = scripts.rate_admit(
            bucket=self.keys.rate(bucket), interval_ms=interval * 1000, count=count
        )
        reply = await self._run(call)
        return [int(us) / 1e6 for us in reply[1:]]

    async def rate_park(
        self, delivery: Delivery, record: bytes, delay: float, throttled: str | None
    ) -> bool:
        k = self.keys
        call = scripts.rate_park(
            active=k.active,
            leases=k.leases,
            record_key=k.job(delivery.id),
            scheduled=k.scheduled,
            cancels=k.cancels,
            throttled=k.throttled(throttled or ""),
            id=delivery.id,
            token=delivery.token,
            record=record,
            delay=float(delay),
            waits=1 if throttled is not None else 0,
        )
        done = await self._run(call)
        if done == 2:
            raise CancelRequested(f"job {delivery.id} was cancelled: not parked")
        return bool(done)

    async def rate_wake(self, job_ids: Sequence[str]) -> int:
        return await self.move_due()

    async def declare_rate_limits(self, limits: Mapping[str, str | None]) -> None:
        key = self.keys.rate_limits
        limited = {name: text for name, text in limits.items() if text is not None}
        unlimited = [name for name, text in limits.items() if text is None]
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                if limited:
                    pipe.hset(key, mapping=limited)
                if unlimited:
                    pipe.hdel(key, *unlimited)
                await pipe.execute()

    async def declared_limits(self) -> dict[str, str]:
        with redis_errors():
            raw = await self.redis.hgetall(self.keys.rate_limits)
        return {_text(name): _text(text) for name, text in raw.items()}

    async def rate_reads(self, names: Sequence[str]) -> list[tuple[int, float]]:
        """(throttled now, seconds booked ahead in the type's own bucket) per
        type, in this keyspace."""
        if not names:
            return []
        k = self.keys
        with redis_errors():
            seconds, micros = await self.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zcount(k.throttled(name), f"({now_ms}", "+inf")
                    pipe.get(k.rate(bucket_id(name, None)))
                replies = await pipe.execute()
        out = []
        for n in range(len(names)):
            tat = replies[2 * n + 1]
            booked = max(0.0, float(tat) - now_ms) / 1000 if tat is not None else 0.0
            out.append((int(replies[2 * n]), booked))
        return out

    async def rate_usage(self) -> list[RateUsage]:
        limits = await self.declared_limits()
        names = sorted(limits)
        reads = await self.rate_reads(names)
        return [
            RateUsage(name, limits[name], throttled, booked)
            for name, (throttled, booked) in zip(names, reads, strict=True)
        ]


class PartitionedRates:
    count: int

    async def on(self, p: int, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def on_job(self, job_id: str, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def parts(self) -> list[RedisBroker]:
        raise NotImplementedError

    def part_of(self, job_id: str) -> int:
        raise NotImplementedError

    async def rate_admit(self, bucket: str, interval: float, count: int) -> list[float]:
        await self.parts()
        p = partition_of_key(bucket, self.count)
        return await self.on(p, lambda b: b.rate_admit(bucket, interval, count))

    async def rate_park(
        self, delivery: Delivery, record: bytes, delay: float, throttled: str | None
    ) -> bool:
        return await self.on_job(
            delivery.id, lambda b: b.rate_park(delivery, record, delay, throttled)
        )

    async def rate_wake(self, job_ids: Sequence[str]) -> int:
        await self.parts()
        wanted = sorted({self.part_of(job_id) for job_id in job_ids})
        # Not under the upkeep claim: moving due jobs is safe from any number of callers.
        moved = await asyncio.gather(*(self.on(p, lambda b: b.move_due()) for p in wanted))
        return sum(moved)

    async def declare_rate_limits(self, limits: Mapping[str, str | None]) -> None:
        await self.on(-1, lambda b: b.declare_rate_limits(limits))

    async def rate_usage(self) -> list[RateUsage]:
        limits = await self.on(-1, lambda b: b.declared_limits())
        names = sorted(limits)
        if not names:
            return []
        parts = await self.parts()
        reads = await asyncio.gather(
            *(self.on(p, lambda b: b.rate_reads(names)) for p in range(len(parts)))
        )
        usage = []
        for n, name in enumerate(names):
            throttled = sum(part[n][0] for part in reads)
            booked = max(part[n][1] for part in reads)  # only the bucket's partition has one
            usage.append(RateUsage(name, limits[name], throttled, booked))
        return usage


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
