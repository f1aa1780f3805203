"""Concurrency limits on Redis (docs/control.md): the typed wrappers of
lua/slot_*.lua and the steps of admit / release / heartbeat.

A bucket (its holders, waiters and where-to-resume) lives in one partition,
partitions.partition_of_key(bucket) on a cluster, so its scripts touch one
slot; a parked job stays in its own partition (parked in its scheduled set
with a safety re-check time). The steps therefore go in turns, bucket then
job partition, never in one script:

  admit    acquire (bucket) -> the jobs without a slot are parked (their
           partitions) -> acquire again with join (bucket): a slot freed in
           between is taken (the job is resumed at once), else the job is a
           waiter. Parking before joining means a waiter is always parked
           by the time a release can wake it.
  release  release (bucket) -> the waiters it handed a slot are resumed
           (their partitions). A waiter that was not parked any more (a
           cancel removed it) gives its reserved slot back: the next one is
           woken, a few rounds at most.
  extend   the heartbeat of the slots a worker holds, per bucket; it also
           wakes waiters onto slots that expired.

A crash between two steps loses at most a wake-up, and the parked job's
re-check (the soonest holder deadline, at most a lease) brings it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ...keys import Keys
from ..capabilities import ConcurrencyLimits, SlotJob, SlotUsage
from ..records import Delivery
from .connection import redis_errors
from .script_loader import Call
from .script_loader import call as _call
from .script_loader import flat as _flat

T = TypeVar("T")
WAKE_ROUNDS = 8  # releases of misses in a row before the re-checks take over


# -- wrappers (tests/test_broker_redis.py checks them against the headers) ----
def slot_acquire(
    *,
    buckets: str,
    holders: str,
    waiters: str,
    where: str,
    bucket: str,
    limit: int,
    lease_ms: int,
    join: str,
    job: Sequence[tuple[str, str, str]],
) -> Call:
    """job items: (id, token, member)."""
    return _call(
        "slot_acquire",
        [buckets, holders, waiters, where],
        [bucket, limit, lease_ms, join, *_flat(job)],
    )


def slot_release(
    *,
    buckets: str,
    holders: str,
    waiters: str,
    where: str,
    bucket: str,
    limit: int,
    lease_ms: int,
    job: Sequence[tuple[str, str]],
) -> Call:
    """job items: (id, token); token '' gives back a woken waiter's reservation."""
    return _call(
        "slot_release",
        [buckets, holders, waiters, where],
        [bucket, limit, lease_ms, *_flat(job)],
    )


def slot_extend(
    *,
    holders: str,
    waiters: str,
    where: str,
    limit: int,
    lease_ms: int,
    job: Sequence[tuple[str, str]],
) -> Call:
    """job items: (id, token)."""
    return _call("slot_extend", [holders, waiters, where], [limit, lease_ms, *_flat(job)])


def slot_park(
    *, active: str, leases: str, scheduled: str, recheck_ms: int, lease: Sequence[tuple[str, str]]
) -> Call:
    """lease items: (id, token)."""
    return _call("slot_park", [active, leases, scheduled], [recheck_ms, *_flat(lease)])


def slot_resume(*, scheduled: str, index: str, job: Sequence[tuple[str, str, str, str]]) -> Call:
    """job items: (ready, marker, id, member)."""
    keys = [scheduled, index]
    args: list[Any] = []
    for ready, marker, job_id, member in job:
        keys += (ready, marker)
        args += (job_id, member)
    return _call("slot_resume", keys, args)


