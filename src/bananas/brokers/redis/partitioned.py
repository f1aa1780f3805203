"""The Redis Cluster broker: one RedisBroker per partition (partitions.py),
each talking to the primary that serves its slot (cluster.py), behind the
one Broker protocol.

Per job, a call goes to the job's partition alone (partitions.partition_of),
so the per-job cost is the standalone one. Fetching in turns over the
partitions is partitioned_fetch.py. Upkeep
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
from typing import TypeVar

from ...errors import (
    BrokerError,
    BrokerMoved,
    BrokerUnavailable,
    ConfigError,
)
from ...keys import Keys
from ..base import Broker
from ..records import CancelOutcome, DeadInfo, Delivery, JobResult, NewJob
from .cluster import ClusterTopology, key_slot, parse_cluster_url
from .cluster_wake import ClusterWaker
from .connection import redis_errors
from .keyspace import KeyspaceWatch
from .partitioned_fetch import PartitionedFetch
from .partitioned_fleet import PartitionedFleet
from .partitioned_slots import PartitionedSlots
from .partitioned_sync import PartitionedSyncClient
from .partitioned_views import PartitionedViews
from .partitions import (
    check_partitions,
    home_keys,
    partition_keys,
    partition_of,
    partitions_key,
)
from .rates import PartitionedRates
from .redis_broker import RedisBroker
from .unique_place import place
from .workflows import PartitionedWorkflows

T = TypeVar("T")

REDIRECT_WAIT_S = 15.0


def partitions_from_env() -> int | None:
    raw = os.environ.get("REDIS_PARTITIONS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"REDIS_PARTITIONS={raw!r} is not a whole number (allowed: 1 to 1024)"
        ) from None
    return check_partitions(value)


class PartitionedBroker(
    PartitionedWorkflows,
    PartitionedFetch,
    PartitionedFleet,
    PartitionedViews,
    PartitionedSlots,
    PartitionedRates,
    Broker,
):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bananas",
        result_ttl: float = 86400.0,
        partitions: int | None = None,
        min_replicas: int = 0,
        min_replicas_timeout: float = 1.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.result_ttl = result_ttl
        # REDIS_MIN_REPLICAS: each partition's writes wait for its primary's replicas.
        self.min_replicas = (min_replicas, min_replicas_timeout)
        configured = partitions or partitions_from_env()
        self.configured = None if configured is None else check_partitions(configured)
        self.cluster_url = parse_cluster_url(url)
        self.topology = ClusterTopology(self.cluster_url)
        self.home_keys = home_keys(prefix)
        self.home_slot = key_slot(self.home_keys.prefix)
        # Known once the keyspace's partition count is read (`agree`).
        self.count = 0
        self.part_keys: list[Keys] = []
        self.slots: list[int] = []
        self._parts: list[RedisBroker] | None = None
        self._home: RedisBroker | None = None
        self._setup = asyncio.Lock()
        self._waker = ClusterWaker()
        self._hot: set[int] = set()
        self._sweep_at = 0.0
        self._turn = 0
        # The last fetch: (token prefix, plan, order), sent the same if repeated.
        self._last_fetch: tuple[str, list[tuple[int, int, int]], list[int]] = ("", [], [])
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
                    with redis_errors():
                        primaries = len(self.topology.map.primaries())
                        stored = await self._home.redis.get(partitions_key(self.home_keys))
                        self.agree(stored, primaries)
                        if stored is None:
                            stored = await self._home.redis.set(
                                partitions_key(self.home_keys), self.count, nx=True, get=True
                            )
                            self.agree(stored, primaries)
                    made = [
                        await self._make(k, s)
                        for k, s in zip(self.part_keys, self.slots, strict=True)
                    ]
                    self._parts = made
        return self._parts

    async def _make(self, keys: Keys, slot: int) -> RedisBroker:
        node = await self.topology.client_for_slot(slot)
        return RedisBroker(
            self.url,
            prefix=keys.prefix,
            result_ttl=self.result_ttl,
            node=node,
            sharded=True,
            min_replicas=self.min_replicas[0],
            min_replicas_timeout=self.min_replicas[1],
        )

    def agree(self, stored: bytes | str | None, primaries: int) -> None:
        """Settle the partition count: the keyspace's once stored (refusing a
        REDIS_PARTITIONS that differs), else REDIS_PARTITIONS, else one per
        primary of the cluster now (the count is then fixed for the keyspace:
        plan for growth by setting it above the primaries of today)."""
        count = self.configured or max(1, primaries)
        if stored is not None:
            kept = int(stored)
            if self.configured is not None and kept != self.configured:
                raise ConfigError(
                    f"REDIS_PARTITIONS={self.configured} but this keyspace (prefix "
                    f"{self.prefix!r}) was created with {kept} partitions: the count cannot "
                    f"change under existing data (set REDIS_PARTITIONS={kept}, or use a new "
                    "BANANAS_PREFIX)"
                )
            count = kept
        if count != self.count:
            self.count = check_partitions(count)
            self.part_keys = partition_keys(self.prefix, self.count)
            self.slots = [key_slot(k.prefix) for k in self.part_keys]

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

    async def on_job(self, job_id: str, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        await self.parts()
        return await self.on(self.part_of(job_id), fn)

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

    async def close(self) -> None:
        await self._waker.close()
        for part in [*(self._parts or []), *([self._home] if self._home else [])]:
            await part.close()
        self._parts = self._home = None
        await self.topology.close()
        self.sync.close()

    # -- producer -----------------------------------------------------------------
    async def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        await self.parts()
        jobs = [job for batch in batches for job in batch]
        place(jobs, self.count)  # unique jobs: in their key's partition
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
        return await self.on_job(job_id, lambda b: b.get_result(job_id))

    async def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        return await self.on_job(job_id, lambda b: b._wait_result(job_id, timeout))

    async def get_record(self, job_id: str) -> bytes | None:
        return await self.on_job(job_id, lambda b: b.get_record(job_id))

    # -- consumer ---------------------------------------------------------------
    async def _extend(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]:
        await self.parts()
        groups = self._grouped([job_id for job_id, _ in leases])

        async def one(p: int, rows: list[int]) -> list[str]:
            part = [leases[n] for n in rows]
            return await self.on(p, lambda b: b._extend(part, lease_seconds, started))

        lost = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        return [job_id for part in lost for job_id in part]

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        return await self.on_job(
            delivery.id, lambda b: b.complete(delivery, record, result, duration_ms)
        )

    async def retry(self, delivery: Delivery, record: bytes, delay_seconds: float) -> bool:
        return await self.on_job(delivery.id, lambda b: b.retry(delivery, record, delay_seconds))

    async def _bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        return await self.on_job(
            delivery.id, lambda b: b._bury(delivery, record, info, duration_ms)
        )

    async def _settle_cancelled(
        self, delivery: Delivery, record: bytes | None, duration_ms: float
    ) -> bool:
        return await self.on_job(
            delivery.id, lambda b: b._settle_cancelled(delivery, record, duration_ms)
        )

    async def _cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        """One EXISTS per partition holding any of the jobs (all it costs
        while nobody cancels), in parallel."""
        await self.parts()
        groups = self._grouped(job_ids)

        async def one(p: int, rows: list[int]) -> list[str]:
            ids = [job_ids[n] for n in rows]
            return await self.on(p, lambda b: b._cancel_requests(ids))

        found = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        return [job_id for part in found for job_id in part]

    async def cancel(self, job_id: str) -> CancelOutcome:
        return await self.on_job(job_id, lambda b: b.cancel(job_id))

    async def _requeue(self, deliveries: Sequence[Delivery]) -> int:
        await self.parts()
        groups = self._grouped([d.id for d in deliveries])

        async def one(p: int, rows: list[int]) -> int:
            part = [deliveries[n] for n in rows]
            return await self.on(p, lambda b: b._requeue(part))

        counts = await asyncio.gather(*(one(p, rows) for p, rows in groups.items()))
        return sum(counts)

    async def set_progress(
        self, delivery: Delivery, fraction: float, message: str, attempt: int, ttl: float
    ) -> bool:
        return await self.on_job(
            delivery.id,
            lambda b: b.set_progress(delivery, fraction, message, attempt, ttl),
        )


__all__ = ["PartitionedBroker"]
