"""The Redis broker: every state change is one Lua script from lua/."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis as redis_sync
import redis.asyncio as redis_async
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import BrokerError, BrokerUnavailable
from ..job import created_at, now_iso
from ..keys import PRIORITIES, PRIORITY_RANK, Keys
from . import lua_scripts
from .base import (
    Broker,
    BrokerStats,
    DeadInfo,
    DeadLetter,
    Delivery,
    JobResult,
    JobSummary,
    NewJob,
    QueueRef,
    Recovered,
    Throughput,
    check_state,
)
from .lua_scripts import LuaScript
from .redis_batch import ScriptBatcher

# Enqueue batches are split so that one script never holds Redis for long.
ENQUEUE_CHUNK = 500
# Size of the recent-completions index the dashboard pages through.
KEEP_COMPLETED = 100_000
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def _wrap(exc: Exception) -> BrokerError:
    if isinstance(exc, _UNAVAILABLE):
        return BrokerUnavailable(f"Redis unreachable: {exc}")
    return BrokerError(f"Redis error: {exc}")


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)


class RedisBroker(Broker):
    def __init__(self, url: str, *, prefix: str = "bananas", result_ttl: float = 86400.0) -> None:
        self.url = url
        self.keys = Keys(prefix)
        self.result_ttl = result_ttl
        self._ttl = str(max(1, int(result_ttl)))
        # Typed as Any: redis-py's stubs model decode_responses as bytes | str
        # everywhere; with decode_responses=False every reply here is bytes.
        self._async: Any = None
        self._sync_client: Any = None
        self._scripts = {name: lua_scripts.load(name) for name in lua_scripts.SCRIPT_NAMES}
        self._ready_cache: dict[tuple[QueueRef, ...], list[str]] = {}
        self._batcher: ScriptBatcher | None = None
        self._local = threading.local()

    # -- connections ------------------------------------------------------
    @property
    def redis(self) -> Any:
        if self._async is None:
            self._async = redis_async.Redis.from_url(
                self.url,
                socket_connect_timeout=5,
                socket_keepalive=True,
                health_check_interval=30,
                retry=_retry(),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
            )
        return self._async

    def _sync(self) -> Any:
        if self._sync_client is None:
            self._sync_client = redis_sync.Redis.from_url(
                self.url,
                socket_connect_timeout=5,
                socket_keepalive=True,
                health_check_interval=30,
                retry=_retry(),
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
            )
        return self._sync_client

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    async def close(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None
            self._batcher = None
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None
        held = getattr(self._local, "conn", None)
        if held is not None:
            held.disconnect()
            self._local.conn = None

    async def durability_warnings(self) -> list[str]:
        try:
            info = await self.server_info()
        except BrokerError:
            return ["could not read Redis' persistence settings (CONFIG GET is refused here?)"]
        warnings = []
        if info.get("appendonly") != "yes":
            warnings.append(
                "Redis runs without appendonly yes: acknowledged enqueues can be "
                "lost if Redis crashes (production: appendonly yes, appendfsync "
                "everysec)"
            )
        if info.get("maxmemory-policy") != "noeviction":
            warnings.append(
                f"Redis maxmemory-policy is {info.get('maxmemory-policy')!r}: "
                "under memory pressure it may evict job keys (production: noeviction)"
            )
        return warnings

    async def server_info(self) -> dict[str, Any]:
        """Persistence settings, for the start-up durability warning."""
        try:
            cfg: dict[Any, Any] = {}
            for name in ("appendonly", "maxmemory-policy", "appendfsync"):
                cfg.update(await self.redis.config_get(name))
            info = await self.redis.info("server")
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        out = {_s(k): _s(v) for k, v in cfg.items()}
        out["redis_version"] = str(info.get("redis_version", ""))
        return out

    # -- script calls ---------------------------------------------------------
    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self._batcher is None:
            self._batcher = ScriptBatcher(lambda: self.redis, self._call_one, _wrap)
        return await self._batcher.call(self._scripts[name], keys, args)

    async def _call_one(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            try:
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server, or it restarted without its script cache.
                await self.redis.script_load(script.source)
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    def _call_sync(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        fast = self._held_connection()
        if fast is not None:
            try:
                fast.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return fast.read_response()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                # The held connection broke: drop it; the pooled path below retries.
                fast.disconnect()
                self._local.conn = None
            except NoScriptError:
                pass  # loaded below
            except RedisError as exc:
                raise _wrap(exc) from exc
        client = self._sync()
        try:
            try:
                return client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                client.script_load(script.source)
                return client.evalsha(script.sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    def _held_connection(self) -> Any:
        """This thread's own connection for single sync calls.

        redis-py's pool costs tens of microseconds per checkout; a web thread
        enqueueing one job per request pays it on every call. Holding one
        connection per thread (never shared, dropped after a fork or an
        error) halves the cost of `fn.enqueue()`."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        try:
            conn = self._sync().connection_pool.make_connection()
            conn.connect()
        except (RedisError, OSError):
            return None
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    # -- client -----------------------------------------------------------
    def _enqueue_chunks(self, jobs: Sequence[NewJob]) -> list[tuple[list[str], list[Any]]]:
        k = self.keys
        chunks = []
        for start in range(0, len(jobs), ENQUEUE_CHUNK):
            keys: list[str] = [k.queues, k.scheduled]
            args: list[Any] = []
            for job in jobs[start : start + ENQUEUE_CHUNK]:
                keys += [
                    k.job(job.id),
                    k.ready(job.priority, job.name),
                    k.marker(job.priority, job.name),
                ]
                args += [
                    job.id,
                    job.record,
                    "" if job.due is None else repr(job.due),
                    f"{job.priority}:{job.name}",
                ]
            chunks.append((keys, args))
        return chunks

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        chunks = self._enqueue_chunks(jobs)
        if len(chunks) == 1:
            return [bool(x) for x in await self._call("enqueue", *chunks[0])]
        script = self._scripts["enqueue"]
        await self._ensure_loaded("enqueue")
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys, args in chunks:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return [bool(x) for reply in replies for x in reply]

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[bool]:
        chunks = self._enqueue_chunks(jobs)
        if len(chunks) == 1:
            return [bool(x) for x in self._call_sync("enqueue", *chunks[0])]
        script = self._scripts["enqueue"]
        client = self._sync()
        try:
            client.script_load(script.source)
            with client.pipeline(transaction=False) as pipe:
                for keys, args in chunks:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return [bool(x) for reply in replies for x in reply]

    async def _ensure_loaded(self, name: str) -> None:
        try:
            await self.redis.script_load(self._scripts[name].source)
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    async def get_result(self, job_id: str) -> JobResult | None:
        try:
            data = await self.redis.hgetall(self.keys.result(job_id))
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return _parse_result(data)

    def get_result_sync(self, job_id: str) -> JobResult | None:
        try:
            data = self._sync().hgetall(self.keys.result(job_id))
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return _parse_result(data)

    async def wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        found = await self.get_result(job_id)
        if found is not None or timeout <= 0:
            return found
        deadline = time.monotonic() + timeout
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.keys.notify_channel(job_id))
            # Checked again after subscribing: the job may have finished in between.
            while (found := await self.get_result(job_id)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                await pubsub.get_message(timeout=min(remaining, 1.0))
            return found
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        finally:
            await pubsub.aclose()

    def wait_result_sync(self, job_id: str, timeout: float) -> JobResult | None:
        found = self.get_result_sync(job_id)
        if found is not None or timeout <= 0:
            return found
        deadline = time.monotonic() + timeout
        pubsub = self._sync().pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.keys.notify_channel(job_id))
            while (found := self.get_result_sync(job_id)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                pubsub.get_message(timeout=min(remaining, 1.0))
            return found
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        finally:
            pubsub.close()

    async def get_record(self, job_id: str) -> bytes | None:
        try:
            value: bytes | None = await self.redis.get(self.keys.job(job_id))
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return value

    # -- worker -----------------------------------------------------------
    async def register_types(self, names: Sequence[str]) -> None:
        if not names:
            return
        now = str(int(time.time() * 1000))
        try:
            await self.redis.hset(self.keys.types, mapping=dict.fromkeys(names, now))
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    def _ready_keys(self, queues: Sequence[QueueRef]) -> list[str]:
        key = tuple(queues)
        cached = self._ready_cache.get(key)
        if cached is None:
            cached = []
            for priority, name in queues:
                cached += [self.keys.ready(priority, name), self.keys.marker(priority, name)]
            if len(self._ready_cache) > 4096:
                self._ready_cache.clear()
            self._ready_cache[key] = cached
        return cached

    async def dequeue(
        self, queues: Sequence[QueueRef], count: int, lease_seconds: float, token_prefix: str
    ) -> list[Delivery]:
        k = self.keys
        deadline = int((time.time() + lease_seconds) * 1000)
        keys = [k.active, k.lease_tokens, k.lease_queues, *self._ready_keys(queues)]
        reply = await self._call("dequeue", keys, [count, deadline, token_prefix, k.job_prefix])
        return [
            Delivery(reply[i].decode(), reply[i + 1], reply[i + 2].decode())
            for i in range(0, len(reply), 3)
        ]

    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        markers = self._ready_keys(queues)[1::2]
        try:
            got = await self.redis.bzpopmin(markers, timeout=timeout)
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return got is not None

    async def extend_leases(
        self, leases: Sequence[tuple[str, str]], lease_seconds: float
    ) -> list[str]:
        if not leases:
            return []
        deadline = int((time.time() + lease_seconds) * 1000)
        args: list[Any] = [deadline]
        for job_id, token in leases:
            args += [job_id, token]
        lost = await self._call("extend", [self.keys.active, self.keys.lease_tokens], args)
        return [x.decode() for x in lost]

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        k = self.keys
        job_id = delivery.id
        now = time.time()
        keys = [
            k.active,
            k.lease_tokens,
            k.lease_queues,
            k.stalls,
            k.job(job_id),
            k.result(job_id),
            k.completed,
            k.throughput(int(now // 60)),
        ]
        args = [
            job_id,
            delivery.token,
            record,
            self._ttl,
            now_iso(),
            f"{duration_ms:.3f}",
            result if result is not None else b"",
            k.notify_channel(job_id),
            int(now * 1000),
            KEEP_COMPLETED,
        ]
        return bool(await self._call("complete", keys, args))

    async def retry(self, delivery: Delivery, record: bytes, due: float) -> bool:
        k = self.keys
        keys = [
            k.active,
            k.lease_tokens,
            k.lease_queues,
            k.job(delivery.id),
            k.scheduled,
            k.throughput(int(time.time() // 60)),
        ]
        return bool(
            await self._call("retry", keys, [delivery.id, delivery.token, record, repr(due)])
        )

    async def bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        k = self.keys
        job_id = delivery.id
        if not info.failed_at:
            info.failed_at = now_iso()
        keys = [
            k.active,
            k.lease_tokens,
            k.lease_queues,
            k.stalls,
            k.job(job_id),
            k.result(job_id),
            k.dead,
            k.dead_info,
            k.throughput(int(time.time() // 60)),
        ]
        args = [
            job_id,
            delivery.token,
            record or b"",
            info.encode(),
            int(time.time() * 1000),
            self._ttl,
            info.failed_at,
            f"{duration_ms:.3f}",
            info.error or info.reason,
            k.notify_channel(job_id),
        ]
        return bool(await self._call("bury", keys, args))

    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        k = self.keys
        args: list[Any] = [k.ready_prefix, k.marker_prefix]
        for d in deliveries:
            args += [d.id, d.token]
        return int(await self._call("requeue", [k.active, k.lease_tokens, k.lease_queues], args))

    def _route_args(self) -> list[Any]:
        k = self.keys
        return [
            int(time.time() * 1000),
            now_iso(),
            self._ttl,
            k.job_prefix,
            k.result_prefix,
            k.notify_prefix,
            k.ready_prefix,
            k.marker_prefix,
        ]

    async def _route_plain(self, priority: str, limit: int = 1000) -> tuple[int, bool]:
        k = self.keys
        keys = [
            k.routing(priority),
            k.plain_queue(priority),
            k.types,
            k.queues,
            k.dead,
            k.dead_info,
        ]
        routed, buried, more = await self._call(
            "route_plain", keys, [priority, limit, *self._route_args()]
        )
        return int(routed) + int(buried), bool(more)

    async def pump_foreign(self, priority: str, timeout: float) -> int:
        total, more = await self._route_plain(priority)
        while more:
            n, more = await self._route_plain(priority)
            total += n
        if total:
            return total
        try:
            moved = await self.redis.blmove(
                self.keys.plain_queue(priority),
                self.keys.routing(priority),
                timeout,
                "RIGHT",
                "LEFT",
            )
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        if moved is None:
            return 0
        total, more = await self._route_plain(priority)
        while more:
            n, more = await self._route_plain(priority)
            total += n
        return total

    # -- scheduler / recovery ---------------------------------------------
    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        k = self.keys
        keys = [k.active, k.lease_tokens, k.lease_queues, k.stalls, k.dead, k.dead_info, k.queues]
        now_ms = int(time.time() * 1000)
        args = [
            now_ms,
            max_stalls,
            limit,
            now_iso(),
            self._ttl,
            k.job_prefix,
            k.result_prefix,
            k.notify_prefix,
            k.ready_prefix,
            k.marker_prefix,
        ]
        recovered, buried = await self._call("recover", keys, args)
        return Recovered([x.decode() for x in recovered], [x.decode() for x in buried])

    async def move_due(self, limit: int = 1000) -> int:
        k = self.keys
        keys = [k.scheduled, k.queues, k.dead, k.dead_info]
        total = 0
        while True:
            moved, buried, more = await self._call(
                "move_due", keys, [repr(time.time()), limit, *self._route_args()]
            )
            total += int(moved) + int(buried)
            if not more:
                return total

    # -- inspection and admin ---------------------------------------------
    async def stats(self) -> BrokerStats:
        k = self.keys
        try:
            members = sorted(m.decode() for m in await self.redis.smembers(k.queues))
            async with self.redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.llen(f"{k.ready_prefix}{member}")
                for priority in PRIORITIES:
                    pipe.llen(k.plain_queue(priority))
                pipe.zcard(k.scheduled)
                pipe.zcard(k.active)
                pipe.zcard(k.dead)
                pipe.zcard(k.completed)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        stats = BrokerStats()
        for member, depth in zip(members, replies, strict=False):
            priority, _, name = member.partition(":")
            stats.ready[(priority, name)] = int(depth)
        rest = replies[len(members) :]
        stats.unrouted = {p: int(n) for p, n in zip(PRIORITIES, rest[:3], strict=True)}
        stats.scheduled, stats.active, stats.dead, stats.completed = (int(x) for x in rest[3:7])
        return stats

    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        k = self.keys
        try:
            entries = await self.redis.zrevrange(
                k.dead, offset, offset + limit - 1, withscores=True
            )
            if not entries:
                return []
            ids = [e[0].decode() for e in entries]
            infos = await self.redis.hmget(k.dead_info, ids)
            records = await self.redis.mget([k.job(i) for i in ids])
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return [
            DeadLetter(job_id, int(score), DeadInfo.decode(info), record)
            for (job_id, (_, score), info, record) in zip(ids, entries, infos, records, strict=True)
        ]

    async def delete_dead(self, job_id: str) -> bool:
        k = self.keys
        keys = [k.dead, k.dead_info, k.stalls, k.job(job_id), k.result(job_id)]
        return bool(await self._call("delete_dead", keys, [job_id]))

    async def _replay(self, job_id: str, record: bytes, priority: str, name: str) -> bool:
        k = self.keys
        keys = [
            k.dead,
            k.dead_info,
            k.stalls,
            k.job(job_id),
            k.result(job_id),
            k.ready(priority, name),
            k.marker(priority, name),
            k.queues,
        ]
        return bool(await self._call("replay", keys, [job_id, record, f"{priority}:{name}"]))

    # -- worker registry ----------------------------------------------------
    async def heartbeat_worker(self, worker_id: str, info: dict[str, Any]) -> None:
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(k.workers, worker_id, orjson.dumps(info))
                pipe.zadd(k.workers_seen, {worker_id: int(time.time() * 1000)})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    async def remove_worker(self, worker_id: str) -> None:
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(k.workers, worker_id)
                pipe.zrem(k.workers_seen, worker_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    async def list_workers(self, expiry: float) -> list[dict[str, Any]]:
        k = self.keys
        cutoff = int((time.time() - expiry) * 1000)
        reply = await self._call("prune_workers", [k.workers, k.workers_seen], [cutoff])
        out = []
        for i in range(0, len(reply), 3):
            try:
                entry = orjson.loads(reply[i + 1])
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entry.setdefault("id", reply[i].decode())
                entry["last_seen"] = int(reply[i + 2]) / 1000
                out.append(entry)
        return out

    # -- inspection ---------------------------------------------------------
    async def _members(self) -> list[str]:
        try:
            return sorted(
                (m.decode() for m in await self.redis.smembers(self.keys.queues)),
                key=lambda m: (PRIORITY_RANK.get(m.partition(":")[0], 9), m),
            )
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    async def oldest_ready_age(self) -> dict[str, float]:
        k = self.keys
        members = await self._members()
        lists = [(m.partition(":")[0], f"{k.ready_prefix}{m}") for m in members]
        lists += [(p, k.plain_queue(p)) for p in PRIORITIES]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, key in lists:
                    pipe.lindex(key, -1)
                heads = await pipe.execute()
            wanted = [(p, h.decode()) for (p, _), h in zip(lists, heads, strict=True) if h]
            records = await self.redis.mget([k.job(i) for _, i in wanted]) if wanted else []
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        ages = dict.fromkeys(PRIORITIES, 0.0)
        now = time.time()
        for (priority, _), raw in zip(wanted, records, strict=True):
            created = created_at(raw)
            if created is not None:
                ages[priority] = max(ages.get(priority, 0.0), now - created)
        return ages

    async def active_by_queue(self) -> dict[QueueRef, int]:
        try:
            queues = await self.redis.hvals(self.keys.lease_queues)
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        counts: dict[QueueRef, int] = {}
        cut = len(self.keys.ready_prefix)
        for raw in queues:
            priority, _, name = raw.decode()[cut:].partition(":")
            counts[(priority, name)] = counts.get((priority, name), 0) + 1
        return counts

    async def get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        if not job_ids:
            return []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hgetall(self.keys.result(job_id))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return [_parse_result(data) for data in replies]

    async def list_jobs(
        self, state: str, offset: int = 0, limit: int = 50, job_type: str | None = None
    ) -> list[JobSummary]:
        check_state(state)
        if state == "queued":
            entries = await self._queued(offset, limit, job_type)
        else:
            entries = await self._indexed(state, offset, limit, job_type)
        return entries

    async def _queued(self, offset: int, limit: int, job_type: str | None) -> list[JobSummary]:
        k = self.keys
        lists: list[tuple[str, str, str]] = []
        for member in await self._members():
            priority, _, name = member.partition(":")
            if job_type is None or name == job_type:
                lists.append((priority, name, f"{k.ready_prefix}{member}"))
        if job_type is None:
            lists += [(p, "", k.plain_queue(p)) for p in PRIORITIES]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, _, key in lists:
                    pipe.llen(key)
                lengths = await pipe.execute()
            picked: list[tuple[str, str, str]] = []
            skip = offset
            for (priority, name, key), length in zip(lists, lengths, strict=True):
                if len(picked) >= limit:
                    break
                if skip >= length:
                    skip -= length
                    continue
                want = min(length - skip, limit - len(picked))
                # Next to run is at the right end: index -1.
                ids = await self.redis.lrange(key, -(skip + want), -(skip + 1))
                picked += [(i.decode(), priority, name) for i in reversed(ids)]
                skip = 0
            records = await self.redis.mget([k.job(i) for i, _, _ in picked]) if picked else []
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return [
            JobSummary(i, "queued", 0, rec, priority, name or _field(rec, "name"))
            for (i, priority, name), rec in zip(picked, records, strict=True)
        ]

    def _index(self, state: str) -> tuple[str, bool, float]:
        """(sorted set key, newest first?, score to ms factor) of an indexed state."""
        k = self.keys
        return {
            "running": (k.active, False, 1.0),
            "scheduled": (k.scheduled, False, 1000.0),
            "completed": (k.completed, True, 1.0),
            "dead": (k.dead, True, 1.0),
        }[state]

    async def _indexed(
        self, state: str, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]:
        key, newest_first, factor = self._index(state)
        out: list[JobSummary] = []
        position = 0 if job_type else offset
        skipped = 0
        chunk = limit if job_type is None else max(limit, 500)
        try:
            while len(out) < limit:
                if newest_first:
                    entries = await self.redis.zrevrange(
                        key, position, position + chunk - 1, withscores=True
                    )
                else:
                    entries = await self.redis.zrange(
                        key, position, position + chunk - 1, withscores=True
                    )
                if not entries:
                    break
                position += len(entries)
                ids = [e[0].decode() for e in entries]
                records = await self.redis.mget([self.keys.job(i) for i in ids])
                for job_id, (_, score), rec in zip(ids, entries, records, strict=True):
                    name = _field(rec, "name")
                    if job_type is not None:
                        if name != job_type:
                            continue
                        if skipped < offset:
                            skipped += 1
                            continue
                    out.append(
                        JobSummary(
                            job_id, state, int(score * factor), rec, _field(rec, "priority"), name
                        )
                    )
                    if len(out) >= limit:
                        break
                if job_type is None:
                    break
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return out

    async def count_jobs(self, state: str, job_type: str | None = None) -> int:
        check_state(state)
        k = self.keys
        if state == "queued":
            members = await self._members()
            keys = [
                f"{k.ready_prefix}{m}"
                for m in members
                if job_type is None or m.partition(":")[2] == job_type
            ]
            if job_type is None:
                keys += [k.plain_queue(p) for p in PRIORITIES]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.llen(key)
                    return sum(int(n) for n in await pipe.execute())
            except (RedisError, OSError) as exc:
                raise _wrap(exc) from exc
        if job_type is not None:
            return len(await self._indexed(state, 0, 10**9, job_type))
        try:
            return int(await self.redis.zcard(self._index(state)[0]))
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc

    async def job_state(self, job_id: str) -> str | None:
        k = self.keys
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zscore(k.active, job_id)
                pipe.zscore(k.scheduled, job_id)
                pipe.zscore(k.dead, job_id)
                pipe.hget(k.result(job_id), "status")
                pipe.exists(k.job(job_id))
                active, scheduled, dead, status, exists = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        if active is not None:
            return "running"
        if scheduled is not None:
            return "scheduled"
        if dead is not None:
            return "dead"
        if status == b"completed":
            return "completed"
        return "queued" if exists else None

    async def get_dead_info(self, job_id: str) -> DeadInfo | None:
        try:
            raw = await self.redis.hget(self.keys.dead_info, job_id)
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return None if raw is None else DeadInfo.decode(raw)

    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        now_minute = int(time.time() // 60)
        span = range(now_minute - minutes + 1, now_minute + 1)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for minute in span:
                    pipe.hmget(self.keys.throughput(minute), "completed", "failed")
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _wrap(exc) from exc
        return [
            Throughput(m, int(c or 0), int(f or 0)) for m, (c, f) in zip(span, replies, strict=True)
        ]


def _field(raw: bytes | None, name: str) -> str:
    """One text field of a record, "" when the record is missing or malformed."""
    if not raw:
        return ""
    try:
        value = orjson.loads(raw).get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_result(data: dict[bytes, bytes]) -> JobResult | None:
    if not data:
        return None
    try:
        duration = float(data.get(b"duration_ms", b"0"))
    except ValueError:
        duration = 0.0
    return JobResult(
        status=_s(data.get(b"status", b"")),
        completed_at=_s(data.get(b"completed_at", b"")),
        duration_ms=duration,
        result=data.get(b"result"),
        error=_s(data[b"error"]) if b"error" in data else None,
    )


__all__ = ["RedisBroker"]
