"""Upkeep transitions of the SQLite broker, one transaction each: recovery
of expired leases, due jobs, expiry, dead letters and the worker registry
(lua/recover.lua, move_due.lua, replay.lua, delete_dead.lua, heartbeat.lua,
prune_workers.lua)."""

from __future__ import annotations

import sqlite3

import orjson

from ..routes import DEFAULT_ROUTE, check_route
from ..vocabulary import PRIORITY_NAMES
from . import sqlite_unique as unique
from . import sqlite_workflows as wf
from .records import (
    THROUGHPUT_KEEP_S,
    DeadInfo,
    QueueRef,
    Recovered,
    Unique,
    stall_reason,
    stalled_record,
)
from .sqlite_db import Store, Tables
from .sqlite_ops import Clock, Outcome, Where, _make_ready, _set_result, where


def _bury_lost(
    conn: sqlite3.Connection,
    t: Tables,
    job_id: str,
    reason: str,
    clock: Clock,
    ttl: int,
    where: tuple[str, str, str] = ("", "", ""),
) -> None:
    """Dead-letter a job the broker itself gave up on (lua/_route.lua `bury`).
    The record is left as it was, for inspection."""
    info = DeadInfo(
        reason=reason,
        error=reason,
        failed_at=clock.iso,
        priority=where[1],
        name=where[2],
        source="broker",
    )
    conn.execute(
        f"""UPDATE {t.jobs} SET state = 'dead', at = ?, token = NULL, dead_info = ?
            WHERE id = ?""",
        (clock.ms, info.encode(), job_id),
    )
    _set_result(conn, t, job_id, clock, Outcome("failed", 0.0, ttl, error=reason))
    unique.release(conn, t, [job_id])  # a dead letter is final


def _route(
    conn: sqlite3.Connection, t: Tables, job_id: str, raw: bytes | None, clock: Clock, ttl: int
) -> bool:
    """Make a job ready on the queue its record names, or bury it with the reason
    (lua/_route.lua `route`, without the foreign-type check: nothing foreign
    reaches a SQLite file)."""
    if raw is None:
        _bury_lost(conn, t, job_id, "no job record stored for this id", clock, ttl)
        return False
    try:
        rec = orjson.loads(raw)
    except orjson.JSONDecodeError:
        rec = None
    if not isinstance(rec, dict | list):
        _bury_lost(conn, t, job_id, "record is not a JSON object", clock, ttl)
        return False
    fields = rec if isinstance(rec, dict) else {}
    name = fields.get("name")
    if not isinstance(name, str) or not name:
        reason = "record has no job type (field 'name' missing or not a string)"
        _bury_lost(conn, t, job_id, reason, clock, ttl)
        return False
    priority = fields.get("priority")
    if priority is None:
        priority = "normal"
    if not isinstance(priority, str) or priority not in PRIORITY_NAMES:
        reason = f"unknown priority {priority} (expected high, normal or low)"
        _bury_lost(conn, t, job_id, reason, clock, ttl, ("", "", name))
        return False
    route = fields.get("routing_key") or DEFAULT_ROUTE
    try:
        check_route(route, "field 'routing_key'")
    except ValueError as exc:
        _bury_lost(conn, t, job_id, str(exc), clock, ttl, (route, priority, name))
        return False
    _make_ready(conn, t, job_id, (str(route), priority, name), head=False)
    return True


# -- scheduler / recovery ------------------------------------------------------
def _any_due(store: Store, state: str, until: float) -> bool:
    """Read-only pre-check, so idle recoverers and schedulers never queue for
    the write lock: is any job in `state` with `at` <= until?"""
    row = store.conn.execute(
        f"SELECT 1 FROM {store.t.jobs} WHERE state = ? AND at <= ? LIMIT 1", (state, until)
    ).fetchone()
    return row is not None


def has_expired(store: Store, now_ms: int) -> bool:
    return _any_due(store, "running", now_ms)


def _bury_stalled(
    conn: sqlite3.Connection,
    t: Tables,
    job_id: str,
    where: Where,
    raw: bytes | None,
    reason: str,
    clock: Clock,
    ttl: int,
) -> None:
    """A job whose worker kept dying: dead info with its type and priority,
    record failed (lua/recover.lua and RedisBroker.recover_expired)."""
    conn.execute(f"UPDATE {t.jobs} SET stalls = 0 WHERE id = ?", (job_id,))
    _bury_lost(conn, t, job_id, reason, clock, ttl, where)
    record = stalled_record(raw, reason)
    if record is not None:
        conn.execute(f"UPDATE {t.jobs} SET record = ? WHERE id = ?", (record, job_id))
    wf.settle_raw(conn, t, raw, job_id, "failed", reason, clock, ttl)  # a workflow's step


def recover(store: Store, max_stalls: int, limit: int, clock: Clock, ttl: int) -> Recovered:
    t = store.t
    report = Recovered([], [])
    with store.write() as conn:
        rows = conn.execute(
            f"""SELECT id, stalls, route, priority, name, record, token FROM {t.jobs}
                WHERE state = 'running' AND at <= ? ORDER BY at, id LIMIT ?""",
            (clock.ms, limit),
        ).fetchall()
        for job_id, stalls, route, priority, name, raw, token in rows:
            # A stall is charged only to a job that started ("~" marks a lease
            # of a prefetched job its worker never ran).
            started = not (token or "").startswith("~")
            stalls += started
            if started and stalls >= max_stalls:
                reason = stall_reason(stalls, max_stalls)
                queue = (route, priority, name)
                _bury_stalled(conn, t, job_id, queue, raw, reason, clock, ttl)
                report.buried.append(job_id)
            else:
                conn.execute(f"UPDATE {t.jobs} SET stalls = ? WHERE id = ?", (stalls, job_id))
                _make_ready(conn, t, job_id, (route, priority, name), head=True)
                report.recovered.append(job_id)
    return report


