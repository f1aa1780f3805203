"""Fetching on Redis Cluster (a mixin of PartitionedBroker): which
partitions a fetch asks, in turns, and the idle wake-up over partitions.

A fetch asks the partitions known to hold work (the last fetch came back
full from them, or a wake-up named them) and any of them once per SWEEP_S,
one partition per MIN_SHARE jobs asked; when it comes back short the others
are asked one at a time for what is missing, never leasing more than asked.
A fetch sent again with the same token prefix (its reply was lost, or one
partition failed after it may have run) asks the same partitions in the same
order, so each hands back what it leased (dequeue.lua's record of the call).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ...errors import BrokerError, BrokerNotReached, BrokerUnavailable
from ..records import Delivery, QueueRef
from .cluster_wake import ClusterWaker

if TYPE_CHECKING:
    from .redis_broker import RedisBroker

T = TypeVar("T")

SWEEP_S = 1.0
MIN_SHARE = 64


def _never_sent(exc: BaseException) -> bool:
    """A call that failed before Redis could run it: its primary refused the
    connection (or never answered it). Anything else may have run."""
    return isinstance(exc, BrokerNotReached)


class PartitionedFetch:
    count: int
    _hot: set[int]
    _sweep_at: float
    _turn: int
    _waker: ClusterWaker
    # The last fetch: (token prefix, plan, order), sent the same if repeated.
    _last_fetch: tuple[str, list[tuple[int, int, int]], list[int]]

    async def parts(self) -> list[RedisBroker]:
        raise NotImplementedError

    async def on(self, p: int, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _retarget(self, force: bool = False) -> None:
        raise NotImplementedError

    # -- consumer -----------------------------------------------------------------
    def _fetch_plan(self, count: int, start: int | None) -> list[tuple[int, int, int]]:
        """(partition, jobs to ask, of which to start) for the first round of a
        fetch: the partitions known to hold work, in turns, at most one per
        MIN_SHARE jobs asked (a dequeue's fixed cost is then shared by many
        jobs), and any of them once per SWEEP_S (a partition filled while this
        worker was busy is found though no wake-up named it: the turns bring
        every partition into a sweep within a few seconds)."""
        n = self.count
        order = [(self._turn + i) % n for i in range(n)]
        self._turn = (self._turn + 1) % n
        now = time.monotonic()
        if now >= self._sweep_at:
            self._sweep_at = now + SWEEP_S
        else:
            order = [p for p in order if p in self._hot]
        k = min(len(order), max(1, count // MIN_SHARE))
        if not k:
            return []
        base, extra = divmod(count, k)
        left = count if start is None else start
        plan = []
        for i, p in enumerate(order[:k]):
            ask = base + (1 if i < extra else 0)
            begin = min(ask, left)
            left -= begin
            plan.append((p, ask, begin))
        return plan

    async def dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        await self.parts()
        if token_prefix == self._last_fetch[0]:
            # The same call again (its reply was lost, or a partition failed):
            # the same partitions in the same order, so each hands back what it
            # leased to this token prefix (dequeue.lua's record of the call).
            plan, order = self._last_fetch[1], self._last_fetch[2]
        else:
            order = [(self._turn + i) % self.count for i in range(self.count)]
            plan = self._fetch_plan(count, start)
            self._last_fetch = (token_prefix, plan, order)

        async def one(p: int, ask: int, begin: int, prefix: str = token_prefix) -> list[Delivery]:
            return await self.on(p, lambda b: b.dequeue(queues, ask, lease_seconds, prefix, begin))

        got = await asyncio.gather(*(one(*step) for step in plan), return_exceptions=True)
        out: list[Delivery] = []
        dry: set[int] = set()  # asked and found fewer than asked: empty now
        failed: BaseException | None = None
        for (p, ask, _), deliveries in zip(plan, got, strict=True):
            if isinstance(deliveries, BaseException):
                if not _never_sent(deliveries):
                    # It may have leased jobs: the caller sends the same call
                    # again, and every partition answers as above.
                    raise deliveries
                # A primary out of reach (a failover) runs nothing: the others'
                # jobs are returned and this partition is skipped.
                failed = failed or deliveries
                dry.add(p)
                continue
            (self._hot.add if len(deliveries) >= ask else dry.add)(p)
            out += deliveries
        # Short: the other partitions one at a time, in turns, each for all that
        # is missing (never more leased than asked for). Only a fetch that
        # outruns the work known pays these round trips.
        extra = 0
        for p in order:
            if len(out) >= count:
                break
            if p in dry:
                continue
            need = count - len(out)
            begin = need if start is None else max(0, min(need, start - len(out)))
            # A token prefix of its own: the same one again would read as the
            # first call repeated after a lost reply (dequeue.lua).
            extra += 1
            try:
                more = await one(p, need, begin, f"{token_prefix}r{extra}-")
            except BrokerError as exc:
                if not _never_sent(exc):
                    raise
                failed = failed or exc
                dry.add(p)
                continue
            (self._hot.add if len(more) >= need else dry.add)(p)
            out += more
        self._hot -= dry
        if not out and failed is not None:
            raise failed  # nothing leased anywhere: the fetch loop backs off
        return out

    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        parts = await self.parts()
        try:
            woken = await self._waker.wait(parts, queues, timeout)
        except BrokerUnavailable:
            await self._retarget(force=True)
            raise
        self._hot |= woken
        return bool(woken)
