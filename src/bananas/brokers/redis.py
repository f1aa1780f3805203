"""The Redis broker: every state change is one Lua script from lua/."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis as redis_sync
import redis.asyncio as redis_async
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import BrokerError
from ..job import now_iso
from ..keys import Keys
from . import lua_scripts
from .base import (
    Broker,
    DeadInfo,
    Delivery,
    ForeignRouting,
    JobResult,
    NewJob,
    QueueRef,
    Recovered,
)
from .lua_scripts import LuaScript
from .redis_batch import ScriptBatcher
from .redis_inspect import RedisInspection
from .redis_support import pack_command, parse_result, retry_policy, text, wrap

# Enqueue batches are split so that one script never holds Redis for long.
ENQUEUE_CHUNK = 500
# Size of the recent-completions index the dashboard pages through.
KEEP_COMPLETED = 100_000
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def _client_options() -> dict[str, Any]:
    """Connection settings shared by the asyncio (worker) and sync (client) clients."""
    return {
        "socket_connect_timeout": 5,
        # Explicit: redis-py 8 reads time out after 5 s by default, 5.x never.
        # Blocking commands here wait at most 2 s (IDLE_WAIT, pump_foreign).
        "socket_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": retry_policy(),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


class RedisBroker(RedisInspection, Broker, ForeignRouting):
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
        self._complete_minute = -1
        self._complete_shared: tuple[str, ...] = ()
        self._local = threading.local()
        self._sync_lock = threading.Lock()

    # -- connections ------------------------------------------------------
    @property
    def redis(self) -> Any:
        if self._async is None:
            self._async = redis_async.Redis.from_url(self.url, **_client_options())
        return self._async

    def _sync(self) -> Any:
        client = self._sync_client
        if client is None:
            # Locked: a client that loses the race is garbage-collected, and
            # redis-py's Redis.__del__ closes its pool under whoever still uses it.
            with self._sync_lock:
                client = self._sync_client
                if client is None:
                    client = self._sync_client = redis_sync.Redis.from_url(
                        self.url, **_client_options()
                    )
        return client

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
            self._batcher = None
        if self._async is not None:
            await self._async.aclose()
            self._async = None
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
            raise wrap(exc) from exc
        out = {text(k): text(v) for k, v in cfg.items()}
        out["redis_version"] = str(info.get("redis_version", ""))
        return out

    # -- script calls ---------------------------------------------------------
    def _script_batcher(self) -> ScriptBatcher:
        if self._batcher is None:
            self._batcher = ScriptBatcher(lambda: self.redis, self._call_one, wrap)
        return self._batcher

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._script_batcher().call(self._scripts[name], keys, args)

    async def _call_one(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            try:
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # First use on this server, or it restarted without its script cache.
                await self.redis.script_load(script.source)
                return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc

    def _call_sync(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self._call_many_sync(name, [(keys, args)])[0]

    def _call_many_sync(
        self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run a script once per (keys, args), all in one write and one round trip."""
        script = self._scripts[name]
        try:
            packed = b"".join(
                pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
                for keys, args in calls
            )
        except TypeError as exc:
            raise BrokerError(f"cannot send {name}: {exc}") from exc
        replies: list[Any] = []
        fast = self._held_connection()
        if fast is not None:
            try:
                fast.send_packed_command([packed])
                for _ in calls:
                    try:
                        replies.append(fast.read_response())
                    except ResponseError as exc:  # an error reply; the connection is fine
                        replies.append(exc)
            except (RedisError, OSError) as exc:
                # The held connection broke (or is out of step): drop it. Calls
                # already answered stand; the rest are redone on the pooled path.
                fast.disconnect()
                self._local.conn = None
                if not isinstance(exc, _UNAVAILABLE):
                    raise wrap(exc) from exc
        out = [
            self._settle_sync(script, call, reply)
            for call, reply in zip(calls, replies, strict=False)
        ]
        return out + [self._call_pooled_sync(script, *call) for call in calls[len(replies) :]]

    def _settle_sync(
        self, script: LuaScript, call: tuple[Sequence[str], Sequence[Any]], reply: Any
    ) -> Any:
        if isinstance(reply, NoScriptError):
            # First use on this server, or it restarted without its script cache;
            # only this call is redone (the others ran, and enqueue is not idempotent
            # in what it reports).
            return self._call_pooled_sync(script, *call)
        if isinstance(reply, Exception):
            raise wrap(reply)
        return reply

    def _call_pooled_sync(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self._sync()
        try:
            try:
                return client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                client.script_load(script.source)
                return client.evalsha(script.sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc

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
        """KEYS/ARGV of enqueue.lua per chunk: jobs grouped by queue (see the script)."""
        k = self.keys
        chunks = []
        for start in range(0, len(jobs), ENQUEUE_CHUNK):
            numbers: dict[tuple[str, str], int] = {}
            queue_keys: list[str] = []
            members: list[Any] = []
            job_keys: list[str] = []
            job_args: list[Any] = []
            for job in jobs[start : start + ENQUEUE_CHUNK]:
                queue = (job.priority, job.name)
                q = numbers.get(queue)
                if q is None:
                    q = numbers[queue] = len(members) + 1
                    queue_keys += (k.ready(*queue), k.marker(*queue))
                    members.append(f"{job.priority}:{job.name}")
                job_keys.append(k.job(job.id))
                job_args += (job.id, job.record, "" if job.due is None else repr(job.due), q)
            keys = [k.queues, k.scheduled, *queue_keys, *job_keys]
            chunks.append((keys, [len(members), *members, *job_args]))
        return chunks

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        # The batcher sends every chunk in one write and reads the replies in order.
        replies = await asyncio.gather(
            *(self._call("enqueue", keys, args) for keys, args in self._enqueue_chunks(jobs))
        )
        return [bool(x) for reply in replies for x in reply]

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[bool]:
        chunks = self._enqueue_chunks(jobs)
        replies = self._call_many_sync("enqueue", chunks)
        return [bool(x) for reply in replies for x in reply]

    async def get_result(self, job_id: str) -> JobResult | None:
        try:
            data = await self.redis.hgetall(self.keys.result(job_id))
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc
        return parse_result(data)

    def get_result_sync(self, job_id: str) -> JobResult | None:
        try:
            data = self._sync().hgetall(self.keys.result(job_id))
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc
        return parse_result(data)

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
            raise wrap(exc) from exc
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
            raise wrap(exc) from exc
        finally:
            pubsub.close()

    async def get_record(self, job_id: str) -> bytes | None:
        try:
            value: bytes | None = await self.redis.get(self.keys.job(job_id))
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc
        return value

    # -- worker -----------------------------------------------------------
    async def register_types(self, names: Sequence[str]) -> None:
        if not names:
            return
        now = str(int(time.time() * 1000))
        try:
            await self.redis.hset(self.keys.types, mapping=dict.fromkeys(names, now))
        except (RedisError, OSError) as exc:
            raise wrap(exc) from exc

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
        keys = [k.active, k.leases, *self._ready_keys(queues)]
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
            raise wrap(exc) from exc
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
        lost = await self._call("extend", [self.keys.active, self.keys.leases], args)
        return [x.decode() for x in lost]

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        k = self.keys
        job_id = delivery.id
        now = time.time()
        minute = int(now // 60)
        if minute != self._complete_minute:
            self._complete_minute = minute
            self._complete_shared = (
                k.active,
                k.leases,
                k.stalls,
                k.completed,
                k.throughput(minute),
            )
        args = (
            job_id,
            delivery.token,
            record,
            now_iso(),
            f"{duration_ms:.3f}",
            result if result is not None else b"",
            k.notify_channel(job_id),
            int(now * 1000),
        )
        done = await self._script_batcher().call_merged(
            self._scripts["complete"],
            self._complete_shared,
            (self._ttl,),
            (k.job(job_id), k.result(job_id)),
            args,
        )
        return bool(done)

    async def retry(self, delivery: Delivery, record: bytes, due: float) -> bool:
        k = self.keys
        keys = [
            k.active,
            k.leases,
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
            k.leases,
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
        return int(await self._call("requeue", [k.active, k.leases], args))

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
            raise wrap(exc) from exc
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
        keys = [k.active, k.leases, k.stalls, k.dead, k.dead_info, k.queues, k.completed]
        now = time.time()
        now_ms = int(now * 1000)
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
            KEEP_COMPLETED,
            int((now - self.result_ttl) * 1000),
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


__all__ = ["RedisBroker"]
