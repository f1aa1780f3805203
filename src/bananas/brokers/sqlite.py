"""The embedded SQLite broker: one file, no server, the Redis broker's semantics.

For development, CI and small single-host deployments; several worker
processes on one host may share the file. Every state transition is one
transaction (sqlite_ops.py and sqlite_upkeep.py, one function per lua/
script); reads are in sqlite_inspect.py. All SQLite calls run on one thread
per broker instance, which owns the connection, so the event loop never
blocks on the file and `broker.sync` works from plain code too.

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
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..job import now_iso
from . import sqlite_inspect as inspect
from . import sqlite_ops as ops
from . import sqlite_upkeep as upkeep
from .base import Broker
from .records import (
    KEEP_COMPLETED,
    DeadInfo,
    Delivery,
    JobResult,
    NewJob,
    QueueRef,
    Recovered,
)
from .sqlite_cancel import SQLiteCancels
from .sqlite_db import Store, Tables, path_from_url, refuse_newer, wrap
from .sqlite_ops import Clock, Outcome
from .sqlite_progress import SQLiteProgress
from .sqlite_rate import SQLiteRates
from .sqlite_slots import SQLiteSlots
from .sqlite_sync import SQLiteSyncClient
from .sqlite_views import SQLiteViews
from .sqlite_watch import Check, Wait, Watcher
from .sqlite_workflows import SQLiteWorkflows
from .sqlite_workflows import purge as purge_workflows

T = TypeVar("T")
# How often an idle wait looks for a commit: pick-up latency vs idle CPU.
POLL_INTERVAL = 0.025
# Expired records and results are deleted at most this often per broker.
PURGE_INTERVAL = 30.0


def _clock() -> Clock:
    return Clock(time.time(), now_iso())


class SQLiteBroker(
    SQLiteCancels, SQLiteViews, SQLiteProgress, SQLiteWorkflows, SQLiteSlots, SQLiteRates, Broker
):
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
        self._reader: Store | None = None  # read-only; also the pool's thread only
        self._watch: Watcher | None = None
        self._next_purge = 0.0
        self.sync = SQLiteSyncClient(self)

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

    def _read_on_thread(self, fn: Callable[[Store], T]) -> T:
        """Reads go through a read-only connection: a full disk or another
        process's long write does not stop `bananas status` or the dashboard."""
        if self._store is not None:  # already open for writing: reuse it
            return self._on_thread(fn)
        try:
            if self._reader is None:
                self._reader = Store.open_reader(self.path, self._tables)
            if self._reader is not None:
                return fn(self._reader)
        except (sqlite3.Error, OSError) as exc:
            raise wrap(exc) from exc
        return self._on_thread(fn)  # no file yet: create it

    async def _run(self, fn: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self._on_thread, fn)

    async def _read(self, fn: Callable[[Store], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), self._read_on_thread, fn)

    def _run_sync(self, fn: Callable[[Store], T]) -> T:
        return self._executor().submit(self._on_thread, fn).result()

    def _read_sync(self, fn: Callable[[Store], T]) -> T:
        return self._executor().submit(self._read_on_thread, fn).result()

    def _close_store(self) -> None:
        for store in (self._store, self._reader):
            if store is not None:
                store.close()
        self._store = self._reader = None

    def _watcher(self) -> Watcher:
        with self._lock:
            if self._watch is None:
                opener = functools.partial(_open_for_reading, self.path, self._tables)
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
        await self._read(_ping)

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
    def _enqueue_all(self, store: Store, batches: list[Sequence[NewJob]]) -> list[bool]:
        # Each batch is one short transaction, so a big enqueue never holds the
        # write lock for long; each job is still written atomically.
        return [ok for batch in batches for ok in ops.enqueue(store, batch, _clock())]

    async def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        return await self._run(lambda s: self._enqueue_all(s, batches))

    async def get_result(self, job_id: str) -> JobResult | None:
        return await self._read(self._result_check(job_id))

    def _result_check(self, job_id: str) -> Check:
        return lambda store: inspect.get_result(store, job_id, time.time())

    async def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        found: JobResult | None = await self._wait(self._result_check(job_id), timeout)
        return found

    async def get_record(self, job_id: str) -> bytes | None:
        return await self._read(lambda s: inspect.get_record(s, job_id, time.time()))

    # -- worker -------------------------------------------------------------------
    def _dequeue(
        self,
        store: Store,
        queues: Sequence[QueueRef],
        count: int,
        lease: float,
        prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        # Looking first without the write lock keeps idle workers from queueing
        # behind each other's empty transactions. The schema check comes first:
        # an idle worker must learn of a newer file too, not only a busy one.
        refuse_newer(store.conn)
        if count <= 0 or not inspect.has_ready(store, queues):
            return []
        deadline = int((time.time() + lease) * 1000)
        return ops.dequeue(store, queues, count, deadline, prefix, start)

    async def dequeue(
        self,
        queues: Sequence[QueueRef],
        count: int,
        lease_seconds: float,
        token_prefix: str,
        start: int | None = None,
    ) -> list[Delivery]:
        return await self._run(
            lambda s: self._dequeue(s, queues, count, lease_seconds, token_prefix, start)
        )

    async def wait_for_jobs(self, queues: Sequence[QueueRef], timeout: float) -> bool:
        if timeout <= 0:
            return await self._read(lambda s: inspect.has_ready(s, queues))

        def check(store: Store) -> bool | None:
            return True if inspect.has_ready(store, queues) else None

        return bool(await self._wait(check, timeout))

    async def _extend(
        self,
        leases: Sequence[tuple[str, str]],
        lease_seconds: float,
        started: Collection[str] = (),
    ) -> list[str]:
        deadline = int((time.time() + lease_seconds) * 1000)
        return await self._run(lambda s: ops.extend(s, leases, deadline, started))

    async def complete(
        self, delivery: Delivery, record: bytes, result: bytes | None, duration_ms: float
    ) -> bool:
        outcome = Outcome("completed", duration_ms, self._ttl, result=result)
        clock = _clock()
        after = self._member_settle(delivery, "completed", result, clock)
        return await self._run(
            lambda s: ops.complete(s, delivery, record, outcome, clock, KEEP_COMPLETED, after)
        )

    async def retry(self, delivery: Delivery, record: bytes, delay_seconds: float) -> bool:
        return await self._run(lambda s: ops.retry(s, delivery, record, delay_seconds, _clock()))

    async def _bury(
        self, delivery: Delivery, record: bytes | None, info: DeadInfo, duration_ms: float
    ) -> bool:
        outcome = Outcome("failed", duration_ms, self._ttl, error=info.result_error)
        clock = _clock()
        after = self._member_settle(delivery, "failed", info.result_error, clock)
        return await self._run(lambda s: ops.bury(s, delivery, record, info, outcome, clock, after))

    async def _requeue(self, deliveries: Sequence[Delivery]) -> int:
        return await self._run(lambda s: ops.requeue(s, deliveries))

    # -- scheduler / recovery -----------------------------------------------------
    def _recover(self, store: Store, max_stalls: int, limit: int) -> Recovered:
        self._maybe_purge(store)
        clock = _clock()
        if not upkeep.has_expired(store, clock.ms):
            return Recovered([], [])
        return upkeep.recover(store, max_stalls, limit, clock, self._ttl)

    def _maybe_purge(self, store: Store) -> None:
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_INTERVAL
            upkeep.purge(store, now, ttl=self.result_ttl)
            purge_workflows(store, now)

    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        return await self._run(lambda s: self._recover(s, max_stalls, limit))

    def _move_due(self, store: Store, limit: int) -> int:
        total = 0
        while True:
            clock = _clock()
            if not upkeep.has_due(store, clock.now):
                return total
            moved, more = upkeep.move_due(store, limit, clock, self._ttl)
            total += moved
            if not more:
                return total

    async def move_due(self, limit: int = 1000) -> int:
        return await self._run(lambda s: self._move_due(s, limit))

    # -- worker registry ------------------------------------------------------------
    async def _heartbeat(self, worker_id: str, entry: bytes) -> None:
        now_ms = int(time.time() * 1000)
        await self._run(lambda s: upkeep.heartbeat_worker(s, worker_id, entry, now_ms))

    def _live(self, store: Store, cutoff_ms: int) -> list[tuple[str, bytes, int]]:
        # A broker that writes anyway (a worker, the dashboard after an action)
        # prunes silent entries; a read-only one (`bananas status`) only skips them.
        if store is self._store:
            return upkeep.prune_workers(store, cutoff_ms)
        return inspect.live_workers(store, cutoff_ms)

    async def remove_worker(self, worker_id: str) -> None:
        await self._run(lambda s: upkeep.remove_worker(s, worker_id))

    async def _live_workers(self, expiry: float) -> list[tuple[str, bytes, float]]:
        cutoff = int((time.time() - expiry) * 1000)
        rows = await self._read(lambda s: self._live(s, cutoff))
        return [(worker_id, raw, seen_ms / 1000) for worker_id, raw, seen_ms in rows]


def _ping(store: Store) -> None:
    store.conn.execute("SELECT 1").fetchone()


def _open_for_reading(path: str, tables: Tables) -> Store:
    return Store.open_reader(path, tables) or Store.open(path, tables)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


__all__ = ["SQLiteBroker"]
