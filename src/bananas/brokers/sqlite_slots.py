"""Concurrency limits on SQLite (docs/control.md), the semantics of
lua/slot_*.lua with each step one transaction: admit takes a slot or parks
the job as a waiter, release hands the freed slot to the oldest waiter and
resumes it, all at once (no step between them can be lost, unlike the
turns a Redis Cluster takes between a bucket's partition and a job's).

Tables: `slots` (bucket, hold, deadline in unix seconds; a hold is
"<id> <token>", its lease's, or "<id>", a woken waiter's reservation),
`slot_waiters` (FIFO by seq) and `slot_buckets` (bucket -> limit, the
buckets in use). A parked job is 'scheduled' with its safety re-check as
its due time; a waiter no longer parked (cancelled, or its re-check moved
it) is dropped when its turn comes, not handed a slot.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .capabilities import ConcurrencyLimits, SlotJob, SlotUsage
from .records import Delivery
from .sqlite_db import Store, Tables
from .sqlite_ops import _make_ready

T = TypeVar("T")
MARGIN = 0.05  # seconds after the soonest holder deadline a waiter looks again


def _member(d: Delivery) -> str:
    """A lease's hold: "<id> <token>" (a woken waiter's reservation is "<id>")."""
    return f"{d.id} {d.token}"


def _prune(conn: sqlite3.Connection, t: Tables, bucket: str, now: float) -> None:
    conn.execute(f"DELETE FROM {t.slots} WHERE bucket = ? AND deadline <= ?", (bucket, now))


def _held(conn: sqlite3.Connection, t: Tables, bucket: str) -> int:
    row = conn.execute(f"SELECT COUNT(*) FROM {t.slots} WHERE bucket = ?", (bucket,)).fetchone()
    return int(row[0])


def _hold(conn: sqlite3.Connection, t: Tables, bucket: str, job_id: str, deadline: float) -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO {t.slots} (bucket, job_id, deadline) VALUES (?, ?, ?)",
        (bucket, job_id, deadline),
    )


def _resume(conn: sqlite3.Connection, t: Tables, job_id: str) -> bool:
    row = conn.execute(
        f"SELECT route, priority, name FROM {t.jobs} WHERE id = ? AND state = 'scheduled'",
        (job_id,),
    ).fetchone()
    if row is None:
        return False
    _make_ready(conn, t, job_id, (str(row[0]), str(row[1]), str(row[2])), head=True)
    return True


def _wake(conn: sqlite3.Connection, t: Tables, bucket: str, limit: int, deadline: float) -> None:
    """Hand free slots to the oldest waiters still parked, resuming each."""
    free = limit - _held(conn, t, bucket)
    while free > 0:
        row = conn.execute(
            f"SELECT seq, job_id FROM {t.slot_waiters} WHERE bucket = ? ORDER BY seq LIMIT 1",
            (bucket,),
        ).fetchone()
        if row is None:
            return
        conn.execute(f"DELETE FROM {t.slot_waiters} WHERE seq = ?", (row[0],))
        if _resume(conn, t, str(row[1])):  # its reservation: "<id>"
            _hold(conn, t, bucket, str(row[1]), deadline)
            free -= 1


def _recheck(conn: sqlite3.Connection, t: Tables, bucket: str, now: float, lease: float) -> float:
    query = f"SELECT MIN(deadline) FROM {t.slots} WHERE bucket = ?"
    row = conn.execute(query, (bucket,)).fetchone()
    if row[0] is None:
        return MARGIN
    return max(MARGIN, min(lease, float(row[0]) - now + MARGIN))


def admit(store: Store, jobs: Sequence[SlotJob], lease: float) -> list[bool]:
    t = store.t
    now = time.time()
    deadline = now + lease
    ok: list[bool] = []
    with store.write() as conn:
        for job in jobs:
            bucket, d = job.bucket, job.delivery
            _prune(conn, t, bucket, now)
            conn.execute(
                f"INSERT OR REPLACE INTO {t.slot_buckets} (bucket, lim) VALUES (?, ?)",
                (bucket, job.limit),
            )
            hold = _member(d)
            held = conn.execute(
                f"SELECT 1 FROM {t.slots} WHERE bucket = ? AND job_id IN (?, ?)",
                (bucket, hold, d.id),
            ).fetchone()
            if held is not None or _held(conn, t, bucket) < job.limit:
                conn.execute(
                    f"DELETE FROM {t.slots} WHERE bucket = ? AND job_id = ?", (bucket, d.id)
                )
                _hold(conn, t, bucket, hold, deadline)
                conn.execute(
                    f"DELETE FROM {t.slot_waiters} WHERE bucket = ? AND job_id = ?", (bucket, d.id)
                )
                ok.append(True)
                continue
            ok.append(False)
            parked = conn.execute(
                f"""UPDATE {t.jobs} SET state = 'scheduled', at = ?, token = NULL
                    WHERE id = ? AND state = 'running' AND token IN (?, ?)""",
                (now + _recheck(conn, t, bucket, now, lease), d.id, d.token, "~" + d.token),
            ).rowcount
            if parked:
                conn.execute(
                    f"INSERT OR IGNORE INTO {t.slot_waiters} (bucket, job_id) VALUES (?, ?)",
                    (bucket, d.id),
                )
        for bucket, limit in {(j.bucket, j.limit) for j in jobs}:
            _wake(conn, t, bucket, limit, deadline)
    return ok


def release(store: Store, jobs: Sequence[SlotJob], lease: float) -> None:
    t = store.t
    now = time.time()
    with store.write() as conn:
        for job in jobs:
            conn.execute(
                f"DELETE FROM {t.slots} WHERE bucket = ? AND job_id = ?",
                (job.bucket, _member(job.delivery)),
            )
        for bucket, limit in {(j.bucket, j.limit) for j in jobs}:
            _prune(conn, t, bucket, now)
            _wake(conn, t, bucket, limit, now + lease)
            waiting = conn.execute(
                f"SELECT 1 FROM {t.slot_waiters} WHERE bucket = ? LIMIT 1", (bucket,)
            ).fetchone()
            if waiting is None and _held(conn, t, bucket) == 0:
                conn.execute(f"DELETE FROM {t.slot_buckets} WHERE bucket = ?", (bucket,))


def extend(store: Store, jobs: Sequence[SlotJob], lease: float) -> list[str]:
    t = store.t
    now = time.time()
    lost: list[str] = []
    with store.write() as conn:
        for bucket in {j.bucket for j in jobs}:
            _prune(conn, t, bucket, now)
        for job in jobs:
            done = conn.execute(
                f"UPDATE {t.slots} SET deadline = ? WHERE bucket = ? AND job_id = ?",
                (now + lease, job.bucket, _member(job.delivery)),
            ).rowcount
            if not done:
                lost.append(job.delivery.id)
        for bucket, limit in {(j.bucket, j.limit) for j in jobs}:
            _wake(conn, t, bucket, limit, now + lease)
    return lost


def usage(store: Store, limit: int) -> list[SlotUsage]:
    t = store.t
    now = time.time()
    rows = store.conn.execute(
        f"""SELECT b.bucket, b.lim,
                (SELECT COUNT(*) FROM {t.slots} s WHERE s.bucket = b.bucket AND s.deadline > ?),
                (SELECT COUNT(*) FROM {t.slot_waiters} w WHERE w.bucket = b.bucket)
            FROM {t.slot_buckets} b""",
        (now,),
    ).fetchall()
    found = [SlotUsage(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
    return sorted(found, key=lambda u: (-u.running - u.waiting, u.bucket))[: max(0, limit)]


class SQLiteSlots(ConcurrencyLimits):
    """SQLiteBroker's concurrency limits (mixed in)."""

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def _admit(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[bool]:
        return await self._run(lambda s: admit(s, jobs, lease_seconds))

    async def _release_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> None:
        await self._run(lambda s: release(s, jobs, lease_seconds))

    async def _extend_slots(self, jobs: Sequence[SlotJob], lease_seconds: float) -> list[str]:
        return await self._run(lambda s: extend(s, jobs, lease_seconds))

    async def slot_usage(self, limit: int = 200) -> list[SlotUsage]:
        return await self._read(lambda s: usage(s, limit))
