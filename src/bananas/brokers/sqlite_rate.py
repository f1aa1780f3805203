"""Rate limits on SQLite (docs/control.md, "Rate limits"), one transaction
each (the parks of one admission share one), with the semantics of
lua/rate_admit.lua and lua/rate_park.lua; a
mixin of SQLiteBroker like sqlite_cancel.py.

A bucket is a row of `rates` (its theoretical arrival time); a job waiting
for its slot is a scheduled job plus a row of `throttled` (pruned as slots
pass). SQLite runs one process's brokers on one file, so "fleet-wide" means
every worker process on that file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import CancelRequested
from ..rates import RateUsage, bucket_id
from .records import Delivery
from .sqlite_db import Store
from .sqlite_ops import _holds, _settled_by

T = TypeVar("T")


def admit(store: Store, bucket: str, interval_ms: float, count: int) -> list[float]:
    rates = store.t.name("rates")
    now = time.time() * 1000
    with store.write() as conn:
        row = conn.execute(f"SELECT tat_ms FROM {rates} WHERE bucket = ?", (bucket,)).fetchone()
        tat = max(now, float(row[0]) if row else 0.0)
        delays = []
        for _ in range(count):
            delays.append((tat - now) / 1000)
            tat += interval_ms
        conn.execute(
            f"INSERT INTO {rates} (bucket, tat_ms) VALUES (?, ?) "
            "ON CONFLICT (bucket) DO UPDATE SET tat_ms = excluded.tat_ms",
            (bucket, tat),
        )
        # Idle buckets go (the Redis key expires): a few passed ones per call.
        conn.execute(
            f"DELETE FROM {rates} WHERE bucket IN "
            f"(SELECT bucket FROM {rates} WHERE tat_ms < ? LIMIT 16)",
            (now,),
        )
    return delays


Park = tuple[Delivery, bytes, float, str | None]


def park(store: Store, parks: Sequence[Park]) -> list[bool | CancelRequested]:
    """Park every job of a batch in one transaction (rate_park.lua each):
    per job True, False (the lease is not ours) or CancelRequested."""
    t = store.t
    now = time.time()
    table = t.name("throttled")
    out: list[bool | CancelRequested] = []
    with store.write() as conn:
        if any(throttled is not None for *_, throttled in parks):
            conn.execute(
                f"DELETE FROM {table} WHERE id IN "
                f"(SELECT id FROM {table} WHERE until_ms <= ? LIMIT 64)",
                (now * 1000,),
            )
        for delivery, record, delay, throttled in parks:
            if not _holds(conn, t, delivery.id, delivery.token):
                out.append(_settled_by(conn, t, delivery.id, delivery.token, "scheduled"))
                continue
            cancelled = conn.execute(f"SELECT 1 FROM {t.cancels} WHERE id = ?", (delivery.id,))
            if cancelled.fetchone() is not None:
                out.append(CancelRequested(f"job {delivery.id} was cancelled: not parked"))
                continue
            conn.execute(
                f"""UPDATE {t.jobs} SET state = 'scheduled', record = ?, at = ?, token = ?,
                    expires = NULL WHERE id = ?""",
                (record, now + delay, delivery.token, delivery.id),
            )
            if throttled is not None:
                conn.execute(
                    f"INSERT OR REPLACE INTO {table} (id, name, until_ms) VALUES (?, ?, ?)",
                    (delivery.id, throttled, (now + delay) * 1000),
                )
            out.append(True)
    return out


def declare(store: Store, limits: Mapping[str, str | None]) -> None:
    table = store.t.name("rate_limits")
    with store.write() as conn:
        for name, rate in limits.items():
            if rate is None:
                conn.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
            else:
                conn.execute(
                    f"INSERT OR REPLACE INTO {table} (name, rate) VALUES (?, ?)", (name, rate)
                )


def usage(store: Store) -> list[RateUsage]:
    t = store.t
    now = time.time() * 1000
    conn = store.conn
    try:
        limits = conn.execute(f"SELECT name, rate FROM {t.name('rate_limits')} ORDER BY name")
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a file no rate-limited worker has opened
            return []
        raise
    out = []
    for name, rate in limits.fetchall():
        (waiting,) = conn.execute(
            f"SELECT COUNT(*) FROM {t.name('throttled')} WHERE name = ? AND until_ms > ?",
            (name, now),
        ).fetchone()
        row = conn.execute(
            f"SELECT tat_ms FROM {t.name('rates')} WHERE bucket = ?", (bucket_id(name, None),)
        ).fetchone()
        booked = max(0.0, float(row[0]) - now) / 1000 if row else 0.0
        out.append(RateUsage(str(name), str(rate), int(waiting), booked))
    return out


class SQLiteRates:
    _park_batch: list[tuple[Park, asyncio.Future[Any]]] | None
    _park_tasks: set[asyncio.Task[None]]

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def move_due(self, limit: int = 1000) -> int:
        raise NotImplementedError

    async def rate_admit(self, bucket: str, interval: float, count: int) -> list[float]:
        return await self._run(lambda s: admit(s, bucket, interval * 1000, count))

    async def rate_park(
        self, delivery: Delivery, record: bytes, delay: float, throttled: str | None
    ) -> bool:
        # The parks of one admission arrive together (gathered): they share one
        # transaction, so a throttled batch holds the file's one writer once.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool | CancelRequested] = loop.create_future()
        batch = getattr(self, "_park_batch", None)
        if batch is None:
            batch = self._park_batch = []
            loop.call_soon(self._flush_parks)
        batch.append(((delivery, record, delay, throttled), done))
        outcome = await done
        if isinstance(outcome, CancelRequested):
            raise outcome
        return outcome

    def _flush_parks(self) -> None:
        batch, self._park_batch = self._park_batch, None
        task = asyncio.ensure_future(self._park_all(batch or []))
        tasks: set[asyncio.Task[None]] = getattr(self, "_park_tasks", set())
        self._park_tasks = tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _park_all(self, batch: list[tuple[Park, asyncio.Future[Any]]]) -> None:
        try:
            outcomes = await self._run(lambda s: park(s, [item for item, _ in batch]))
        except BaseException as exc:
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if not done.done():
                done.set_result(outcome)

    async def rate_wake(self, job_ids: Sequence[str]) -> int:
        return await self.move_due()

    async def declare_rate_limits(self, limits: Mapping[str, str | None]) -> None:
        await self._run(lambda s: declare(s, limits))

    async def rate_usage(self) -> list[RateUsage]:
        # A read (read-only connection): status and the dashboard never wait
        # for another process's write lock.
        return await self._read(usage)