# -- one partition's calls --------------------------------------------------------
Woken = tuple[str, int, str, str]  # (bucket, limit, id, member): a waiter handed a slot


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _woken(bucket: str, limit: int, flat: Sequence[Any]) -> list[Woken]:
    return [(bucket, limit, _text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]


class RedisSlotCalls:
    """A partition's slot scripts (mixed into RedisBroker)."""

    keys: Keys
    _run: Callable[[Call], Awaitable[Any]]

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    def _bucket_keys(self, bucket: str) -> dict[str, str]:
        k = self.keys
        return {
            "holders": k.slot_holders(bucket),
            "waiters": k.slot_waiters(bucket),
            "where": k.slot_where(bucket),
        }

    async def _slot_acquire(
        self,
        bucket: str,
        limit: int,
        lease_ms: int,
        join: bool,
        jobs: Sequence[tuple[str, str, str]],
    ) -> tuple[int, list[bool], list[Woken]]:
        call = slot_acquire(
            buckets=self.keys.slot_buckets,
            **self._bucket_keys(bucket),
            bucket=bucket,
            limit=limit,
            lease_ms=lease_ms,
            join="1" if join else "0",
            job=jobs,
        )
        recheck, flags, woken = await self._run(call)
        return int(recheck), [bool(int(f)) for f in flags], _woken(bucket, limit, woken)

    async def _slot_release(
        self, bucket: str, limit: int, lease_ms: int, holds: Sequence[tuple[str, str]]
    ) -> list[Woken]:
        call = slot_release(
            buckets=self.keys.slot_buckets,
            **self._bucket_keys(bucket),
            bucket=bucket,
            limit=limit,
            lease_ms=lease_ms,
            job=holds,
        )
        return _woken(bucket, limit, await self._run(call))

    async def _slot_extend(
        self, bucket: str, limit: int, lease_ms: int, holds: Sequence[tuple[str, str]]
    ) -> tuple[list[str], list[Woken]]:
        call = slot_extend(**self._bucket_keys(bucket), limit=limit, lease_ms=lease_ms, job=holds)
        lost, woken = await self._run(call)
        return [_text(x) for x in lost], _woken(bucket, limit, woken)

    async def _slot_park(self, recheck_ms: int, deliveries: Sequence[Delivery]) -> list[bool]:
        k = self.keys
        call = slot_park(
            active=k.active,
            leases=k.leases,
            scheduled=k.scheduled,
            recheck_ms=recheck_ms,
            lease=[(d.id, d.token) for d in deliveries],
        )
        return [bool(int(f)) for f in await self._run(call)]

    async def _slot_resume(self, woken: Sequence[Woken]) -> list[bool]:
        k = self.keys
        items = [
            (k.ready_prefix + member, k.marker_prefix + member, job_id, member)
            for _, _, job_id, member in woken
        ]
        call = slot_resume(scheduled=k.scheduled, index=k.nonempty, job=items)
        return [bool(int(f)) for f in await self._run(call)]

    async def _slot_usage(self, limit: int) -> list[SlotUsage]:
        k = self.keys
        with redis_errors():
            seconds, micros = await self.redis.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            found = await self.redis.hgetall(k.slot_buckets)
            buckets = sorted((_text(b), int(n)) for b, n in found.items())[: max(0, limit)]
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket, _ in buckets:
                    pipe.zcount(k.slot_holders(bucket), f"({now_ms}", "+inf")
                    pipe.zcard(k.slot_waiters(bucket))
                counts = await pipe.execute() if buckets else []
        return [
            SlotUsage(bucket, n, int(counts[2 * i]), int(counts[2 * i + 1]))
            for i, (bucket, n) in enumerate(buckets)
        ]


# -- the steps ------------------------------------------------------------------
class SlotSteps(ConcurrencyLimits):
    """admit / release / extend over the partitions' calls; where each call
    runs (`_in_bucket`, `_in_jobs`) is the broker's."""

    async def _in_bucket(self, bucket: str, fn: Callable[[RedisSlotCalls], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _in_jobs(
        self, ids: Sequence[str], fn: Callable[[RedisSlotCalls, list[int]], Awaitable[list[T]]]
    ) -> list[T]:
        """fn per partition with the positions of its ids; replies in id order."""
        raise NotImplementedError

    async def _admit(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[bool]:
        lease_ms = max(1, round(lease_seconds * 1000))
        groups = _by_bucket(jobs)
        ok = [False] * len(jobs)
        woken: list[Woken] = []

        async def take(rows: list[int], join: bool) -> tuple[int, list[bool], list[Woken]]:
            first = jobs[rows[0]]
            items = [_item(jobs[r]) for r in rows]
            return await self._in_bucket(
                first.bucket,
                lambda b: b._slot_acquire(first.bucket, first.limit, lease_ms, join, items),
            )

        firsts = await asyncio.gather(*(take(rows, False) for rows in groups))
        waiting: list[tuple[list[int], int]] = []
        for rows, (recheck, flags, wake) in zip(groups, firsts, strict=True):
            woken += wake
            for r, flag in zip(rows, flags, strict=True):
                ok[r] = flag
            full = [r for r, flag in zip(rows, flags, strict=True) if not flag]
            if full:
                waiting.append((full, recheck))
        if waiting:
            woken += await self._park_and_join(jobs, waiting, lease_ms)
        await self._resume(woken, lease_ms)
        return ok

    async def _park_and_join(
        self, jobs: Sequence[SlotJob], waiting: list[tuple[list[int], int]], lease_ms: int
    ) -> list[Woken]:
        """Park the jobs without a slot, then make them waiters: the ones a
        slot freed for in between come back as woken (to be resumed)."""

        async def park(rows: list[int], recheck: int) -> list[int]:
            ds = [jobs[r].delivery for r in rows]
            flags = await self._in_jobs(
                [d.id for d in ds], lambda b, idx: b._slot_park(recheck, [ds[i] for i in idx])
            )
            return [r for r, flag in zip(rows, flags, strict=True) if flag]

        parked = await asyncio.gather(*(park(rows, recheck) for rows, recheck in waiting))
        woken: list[Woken] = []

        async def join(rows: list[int]) -> list[Woken]:
            first = jobs[rows[0]]
            items = [_item(jobs[r]) for r in rows]
            _, flags, wake = await self._in_bucket(
                first.bucket,
                lambda b: b._slot_acquire(first.bucket, first.limit, lease_ms, True, items),
            )
            mine = [
                (first.bucket, first.limit, jobs[r].delivery.id, jobs[r].member)
                for r, flag in zip(rows, flags, strict=True)
                if flag
            ]
            return wake + mine

        for wake in await asyncio.gather(*(join(rows) for rows in parked if rows)):
            woken += wake
        return woken

    async def _release_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> None:
        lease_ms = max(1, round(lease_seconds * 1000))
        woken: list[Woken] = []
        for wake in await asyncio.gather(
            *(
                self._release_ids(jobs[rows[0]], [_hold(jobs[r]) for r in rows], lease_ms)
                for rows in _by_bucket(jobs)
            )
        ):
            woken += wake
        await self._resume(woken, lease_ms)

    async def _release_ids(
        self, job: SlotJob, holds: list[tuple[str, str]], lease_ms: int
    ) -> list[Woken]:
        return await self._in_bucket(
            job.bucket, lambda b: b._slot_release(job.bucket, job.limit, lease_ms, holds)
        )

    async def _extend_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[str]:
        lease_ms = max(1, round(lease_seconds * 1000))

        async def one(rows: list[int]) -> tuple[list[str], list[Woken]]:
            first = jobs[rows[0]]
            holds = [_hold(jobs[r]) for r in rows]
            return await self._in_bucket(
                first.bucket, lambda b: b._slot_extend(first.bucket, first.limit, lease_ms, holds)
            )

        lost: list[str] = []
        woken: list[Woken] = []
        for gone, wake in await asyncio.gather(*(one(rows) for rows in _by_bucket(jobs))):
            lost += gone
            woken += wake
        await self._resume(woken, lease_ms)
        return lost

    async def _resume(self, woken: list[Woken], lease_ms: int) -> None:
        """Resume the waiters handed a slot; a miss gives its slot back (and
        wakes the next waiter), for a few rounds."""
        for _ in range(WAKE_ROUNDS):
            if not woken:
                return
            ready = [w for w in woken if w[3]]
            flags = await self._resume_calls(ready) if ready else []
            missed = [w for w, flag in zip(ready, flags, strict=True) if not flag]
            missed += [w for w in woken if not w[3]]
            per_bucket: dict[str, list[Woken]] = {}
            for w in missed:
                per_bucket.setdefault(w[0], []).append(w)
            woken = []
            for group in per_bucket.values():
                woken += await self._give_back(group, lease_ms)

    async def _resume_calls(self, ready: list[Woken]) -> list[bool]:
        return await self._in_jobs(
            [w[2] for w in ready], lambda b, idx: b._slot_resume([ready[i] for i in idx])
        )

    async def _give_back(self, group: list[Woken], lease_ms: int) -> list[Woken]:
        """Release the reserved slots of waiters (of one bucket) not resumed."""
        bucket, limit = group[0][0], group[0][1]
        holds = [(w[2], "") for w in group]  # their reservations
        return await self._in_bucket(
            bucket, lambda b: b._slot_release(bucket, limit, lease_ms, holds)
        )


def _item(job: SlotJob) -> tuple[str, str, str]:
    return (job.delivery.id, job.delivery.token, job.member)


def _hold(job: SlotJob) -> tuple[str, str]:
    return (job.delivery.id, job.delivery.token)


def _by_bucket(jobs: Sequence[SlotJob]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for n, job in enumerate(jobs):
        groups.setdefault(job.bucket, []).append(n)
    return list(groups.values())


class RedisSlots(SlotSteps, RedisSlotCalls):
    """A standalone Redis: every call on this broker's keys."""

    async def _in_bucket(self, bucket: str, fn: Callable[[RedisSlotCalls], Awaitable[T]]) -> T:
        return await fn(self)

    async def _in_jobs(
        self, ids: Sequence[str], fn: Callable[[RedisSlotCalls, list[int]], Awaitable[list[T]]]
    ) -> list[T]:
        return await fn(self, list(range(len(ids))))

    async def slot_usage(self, limit: int = 200) -> list[SlotUsage]:
        found = await self._slot_usage(limit)
        return sorted(found, key=lambda u: (-u.running - u.waiting, u.bucket))
