"""The embedded SQLite broker: one file, no server, the Redis broker's semantics.

For development, CI and small single-host deployments; several worker
processes on one host may share the file. Every state transition is one
transaction (sqlite_ops.py, one function per lua/ script); reads are in
sqlite_inspect.py. All SQLite calls run on one thread per broker instance,
which owns the connection, so the event loop never blocks on the file and the
`_sync` client helpers work from plain code too.

There is no pub/sub: idle waits (for jobs, for a result) are handed to a
watcher thread (sqlite_watch.py) that polls `PRAGMA data_version` and looks
at the queues or results only after someone committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from ..job import now_iso
from . import sqlite_inspect as inspect
from . import sqlite_ops as ops
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
from .sqlite_db import Store, Tables, path_from_url, wrap
from .sqlite_ops import Clock, Outcome
from .sqlite_watch import Check, Wait, Watcher

T = TypeVar("T")

# Same figures as the Redis broker, so both behave alike.
ENQUEUE_CHUNK = 500
KEEP_COMPLETED = 100_000
# How often an idle wait looks for a commit: pick-up latency vs idle CPU.
POLL_INTERVAL = 0.025
# Expired records and results are deleted at most this often per broker.
PURGE_INTERVAL = 30.0


def _clock() -> Clock:
    return Clock(time.time(), now_iso())


class SQLiteBroker(Broker):
    def __init__(self, url: str, *, prefix: str = "bananas", result_ttl: float = 86400.0) -> None:
        self.url = url
        self.path = path_from_url(url)
        self.prefix = prefix
        self.result_ttl = result_ttl
        self._ttl = max(1, int(result_ttl))
        self._tables = Tables(prefix)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._store: Store | None = None  # touched on the pool's thread only
        self._watch: Watcher | None = None
        self._next_purge = 0.0

    # -- the database thread ----------------------------------------------------
    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="bananas-sqlite")
                # A broker dropped without close() (one per event loop in
                # Bananas.async_broker) must not leave its thread behind.
                weakref.finalize(self, self._pool.shutdown, wait=False)
            return self._pool

    def _on_thread(self, fn: Callable[[Store], T]) -> T:
        try:
            if self._store is None:
                self._store = Store.open(self.path, self._tables)
            return fn(self._store)
        except (sqlite3.Error, OSError) as exc:
            raise wrap(exc) from exc

    async def _run(self, fn: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self._on_thread, fn)

    def _run_sync(self, fn: Callable[[Store], T]) -> T:
        return self._executor().submit(self._on_thread, fn).result()

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _watcher(self) -> Watcher:
        with self._lock:
            if self._watch is None:
                opener = functools.partial(Store.open, self.path, self._tables)
                self._watch = Watcher(opener, POLL_INTERVAL)
                weakref.finalize(self, self._watch.stop)
            return self._watch

    async def _wait(self, check: Check, timeout: float) -> Any:
        """Await the first non-None value of `check`, or None after `timeout`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def deliver(value: Any, error: BaseException | None) -> None:
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, value, error)

        wait = Wait(check, deliver)
        watcher = self._watcher()
        watcher.add(wait)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            watcher.remove(wait)

    def _wait_sync(self, check: Check, timeout: float) -> Any:
        done = threading.Event()
        outcome: list[tuple[Any, BaseException | None]] = []

        def deliver(value: Any, error: BaseException | None) -> None:
            outcome.append((value, error))
            done.set()

        wait = Wait(check, deliver)
        watcher = self._watcher()
        watcher.add(wait)
        try:
            if not done.wait(timeout):
                return None
        finally:
            watcher.remove(wait)
        value, error = outcome[0]
        if error is not None:
            raise error
        return value

    async def ping(self) -> None:
        await self._run(lambda s: s.conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            watch, self._watch = self._watch, None
        if watch is not None:
            await asyncio.get_running_loop().run_in_executor(None, watch.close)
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(pool, self._close_store)
            pool.shutdown(wait=False)

    async def durability_warnings(self) -> list[str]:
        return [
            f"embedded SQLite broker ({self.path}): for development, CI and one host; "
            "Redis is the production broker (set REDIS_URL)"
        ]

    # -- client -------------------------------------------------------------------
    def _enqueue_all(self, store: Store, jobs: Sequence[NewJob]) -> list[bool]:
        out: list[bool] = []
        # Each chunk is one short transaction, so a big batch never holds the
        # write lock for long; each job is still written atomically.
        for start in range(0, len(jobs), ENQUEUE_CHUNK):
            out += ops.enqueue(store, jobs[start : start + ENQUEUE_CHUNK], _clock())
        return out

    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        return await self._run(lambda s: self._enqueue_all(s, jobs))

    def enqueue_sync(self, jobs: Sequence[NewJob]) -> list[bool]:
        return self._run_sync(lambda s: self._enqueue_all(s, jobs))

    async def get_result(self, job_id: str) -> JobResult | None:
        return await self._run(lambda s: inspect.get_result(s, job_id, time.time()))

    def get_result_sync(self, job_id: str) -> JobResult | None:
        return self._run_sync(lambda s: inspect.get_result(s, job_id, time.time()))

    def _result_check(self, job_id: str) -> Check:
        return lambda store: inspect.get_result(store, job_id, time.time())

    async def wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        if timeout <= 0:
            return await self.get_result(job_id)
        found: JobResult | None = await self._wait(self._result_check(job_id), timeout)
        return found

    def wait_result_sync(self, job_id: str, timeout: float) -> JobResult | None:
        if timeout <= 0:
            return self.get_result_sync(job_id)
        found: JobResult | None = self._wait_sync(self._result_check(job_id), timeout)
        return found

    async def get_record(self, job_id: str) -> bytes | None:
        return await self._run(lambda s: inspect.get_record(s, job_id, time.time()))

    # -- worker -------------------------------------------------------------------
    def _dequeue(
        self, store: Store, queues: Sequence[QueueRef], count: int, lease: float, prefix: str
    ) -> list[Delivery]:
        # Looking first without the write lock keeps idle workers from queueing
        # behind each other's empty transactions.
        if count <= 0 or not inspect.has_ready(store, queues):
            return []
        deadline = int((time.time() + lease) * 1000)
        return ops.dequeue(store, queues, count, deadline, prefix)

    async def dequeue(
        self, queues: Sequence[QueueRef], count: int, lease_seconds: float, token_prefix: str
    ) -> list[Delivery]:
        return await self._run(
            lambda s: self._dequeue(s, queues, count, lease_seconds, token_prefix)
        )

    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        if timeout <= 0:
            return await self._run(lambda s: inspect.has_ready(s, queues))

        def check(store: Store) -> bool | None:
            return True if inspect.has_ready(store, queues) else None

        return bool(await self._wait(check, timeout))

    async def extend_leases(
        self, leases: Sequence[tuple[str, str]], lease_seconds: float
    ) -> list[str]:
        if not leases:
            return []
        deadline = int((time.time() + lease_seconds) * 1000)
        return await self._run(lambda s: ops.extend(s, leases, deadline))

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        outcome = Outcome("completed", duration_ms, self._ttl, result=result)
        return await self._run(
            lambda s: ops.complete(s, delivery, record, outcome, _clock(), KEEP_COMPLETED)
        )

    async def retry(self, delivery: Delivery, record: bytes, due: float) -> bool:
        return await self._run(lambda s: ops.retry(s, delivery, record, due, _clock()))

    async def bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        clock = _clock()
        if not info.failed_at:
            info.failed_at = clock.iso
        outcome = Outcome("failed", duration_ms, self._ttl, error=info.error or info.reason)
        return await self._run(lambda s: ops.bury(s, delivery, record, info, outcome, clock))

    async def requeue(self, deliveries: Sequence[Delivery]) -> int:
        if not deliveries:
            return 0
        return await self._run(lambda s: ops.requeue(s, deliveries))

    # -- scheduler / recovery -----------------------------------------------------
    def _recover(self, store: Store, max_stalls: int, limit: int) -> Recovered:
        self._maybe_purge(store)
        clock = _clock()
        if not ops.has_expired(store, clock.ms):
            return Recovered([], [])
        return ops.recover(store, max_stalls, limit, clock, self._ttl)

    def _maybe_purge(self, store: Store) -> None:
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            ops.purge(store, now, ttl=self.result_ttl)

    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        return await self._run(lambda s: self._recover(s, max_stalls, limit))

    def _move_due(self, store: Store, limit: int) -> int:
        total = 0
        while True:
            clock = _clock()
            if not ops.has_due(store, clock.now):
                return total
            moved, more = ops.move_due(store, limit, clock, self._ttl)
            total += moved
            if not more:
                return total

    async def move_due(self, limit: int = 1000) -> int:
        return await self._run(lambda s: self._move_due(s, limit))

    # -- worker registry ------------------------------------------------------------
    async def heartbeat_worker(self, worker_id: str, info: dict[str, Any]) -> None:
        data = orjson.dumps(info)
        now_ms = int(time.time() * 1000)
        await self._run(lambda s: ops.heartbeat_worker(s, worker_id, data, now_ms))

    async def remove_worker(self, worker_id: str) -> None:
        await self._run(lambda s: ops.remove_worker(s, worker_id))

    async def list_workers(self, expiry: float) -> list[dict[str, Any]]:
        cutoff = int((time.time() - expiry) * 1000)
        rows = await self._run(lambda s: ops.prune_workers(s, cutoff))
        out = []
        for worker_id, raw, seen_ms in rows:
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entry.setdefault("id", worker_id)
                entry["last_seen"] = seen_ms / 1000
                out.append(entry)
        return out

    # -- inspection and admin ---------------------------------------------------------
    async def stats(self) -> BrokerStats:
        return await self._run(inspect.stats)

    async def oldest_ready_age(self) -> dict[str, float]:
        return await self._run(lambda s: inspect.oldest_ready_age(s, time.time()))

    async def active_by_queue(self) -> dict[QueueRef, int]:
        return await self._run(inspect.active_by_queue)

    async def get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        if not job_ids:
            return []
        return await self._run(lambda s: inspect.get_results(s, job_ids, time.time()))

    async def list_jobs(
        self, state: str, offset: int = 0, limit: int = 50, job_type: str | None = None
    ) -> list[JobSummary]:
        check_state(state)
        if state == "queued":
            return await self._run(lambda s: inspect.list_queued(s, offset, limit, job_type))
        return await self._run(
            lambda s: inspect.list_indexed(s, state, offset, limit, job_type, time.time())
        )

    async def count_jobs(self, state: str, job_type: str | None = None) -> int:
        check_state(state)
        return await self._run(lambda s: inspect.count_jobs(s, state, job_type, time.time()))

    async def job_state(self, job_id: str) -> str | None:
        return await self._run(lambda s: inspect.job_state(s, job_id, time.time()))

    async def get_dead_info(self, job_id: str) -> DeadInfo | None:
        return await self._run(lambda s: inspect.get_dead_info(s, job_id))

    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        return await self._run(lambda s: inspect.throughput(s, minutes, time.time()))

    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        return await self._run(lambda s: inspect.list_dead(s, offset, limit))

    async def delete_dead(self, job_id: str) -> bool:
        return await self._run(lambda s: ops.delete_dead(s, job_id))

    async def _replay(self, job_id: str, record: bytes, priority: str, name: str) -> bool:
        return await self._run(lambda s: ops.replay(s, job_id, record, (priority, name)))


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


__all__ = ["SQLiteBroker"]
