"""The Redis broker's worker path: every state change is one Lua script from
lua/ (scripts.py), sent through the batcher (batch.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from ...errors import BrokerError, CancelRequested
from ...job import now_iso, wire_durations
from ...keys import Keys
from ..base import Broker
from ..records import (
    THROUGHPUT_KEEP_S,
    DeadInfo,
    Delivery,
    NewJob,
    QueueRef,
)
from . import scripts
from .batch import ScriptBatcher
from .cancels import RedisCancels
from .connection import async_client, redis_errors, text, wrap
from .keyspace import KeyspaceWatch
from .progress import RedisProgress
from .rates import RedisRates
from .ready_index import INDEX_LIMIT, ReadyIndex, parse_member
from .redis_checks import RedisChecks
from .redis_inspect import RedisInspection
from .redis_registry import RedisRegistry
from .redis_results import RedisResults
from .redis_upkeep import RedisUpkeep
from .replicas import MinReplicas
from .script_loader import Call, LuaScript, load
from .slots import RedisSlots
from .sync import RedisSyncClient, enqueue_call, settle_enqueue
from .upkeep_scripts import Prefixes
from .wake import RedisWake
from .workflows import RedisWorkflows

# Queues whose key names are kept: a worker's own (priorities x job types)
# fit many times over; a caller naming ever new ones cannot grow it unbounded.
MAX_CACHED_QUEUES = 65_536


class RedisBroker(
    RedisWake,
    RedisCancels,
    RedisUpkeep,
    RedisInspection,
    RedisRegistry,
    RedisChecks,
    RedisProgress,
    RedisResults,
    RedisWorkflows,
    RedisSlots,
    RedisRates,
    Broker,
):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bananas",
        result_ttl: float = 86400.0,
        node: Any = None,
        sharded: bool = False,
        min_replicas: int = 0,
        min_replicas_timeout: float = 1.0,
    ) -> None:
        """`node`: a Redis Cluster partition's client to the primary that
        serves its slot (partitioned.py owns it and its sync side); None: a
        client of `url`, owned here. `min_replicas`: REDIS_MIN_REPLICAS."""
        self.url = url
        # Redis Cluster: result notifications on sharded channels (SPUBLISH /
        # SSUBSCRIBE on the partition's shard) instead of cluster-wide ones.
        self.sharded = sharded
        self._publish = "SPUBLISH" if sharded else "PUBLISH"
        self.keys = k = Keys(prefix)
        self.result_ttl = result_ttl
        self._ttl = str(max(1, int(result_ttl)))
        self._async: Any = node
        self._owns_client = node is None
        # REDIS_MIN_REPLICAS: a WAIT after every batch of script calls (replicas.py).
        self._replicas = MinReplicas.of(min_replicas, min_replicas_timeout, k.fence)
        self.sync = self._sync = RedisSyncClient(
            url, self.keys, replicas=self._replicas, result_ttl=result_ttl
        )
        # (ready list, marker) per queue: one entry per queue, not per order.
        self._queue_keys: dict[QueueRef, tuple[str, str]] = {}
        self._ready_index = ReadyIndex()
        self._batcher: ScriptBatcher | None = None
        self.keyspace = KeyspaceWatch()
        self._producer_checked = False  # permissions, probed on the first enqueue
        self._complete = load("complete")
        self._complete_shared = scripts.complete_shared(
            active=k.active,
            leases=k.leases,
            stalls=k.stalls,
            completed=k.completed,
            held=k.unique_held,
            ttl=self._ttl,
            throughput_prefix=k.throughput_prefix,
            throughput_keep=THROUGHPUT_KEEP_S,
            publish=self._publish,
            unique_prefix=k.unique_prefix,
        )
        self._prefixes = Prefixes(
            k.job_prefix, k.result_prefix, k.notify_prefix, k.ready_prefix, k.marker_prefix
        )

    # -- connections ------------------------------------------------------
    @property
    def redis(self) -> Any:
        if self._async is None:
            self._async = async_client(self.url)
        return self._async

    async def retarget(self, node: Any) -> None:
        """A cluster partition whose slot moved to another primary (a
        failover, a reshard): later calls go to `node`."""
        if node is self._async:
            return
        self._async = node
        await self._close_wake()
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
        self._ready_index.reset()

    async def ping(self) -> None:
        with redis_errors():
            await self.redis.ping()

    async def server_time(self) -> float:
        with redis_errors():
            seconds, micros = await self.redis.time()
        return int(seconds) + int(micros) / 1_000_000

    async def close(self) -> None:
        await self._close_wake()
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
        if self._async is not None and self._owns_client:
            await self._async.aclose()
            self._async = None
        self._sync.close()

    # -- script calls ---------------------------------------------------------
    def _script_batcher(self) -> ScriptBatcher:
        if self._batcher is None:
            self._batcher = ScriptBatcher(lambda: self.redis, self._call_one, wrap, self._replicas)
        return self._batcher

    async def _run(self, call: Call) -> Any:
        return await self._script_batcher().call(call.script, call.keys, call.args)

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """A script call by name (tests send malformed calls through it)."""
        return await self._script_batcher().call(load(name), keys, args)

    async def _call_one(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with redis_errors():
            try:
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server, or it restarted without its script cache.
                await self.redis.script_load(script.source)
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)

    # -- client -----------------------------------------------------------
    async def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        if not self._producer_checked:  # once per broker: a producer's start-up check
            await self.check_access("producer")
        # The batcher sends every batch in one write and reads the replies in order.
        calls = [enqueue_call(self.keys, batch) for batch in batches]
        sent = [self._run(call) for call in calls]
        replies = [await sent[0]] if len(sent) == 1 else await asyncio.gather(*sent)
        return settle_enqueue(batches, calls, replies)

    async def get_record(self, job_id: str) -> bytes | None:
        with redis_errors():
            value: bytes | None = await self.redis.get(self.keys.job(job_id))
        return value

    # -- worker -----------------------------------------------------------
    def _ready_keys(self, queues: Sequence[QueueRef]) -> list[tuple[str, str]]:
        cache = self._queue_keys
        try:
            return list(map(cache.__getitem__, queues))
        except KeyError:
            if len(cache) > MAX_CACHED_QUEUES:  # callers naming ever new queues
                cache.clear()
            for q in queues:
                if q not in cache:
                    cache[q] = (self.keys.ready(*q), self.keys.marker(*q))
            return [cache[q] for q in queues]

    async def dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        index = self._ready_index
        named = index.select(queues)
        reply = await self._dequeue(named, count, lease_seconds, token_prefix, start)
        if index.update(reply[0], reply[1]) and len(reply) == 2:
            # Nothing found while the index moved: the jobs may be in a list the
            # copy lacked. Nothing was leased, so the same token prefix is free.
            again, sent = index.select(queues), set(named)
            if any(q not in sent for q in again):
                reply = await self._dequeue(again, count, lease_seconds, token_prefix, start)
                index.update(reply[0], reply[1])
        return [
            Delivery(reply[i].decode(), reply[i + 1], reply[i + 2].decode())
            for i in range(2, len(reply), 3)
        ]

    async def _dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None,
    ) -> Any:
        call = self._dequeue_call(queues, count, lease_seconds, token_prefix, start)
        try:
            return await self._run(call)
        except BrokerError:
            self._ready_index.reset()  # it may be another primary's, or a lost keyspace's
            raise

    def _dequeue_call(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None,
    ) -> Call:
        k = self.keys
        # "<worker>:<seq>:" -> the worker's key of its last dequeue.
        caller = token_prefix.rstrip(":").rpartition(":")[0] or token_prefix
        return scripts.dequeue(
            active=k.active,
            leases=k.leases,
            last=k.dequeued(caller),
            index=k.nonempty,
            queue=self._ready_keys(queues),
            count=count,
            lease_ms=int(lease_seconds * 1000),
            token_prefix=token_prefix,
            job_prefix=k.job_prefix,
            start=count if start is None else start,
            version=self._ready_index.version,
            index_limit=INDEX_LIMIT,
            ready_prefix=k.ready_prefix,
        )

    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        markers = [marker for _, marker in self._ready_keys(queues)]
        try:
            with redis_errors():
                got = await self.redis.bzpopmin(markers, timeout=timeout)
        except BrokerError:
            self._ready_index.reset()
            raise
        if got is None:
            return False
        # The woken list is named by the next dequeue even if the copy lags.
        self._ready_index.woke(parse_member(text(got[0]).removeprefix(self.keys.marker_prefix)))
        return True

    async def _extend(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]:
        k = self.keys
        marked = [(i, token, "1" if i in started else "0") for i, token in leases]
        call = scripts.extend(
            active=k.active, leases=k.leases, lease_ms=int(lease_seconds * 1000), lease=marked
        )
        return [x.decode() for x in await self._run(call)]

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        if delivery.workflow is not None:  # a workflow member (workflows.py)
            return await self._complete_member(delivery, record, result, duration_ms)
        k = self.keys
        job_id = delivery.id
        item_keys, item_args = scripts.complete_job(
            k.job(job_id),
            k.result(job_id),
            job_id,
            delivery.token,
            record,
            now_iso(),
            *wire_durations(duration_ms),
            result if result is not None else b"",
            k.notify_channel(job_id),
        )
        shared_keys, shared_args = self._complete_shared
        done = await self._script_batcher().call_merged(
            self._complete, shared_keys, shared_args, item_keys, item_args
        )
        return bool(done)

    async def retry(self, delivery: Delivery, record: bytes, delay_seconds: float) -> bool:
        k = self.keys
        call = scripts.retry(
            active=k.active,
            leases=k.leases,
            record_key=k.job(delivery.id),
            scheduled=k.scheduled,
            cancels=k.cancels,
            id=delivery.id,
            token=delivery.token,
            record=record,
            delay=float(delay_seconds),
            throughput_prefix=k.throughput_prefix,
            throughput_keep=THROUGHPUT_KEEP_S,
        )
        done = await self._run(call)
        if done == 2:
            raise CancelRequested(f"job {delivery.id} was cancelled: not retried")
        return bool(done)

    async def _bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        k = self.keys
        job_id = delivery.id
        whole_ms, us = wire_durations(duration_ms)
        call = scripts.bury(
            active=k.active,
            leases=k.leases,
            **self._letter_keys(job_id),
            held=k.unique_held,
            id=job_id,
            token=delivery.token,
            record=record or b"",
            info=info.encode(),
            ttl=self._ttl,
            completed_at=info.failed_at,
            duration_ms=whole_ms,
            duration_us=us,
            error=info.result_error,
            notify=k.notify_channel(job_id),
            throughput_prefix=k.throughput_prefix,
            throughput_keep=THROUGHPUT_KEEP_S,
            publish=self._publish,
            unique_prefix=k.unique_prefix,
            wf=delivery.workflow or "",
            wf_context=k.wf_context(self._ttl, self._publish, info.failed_at)
            if delivery.workflow
            else "",
        )
        return bool(await self._run(call))

    async def _requeue(self, deliveries: Sequence[Delivery]) -> int:
        k = self.keys
        call = scripts.requeue(
            active=k.active,
            leases=k.leases,
            index=k.nonempty,
            ready_prefix=k.ready_prefix,
            marker_prefix=k.marker_prefix,
            lease=[(d.id, d.token) for d in deliveries],
        )
        return int(await self._run(call))


__all__ = ["RedisBroker"]
