"""The Redis Cluster broker: one RedisBroker per partition (partitions.py),
each talking to the primary that serves its slot (cluster.py), behind the
one Broker protocol.

Per job, a call goes to the job's partition alone (crc32 of the id), so the
per-job cost is the standalone one. A fetch asks the partitions known to
hold work (those a wake-up named, or whose last dequeue came back full) and
all of them once a second (SWEEP_S), splitting the free slots between them
in turns, so every partition is served and none twice as often. Upkeep
(recovery, due jobs) runs per partition under a claim (lua/claim.lua) that a
scheduler keeps while it lives, so concurrent schedulers share the
partitions and none is done twice per round.

A redirect (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, READONLY: the call was not
run) re-reads the slot map and sends the call again for up to
REDIRECT_WAIT_S; a lost connection re-reads the map and is raised as
BrokerUnavailable, which every caller already retries while its lease holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from ...errors import BrokerError, BrokerMoved, BrokerUnavailable, ConfigError
from ...keys import Keys
from ...vocabulary import PRIORITIES
from ..base import Broker
from ..records import KEEP_COMPLETED, DeadInfo, Delivery, JobResult, NewJob, QueueRef, Recovered
from . import scripts
from .cluster import ClusterTopology, key_slot, parse_cluster_url
from .cluster_wake import ClusterWaker
from .connection import redis_errors
from .keyspace import KeyspaceWatch
from .partitioned_sync import PartitionedSyncClient
from .partitioned_views import PartitionedViews
from .partitions import (
    DEFAULT_PARTITIONS,
    check_partitions,
    home_keys,
    partition_keys,
    partition_of,
    partitions_key,
    refuse_changed_count,
)
from .redis_broker import RedisBroker

T = TypeVar("T")

SWEEP_S = 1.0
MIN_SHARE = 16
REDIRECT_WAIT_S = 15.0
# A scheduler keeps a partition's upkeep while it comes back within this.
CLAIM_MS = 1500


def partitions_from_env() -> int:
    raw = os.environ.get("REDIS_PARTITIONS", "").strip()
    if not raw:
        return DEFAULT_PARTITIONS
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"REDIS_PARTITIONS={raw!r} is not a whole number (allowed: 1 to 1024)"
        ) from None
    return check_partitions(value)


class PartitionedBroker(PartitionedViews, Broker):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bananas",
        result_ttl: float = 86400.0,
        partitions: int | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.result_ttl = result_ttl
        self.count = check_partitions(partitions or partitions_from_env())
        self.cluster_url = parse_cluster_url(url)
        self.topology = ClusterTopology(self.cluster_url)
        self.part_keys = partition_keys(prefix, self.count)
        self.home_keys = home_keys(prefix)
        self.slots = [key_slot(k.prefix) for k in self.part_keys]
        self.home_slot = key_slot(self.home_keys.prefix)
        self._parts: list[RedisBroker] | None = None
        self._home: RedisBroker | None = None
        self._setup = asyncio.Lock()
        self._waker = ClusterWaker()
        self._hot: set[int] = set()
        self._sweep_at = 0.0
        self._turn = 0
        self._owner = uuid.uuid4().hex
        self.keyspace = KeyspaceWatch()  # the home keys' marker (registry)
        self.sync: PartitionedSyncClient = PartitionedSyncClient(self)

    # -- partitions -------------------------------------------------------------
    async def parts(self) -> list[RedisBroker]:
        if self._parts is None:
            async with self._setup:
                if self._parts is None:
                    await self.topology.refresh(force=True)
                    self._home = await self._make(self.home_keys, self.home_slot)
                    self._home.keyspace = self.keyspace
                    await self._check_count(self._home)
                    made = [
                        await self._make(k, s)
                        for k, s in zip(self.part_keys, self.slots, strict=True)
                    ]
                    self._parts = made
        return self._parts

    async def home(self) -> RedisBroker:
        await self.parts()
        assert self._home is not None
        return self._home

    async def _make(self, keys: Keys, slot: int) -> RedisBroker:
        node = await self.topology.client_for_slot(slot)
        return RedisBroker(self.url, prefix=keys.prefix, result_ttl=self.result_ttl, node=node)

    async def _check_count(self, home: RedisBroker) -> None:
        """The partition count is fixed for a keyspace: the first process
        stores it; one configured otherwise refuses to start."""
        key = partitions_key(self.home_keys)
        with redis_errors():
            stored = await home.redis.set(key, self.count, nx=True, get=True)
        refuse_changed_count(stored, self.count, self.prefix)

    async def _retarget(self, force: bool = False) -> None:
        await self.topology.refresh(force=force)
        for part, slot in zip(self._parts or [], self.slots, strict=False):
            node = self.topology.cached_client(slot)
            if node is not None:
                await part.retarget(node)
        if self._home is not None and (node := self.topology.cached_client(self.home_slot)):
            await self._home.retarget(node)
        self._waker.forget()

    async def on(self, p: int, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        """fn on partition p (-1: the home keys), following redirects."""
        parts = await self.parts()
        deadline = time.monotonic() + REDIRECT_WAIT_S
        pause = 0.005
        while True:
            part = self._home if p < 0 else parts[p]
            assert part is not None
            try:
                return await fn(part)
            except BrokerMoved:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.25)
                # No node may answer yet (an election): wait and ask again.
                with contextlib.suppress(BrokerUnavailable):
                    await self._retarget(force=True)
            except BrokerUnavailable:
                # A primary gone (a failover): the next call asks the map again.
                with contextlib.suppress(BrokerError):
                    await self._retarget(force=True)
                raise

    def part_of(self, job_id: str) -> int:
        return partition_of(job_id, self.count)

    def _grouped(self, ids: Sequence[str]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for n, job_id in enumerate(ids):
            groups.setdefault(self.part_of(job_id), []).append(n)
        return groups

    # -- connection ---------------------------------------------------------------
    async def ping(self) -> None:
        """Every primary: a worker is not ready while a partition is out of reach."""
        parts = await self.parts()
        await asyncio.gather(*(self.on(p, lambda b: b.ping()) for p in range(len(parts))))

    async def check_access(self, role: str) -> None:
        await self.on(-1, lambda b: b.check_access(role))
        if role == "worker":
            await self._refuse_sdk_lists()

    async def _refuse_sdk_lists(self) -> None:
        """SDK clients push onto lists without a hash tag (docs/wire-format.md),
        which a cluster cannot route crash-safely into a partition (a move
        across slots is not atomic): refuse at start, while they hold work."""
        plain = Keys(self.prefix)
        lists = [plain.plain_queue(p) for p in PRIORITIES]
        for key in lists:
            client = await self.topology.client_for_slot(key_slot(key))
            with redis_errors():
                depth = int(await client.llen(key))
            if depth:
                raise ConfigError(
                    f"Redis Cluster: the SDK list {key} holds {depth} job(s), and Bananas on a "
                    "cluster does not read SDK-format lists (docs/deployment.md, Redis Cluster): "
                    "drain them with a worker on a standalone Redis, or enqueue with Bananas"
                )

    async def server_time(self) -> float:
        return await self.on(-1, lambda b: b.server_time())

    async def durability_warnings(self) -> list[str]:
        return await self.on(-1, lambda b: b.durability_warnings())

    async def close(self) -> None:
        await self._waker.close()
        for part in [*(self._parts or []), *([self._home] if self._home else [])]:
            await part.close()
        self._parts = self._home = None
        await self.topology.close()
        self.sync.close()

    # -- producer -----------------------------------------------------------------
    async def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        jobs = [job for batch in batches for job in batch]
        groups = self._grouped([job.id for job in jobs])

        async def one(p: int, rows: list[int]) -> list[bool]:
            return await self.on(p, lambda b: b._enqueue([[jobs[n] for n in rows]]))

        replies = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        out = [False] * len(jobs)
        for rows, reply in zip(groups.values(), replies, strict=True):
            for n, ok in zip(rows, reply, strict=True):
                out[n] = ok
        return out

    async def get_result(self, job_id: str) -> JobResult | None:
        return await self.on(self.part_of(job_id), lambda b: b.get_result(job_id))

    async def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        return await self.on(self.part_of(job_id), lambda b: b._wait_result(job_id, timeout))

    async def get_record(self, job_id: str) -> bytes | None:
        return await self.on(self.part_of(job_id), lambda b: b.get_record(job_id))

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
        plan = self._fetch_plan(count, start)

        async def one(p: int, ask: int, begin: int, prefix: str = token_prefix) -> list[Delivery]:
            return await self.on(p, lambda b: b.dequeue(queues, ask, lease_seconds, prefix, begin))

        got = await asyncio.gather(*(one(*step) for step in plan))
        out: list[Delivery] = []
        dry: set[int] = set()  # asked and found fewer than asked: empty now
        for (p, ask, _), deliveries in zip(plan, got, strict=True):
            (self._hot.add if len(deliveries) >= ask else dry.add)(p)
            out += deliveries
        # Short: the other partitions one at a time, in turns, each for all that
        # is missing (never more leased than asked for). Only a fetch that
        # outruns the work known pays these round trips.
        extra = 0
        for p in [(self._turn + i) % self.count for i in range(self.count)]:
            if len(out) >= count:
                break
            if p in dry:
                continue
            need = count - len(out)
            begin = need if start is None else max(0, min(need, start - len(out)))
            # A token prefix of its own: the same one again would read as the
            # first call repeated after a lost reply (dequeue.lua).
            extra += 1
            more = await one(p, need, begin, f"{token_prefix}r{extra}-")
            (self._hot.add if len(more) >= need else dry.add)(p)
            out += more
        self._hot -= dry
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

    async def _extend(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]:
        groups = self._grouped([job_id for job_id, _ in leases])

        async def one(p: int, rows: list[int]) -> list[str]:
            part = [leases[n] for n in rows]
            return await self.on(p, lambda b: b._extend(part, lease_seconds, started))

        lost = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        return [job_id for part in lost for job_id in part]

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        return await self.on(
            self.part_of(delivery.id), lambda b: b.complete(delivery, record, result, duration_ms)
        )

    async def retry(self, delivery: Delivery, record: bytes, delay_seconds: float) -> bool:
        return await self.on(
            self.part_of(delivery.id), lambda b: b.retry(delivery, record, delay_seconds)
        )

    async def _bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        return await self.on(
            self.part_of(delivery.id), lambda b: b._bury(delivery, record, info, duration_ms)
        )

    async def _requeue(self, deliveries: Sequence[Delivery]) -> int:
        groups = self._grouped([d.id for d in deliveries])

        async def one(p: int, rows: list[int]) -> int:
            part = [deliveries[n] for n in rows]
            return await self.on(p, lambda b: b._requeue(part))

        counts = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        return sum(counts)

    async def set_progress(
        self, delivery: Delivery, fraction: float, message: str, attempt: int, ttl: float
    ) -> bool:
        return await self.on(
            self.part_of(delivery.id),
            lambda b: b.set_progress(delivery, fraction, message, attempt, ttl),
        )

    # -- upkeep -------------------------------------------------------------------
    async def _claimed(self, p: int, kind: str) -> bool:
        k = self.part_keys[p]
        call = scripts.claim(claim=f"{k.prefix}:upkeep:{kind}", owner=self._owner, ms=CLAIM_MS)
        return bool(await self.on(p, lambda b: b._run(call)))

    async def _each_claimed(self, kind: str, fn: Callable[[RedisBroker], Awaitable[T]]) -> list[T]:
        await self.parts()

        async def one(p: int) -> list[T]:
            if not await self._claimed(p, kind):
                return []
            return [await self.on(p, fn)]

        done = await asyncio.gather(*(one(p) for p in range(self.count)))
        return [x for part in done for x in part]

    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        reports = await self._each_claimed(
            "recover", lambda b: b.recover(max_stalls, limit, KEEP_COMPLETED)
        )
        return Recovered(
            [i for r in reports for i in r.recovered], [i for r in reports for i in r.buried]
        )

    async def move_due(self, limit: int = 1000) -> int:
        return sum(await self._each_claimed("due", lambda b: b.move_due(limit)))

    # -- registry (the home keys) ------------------------------------------------
    async def _heartbeat(self, worker_id: str, entry: bytes) -> None:
        await self.on(-1, lambda b: b._heartbeat(worker_id, entry))

    async def heartbeat_worker(self, info: Any) -> None:
        await self.on(-1, lambda b: b.heartbeat_worker(info))

    async def remove_worker(self, worker_id: str) -> None:
        await self.on(-1, lambda b: b.remove_worker(worker_id))

    async def _live_workers(self, expiry: float) -> list[tuple[str, bytes, float]]:
        return await self.on(-1, lambda b: b._live_workers(expiry))


__all__ = ["PartitionedBroker"]
