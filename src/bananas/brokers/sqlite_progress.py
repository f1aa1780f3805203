"""The SQLite broker's job progress and lease reads (a mixin of SQLiteBroker,
like sqlite_views.py): the progress table is written only for jobs whose
handler reports progress, and read by handles, `bananas job` and the
dashboard. Same semantics as lua/progress.lua."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from .records import Delivery, JobProgress, Lease
from .sqlite_db import Store
from .sqlite_ops import _holds

T = TypeVar("T")


def set_progress(
    store: Store,
    delivery: Delivery,
    progress: tuple[float, str, int],
    now: float,
    ttl: float,
) -> bool:
    """Write a job's progress if `delivery` still holds its lease."""
    t = store.t
    fraction, message, attempt = progress
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return False
        conn.execute(
            f"""INSERT OR REPLACE INTO {t.progress}
                (id, fraction, message, attempt, updated_at, expires) VALUES (?, ?, ?, ?, ?, ?)""",
            (delivery.id, fraction, message, attempt, now, now + max(1.0, ttl)),
        )
    return True


def get_progress(store: Store, job_id: str, now: float) -> JobProgress | None:
    try:
        row = store.conn.execute(
            f"""SELECT fraction, message, attempt, updated_at FROM {store.t.progress}
                WHERE id = ? AND expires > ?""",
            (job_id, now),
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a file no progress was ever written to
            return None
        raise
    if row is None:
        return None
    return JobProgress(float(row[0]), str(row[1]), int(row[2]), float(row[3]))


def job_lease(store: Store, job_id: str) -> Lease | None:
    row = store.conn.execute(
        f"SELECT token, at FROM {store.t.jobs} WHERE id = ? AND state = 'running'",
        (job_id,),
    ).fetchone()
    if row is None or not row[0]:
        return None
    return Lease.from_token(str(row[0]), float(row[1]) / 1000)


class SQLiteProgress:
    async def _read(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def set_progress(
        self, delivery: Delivery, fraction: float, message: str, attempt: int, ttl: float
    ) -> bool:
        value = (fraction, message, attempt)
        return await self._run(lambda s: set_progress(s, delivery, value, time.time(), ttl))

    async def get_progress(self, job_id: str) -> JobProgress | None:
        return await self._read(lambda s: get_progress(s, job_id, time.time()))

    async def job_lease(self, job_id: str) -> Lease | None:
        return await self._read(lambda s: job_lease(s, job_id))