def has_due(store: Store, now: float) -> bool:
    return _any_due(store, "scheduled", now)


def move_due(store: Store, limit: int, clock: Clock, ttl: int) -> tuple[int, bool]:
    """Route up to `limit` due jobs; returns (how many moved or buried, more due?)."""
    t = store.t
    with store.write() as conn:
        rows = conn.execute(
            f"""SELECT id, record FROM {t.jobs}
                WHERE state = 'scheduled' AND at <= ? ORDER BY at, id LIMIT ?""",
            (clock.now, limit),
        ).fetchall()
        for job_id, record in rows:
            _route(conn, t, job_id, record, clock, ttl)
    return len(rows), len(rows) == limit


def purge(store: Store, now: float, limit: int = 1000, ttl: float | None = None) -> None:
    """Drop what Redis would have expired: completed records, results, old counters,
    and completions older than the result TTL (their records are gone)."""
    t = store.t
    with store.write() as conn:
        if ttl is not None:
            conn.execute(f"DELETE FROM {t.completed} WHERE at_ms < ?", (int((now - ttl) * 1000),))
        unique.purge(conn, t, now, limit)
        conn.execute(
            f"""DELETE FROM {t.jobs} WHERE id IN (SELECT id FROM {t.jobs}
                WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)""",
            (now, limit),
        )
        conn.execute(
            f"""DELETE FROM {t.results} WHERE id IN (SELECT id FROM {t.results}
                WHERE expires <= ? LIMIT ?)""",
            (now, limit),
        )
        conn.execute(
            f"""DELETE FROM {t.progress} WHERE id IN (SELECT id FROM {t.progress}
                WHERE expires <= ? LIMIT ?)""",
            (now, limit),
        )
        conn.execute(
            f"DELETE FROM {t.throughput} WHERE minute < ?",
            (int((now - THROUGHPUT_KEEP_S) // 60),),
        )


# -- dead letters ------------------------------------------------------------------
def delete_dead(store: Store, job_id: str, clock: Clock | None = None, ttl: int = 86400) -> bool:
    t = store.t
    with store.write() as conn:
        cur = conn.execute(
            f"DELETE FROM {t.jobs} WHERE id = ? AND state = 'dead' RETURNING record", (job_id,)
        )
        gone = cur.fetchone()
        if gone is None:
            return False
        conn.execute(f"DELETE FROM {t.results} WHERE id = ?", (job_id,))
        unique.release(conn, t, [job_id])
        if clock is not None:  # a workflow's step: a no-op after its bury reached it
            reason = "deleted from the dead letters"
            wf.settle_raw(conn, t, gone[0], job_id, "failed", reason, clock, ttl)
    return True


def replay(
    store: Store, job_id: str, record: bytes, queue: QueueRef, lock: Unique | None, now: float
) -> bool | str:
    """False: not a dead letter; a str: the job holding its unique key."""
    t = store.t
    with store.write() as conn:
        if lock is not None:
            dead = conn.execute(
                f"SELECT 1 FROM {t.jobs} WHERE id = ? AND state = 'dead'", (job_id,)
            ).fetchone()
            if dead is None:
                return False
            holder = unique.take(conn, t, lock[0], job_id, lock[1], now)
            if holder is not None:
                return holder
        cur = conn.execute(
            f"""UPDATE {t.jobs} SET record = ?, stalls = 0, dead_info = NULL, expires = NULL
                WHERE id = ? AND state = 'dead'""",
            (record, job_id),
        )
        if cur.rowcount == 0:
            return False
        conn.execute(f"DELETE FROM {t.results} WHERE id = ?", (job_id,))
        _make_ready(conn, t, job_id, where(queue), head=False)
    return True


# -- registry ----------------------------------------------------------------------
def heartbeat_worker(store: Store, worker_id: str, info: bytes, now_ms: int) -> None:
    with store.write() as conn:
        conn.execute(
            f"""INSERT INTO {store.t.workers} (id, info, seen_ms) VALUES (?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET info = excluded.info, seen_ms = excluded.seen_ms""",
            (worker_id, info, now_ms),
        )


def remove_worker(store: Store, worker_id: str) -> None:
    with store.write() as conn:
        conn.execute(f"DELETE FROM {store.t.workers} WHERE id = ?", (worker_id,))


def prune_workers(store: Store, cutoff_ms: int) -> list[tuple[str, bytes, int]]:
    """Drop entries last seen before the cutoff; list the live ones, oldest first."""
    t = store.t
    with store.write() as conn:
        conn.execute(f"DELETE FROM {t.workers} WHERE seen_ms < ?", (cutoff_ms,))
        rows = conn.execute(
            f"SELECT id, info, seen_ms FROM {t.workers} ORDER BY seen_ms, id"
        ).fetchall()
    return [(str(i), bytes(info), int(seen)) for i, info, seen in rows]
