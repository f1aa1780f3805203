"""Read-only queries of the SQLite broker: results, inspection, listings.

Orders and tie-breaks follow the Redis broker's sorted sets (score, then id),
so the dashboard and CLI page through both brokers alike. Rows whose TTL has
passed read as absent even before `purge` deletes them, as Redis keys do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..job import created_at
from ..job import record_field as _field
from ..keys import PRIORITY_RANK, lane, split_lane
from ..vocabulary import PRIORITIES
from .records import (
    THROUGHPUT_KEEP_S,
    BrokerStats,
    DeadInfo,
    DeadLetter,
    JobResult,
    JobSummary,
    QueueRef,
    Throughput,
)
from .sqlite_db import Store
from .sqlite_ops import where

_RESULT_COLUMNS = "status, completed_at, duration_ms, result, error"


def _result(row: tuple[Any, ...] | None) -> JobResult | None:
    if row is None:
        return None
    status, completed_at, duration_ms, result, error = row
    return JobResult(status, completed_at, float(duration_ms), result, error)


def get_record(store: Store, job_id: str, now: float) -> bytes | None:
    row = store.conn.execute(
        f"SELECT record, expires FROM {store.t.jobs} WHERE id = ?", (job_id,)
    ).fetchone()
    if row is None or (row[1] is not None and row[1] <= now):
        return None
    return row[0]  # type: ignore[no-any-return]


def get_result(store: Store, job_id: str, now: float) -> JobResult | None:
    row = store.conn.execute(
        f"SELECT {_RESULT_COLUMNS} FROM {store.t.results} WHERE id = ? AND expires > ?",
        (job_id, now),
    ).fetchone()
    return _result(row)


def get_results(store: Store, job_ids: Sequence[str], now: float) -> list[JobResult | None]:
    found: dict[str, JobResult | None] = {}
    ids = list(dict.fromkeys(job_ids))
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(
            f"""SELECT id, {_RESULT_COLUMNS} FROM {store.t.results}
                WHERE id IN ({marks}) AND expires > ?""",
            (*chunk, now),
        ):
            found[row[0]] = _result(row[1:])
    return [found.get(job_id) for job_id in job_ids]


def has_ready(store: Store, queues: Sequence[QueueRef]) -> bool:
    for queue in queues:
        row = store.conn.execute(
            f"""SELECT 1 FROM {store.t.ready}
                WHERE state = 'queued' AND route = ? AND priority = ? AND name = ? LIMIT 1""",
            where(queue),
        ).fetchone()
        if row is not None:
            return True
    return False


def job_state(store: Store, job_id: str, now: float) -> str | None:
    row = store.conn.execute(
        f"SELECT state, expires FROM {store.t.jobs} WHERE id = ?", (job_id,)
    ).fetchone()
    if row is None or (row[1] is not None and row[1] <= now):
        return None
    return str(row[0])


def get_dead_info(store: Store, job_id: str) -> DeadInfo | None:
    row = store.conn.execute(
        f"SELECT dead_info FROM {store.t.jobs} WHERE id = ? AND state = 'dead'", (job_id,)
    ).fetchone()
    return None if row is None else DeadInfo.decode(row[0])


# -- queue figures -----------------------------------------------------------------
def members(conn: sqlite3.Connection, store: Store) -> list[QueueRef]:
    """Every routed queue ever used, in the order Redis lists them."""
    rows = conn.execute(f"SELECT route, priority, name FROM {store.t.queues}").fetchall()
    return sorted(
        ((lane(str(r), str(p)), str(n)) for r, p, n in rows),
        key=lambda q: (PRIORITY_RANK.get(split_lane(q[0])[1], 9), f"{q[0]}:{q[1]}"),
    )


def _grouped(conn: sqlite3.Connection, store: Store, state: str) -> dict[QueueRef, int]:
    assert state in ("queued", "running")
    source = store.t.ready if state == "queued" else store.t.jobs
    # A literal state: the partial ready index only matches a constant.
    rows = conn.execute(
        f"SELECT route, priority, name, count(*) FROM {source} WHERE state = '{state}' "
        "GROUP BY 1, 2, 3"
    ).fetchall()
    return {(lane(str(r), str(p)), str(n)): int(c) for r, p, n, c in rows}


def _count_state(conn: sqlite3.Connection, store: Store, state: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {store.t.jobs} WHERE state = ?", (state,)).fetchone()
    return int(row[0])


def stats(store: Store) -> BrokerStats:
    with store.snapshot() as conn:
        depths = _grouped(conn, store, "queued")
        out = BrokerStats(
            ready={q: depths.get(q, 0) for q in members(conn, store)},
            unrouted=dict.fromkeys(PRIORITIES, 0),
            scheduled=_count_state(conn, store, "scheduled"),
            active=_count_state(conn, store, "running"),
            dead=_count_state(conn, store, "dead"),
        )
        row = conn.execute(f"SELECT count(*) FROM {store.t.completed}").fetchone()
        out.completed = int(row[0])
        out.cancelled = _count_state(conn, store, "cancelled")
    return out


def active_by_queue(store: Store) -> dict[QueueRef, int]:
    return _grouped(store.conn, store, "running")


def oldest_ready_age(store: Store, now: float) -> dict[str, float]:
    """Age of the next job to run on each queue (what Redis reads at the list's end)."""
    ages = dict.fromkeys(PRIORITIES, 0.0)
    with store.snapshot() as conn:
        for queue in members(conn, store):
            _, priority, _ = spot = where(queue)
            row = conn.execute(
                f"""SELECT record FROM {store.t.ready}
                    WHERE state = 'queued' AND route = ? AND priority = ? AND name = ?
                    ORDER BY at LIMIT 1""",
                spot,
            ).fetchone()
            created = created_at(row[0]) if row else None
            if created is not None:
                ages[priority] = max(ages.get(priority, 0.0), now - created)
    return ages


def throughput(store: Store, minutes: int, now: float) -> list[Throughput]:
    now_minute = int(now // 60)
    first = max(now_minute - minutes + 1, int((now - THROUGHPUT_KEEP_S) // 60))
    rows = store.conn.execute(
        f"""SELECT minute, completed, failed FROM {store.t.throughput}
            WHERE minute BETWEEN ? AND ?""",
        (first, now_minute),
    ).fetchall()
    counts = {int(m): (int(c), int(f)) for m, c, f in rows}
    return [
        Throughput(m, *counts.get(m, (0, 0)))
        for m in range(now_minute - minutes + 1, now_minute + 1)
    ]


# -- listings ------------------------------------------------------------------------
def list_queued(store: Store, offset: int, limit: int, job_type: str | None) -> list[JobSummary]:
    """Queue by queue in Redis' order, next to run first within each queue."""
    out: list[JobSummary] = []
    skip = offset
    with store.snapshot() as conn:
        depths = _grouped(conn, store, "queued")
        for queue in members(conn, store):
            route, priority, name = where(queue)
            if len(out) >= limit:
                break
            if job_type is not None and name != job_type:
                continue
            depth = depths.get(queue, 0)
            if skip >= depth:
                skip -= depth
                continue
            # Paged on the index alone; only the rows shown are read.
            rows = conn.execute(
                f"""SELECT j.id, j.record FROM (
                        SELECT id, at FROM {store.t.ready}
                        WHERE state = 'queued' AND route = ? AND priority = ? AND name = ?
                        ORDER BY at LIMIT ? OFFSET ?) page
                    JOIN {store.t.jobs} j ON j.id = page.id ORDER BY page.at""",
                (route, priority, name, limit - len(out), skip),
            ).fetchall()
            out += [JobSummary(i, "queued", 0, rec, priority, name) for i, rec in rows]
            skip = 0
    return out


# state -> (sort order, factor from `at` to ms)
_INDEXED = {
    "running": ("at, id", 1.0),
    "scheduled": ("at, id", 1000.0),
    "dead": ("at DESC, id DESC", 1.0),
}


def list_indexed(
    store: Store, state: str, offset: int, limit: int, job_type: str | None, now: float
) -> list[JobSummary]:
    if state == "completed":
        return _list_completed(store, offset, limit, job_type, now)
    order, factor = _INDEXED[state]
    where, args = _type_filter(job_type)
    rows = store.conn.execute(
        f"""SELECT id, at, record FROM {store.t.jobs} WHERE state = ? {where}
            ORDER BY {order} LIMIT ? OFFSET ?""",
        (state, *args, limit, offset),
    ).fetchall()
    return [_summary(i, state, int(at * factor), rec) for i, at, rec in rows]


def _type_filter(job_type: str | None, column: str = "name") -> tuple[str, tuple[str, ...]]:
    return ("", ()) if job_type is None else (f"AND {column} = ?", (job_type,))


def _summary(job_id: str, state: str, when_ms: int, rec: bytes | None) -> JobSummary:
    return JobSummary(job_id, state, when_ms, rec, _field(rec, "priority"), _field(rec, "name"))


def _completed_from(store: Store, job_type: str | None) -> tuple[str, tuple[Any, ...]]:
    """The completed index joined to live records (an expired record reads as none)."""
    t = store.t
    where, args = _type_filter(job_type, "j.name")
    sql = f"""FROM {t.completed} c LEFT JOIN {t.jobs} j
              ON j.id = c.id AND (j.expires IS NULL OR j.expires > ?)
              WHERE 1 {where}"""
    return sql, args


def _list_completed(
    store: Store, offset: int, limit: int, job_type: str | None, now: float
) -> list[JobSummary]:
    source, args = _completed_from(store, job_type)
    rows = store.conn.execute(
        f"SELECT c.id, c.at_ms, j.record {source} ORDER BY c.seq DESC LIMIT ? OFFSET ?",
        (now, *args, limit, offset),
    ).fetchall()
    return [_summary(i, "completed", int(at), rec) for i, at, rec in rows]


def count_jobs(store: Store, state: str, job_type: str | None, now: float) -> int:
    if state == "completed":
        source, args = _completed_from(store, job_type)
        row = store.conn.execute(f"SELECT count(*) {source}", (now, *args)).fetchone()
        return int(row[0])
    where, targs = _type_filter(job_type)
    row = store.conn.execute(
        f"SELECT count(*) FROM {store.t.jobs} WHERE state = ? {where}", (state, *targs)
    ).fetchone()
    return int(row[0])


def list_dead(store: Store, offset: int, limit: int) -> list[DeadLetter]:
    rows = store.conn.execute(
        f"""SELECT id, at, dead_info, record FROM {store.t.jobs} WHERE state = 'dead'
            ORDER BY at DESC, id DESC LIMIT ? OFFSET ?""",
        (limit, offset),
    ).fetchall()
    return [DeadLetter(i, int(at), DeadInfo.decode(info), rec) for i, at, info, rec in rows]


def live_workers(store: Store, cutoff_ms: int) -> list[tuple[str, bytes, int]]:
    """Registry entries heard from since the cutoff, oldest first."""
    rows = store.conn.execute(
        f"SELECT id, info, seen_ms FROM {store.t.workers} WHERE seen_ms >= ? ORDER BY seen_ms, id",
        (cutoff_ms,),
    ).fetchall()
    return [(str(i), bytes(info), int(seen)) for i, info, seen in rows]
