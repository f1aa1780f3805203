"""State transitions of the SQLite broker, one transaction each.

Each function mirrors one script in lua/ (same name) and keeps its semantics:
a transition either happens completely or not at all, and a lease token that
no longer matches refuses the change. Functions run on the broker's database
thread and take the clock from their caller, so one transition sees one time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ..vocabulary import PRIORITY_NAMES
from .base import DeadInfo, Delivery, NewJob, QueueRef, Recovered
from .sqlite_db import Store, Tables

# Counters of a minute are kept as long as Redis keeps its throughput hashes.
THROUGHPUT_KEEP_S = 7200


@dataclass(frozen=True, slots=True)
class Clock:
    """One instant, in every form a transition needs."""

    now: float  # unix seconds
    iso: str  # ISO 8601, for completed_at / failed_at

    @property
    def ms(self) -> int:
        return int(self.now * 1000)

    @property
    def minute(self) -> int:
        return int(self.now // 60)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a finished attempt stores as its result."""

    status: str
    duration_ms: float
    ttl: int
    result: bytes | None = None
    error: str | None = None


# -- shared helpers ----------------------------------------------------------
def _holds(conn: sqlite3.Connection, t: Tables, job_id: str, token: str) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM {t.jobs} WHERE id = ? AND state = 'running' AND token = ?",
        (job_id, token),
    ).fetchone()
    return row is not None


def _tail(conn: sqlite3.Connection, t: Tables, queue: QueueRef) -> float:
    """Position behind the last queued job (LPUSH: runs after all of them)."""
    row = conn.execute(
        f"SELECT max(at) FROM {t.ready} WHERE state = 'queued' AND priority = ? AND name = ?",
        queue,
    ).fetchone()
    return 0.0 if row[0] is None else float(row[0]) + 1


def _head(conn: sqlite3.Connection, t: Tables, queue: QueueRef) -> float:
    """Position before the next queued job (RPUSH: runs before all of them)."""
    row = conn.execute(
        f"SELECT min(at) FROM {t.ready} WHERE state = 'queued' AND priority = ? AND name = ?",
        queue,
    ).fetchone()
    return 0.0 if row[0] is None else float(row[0]) - 1


def _add_queue(conn: sqlite3.Connection, t: Tables, queue: QueueRef) -> None:
    conn.execute(f"INSERT OR IGNORE INTO {t.queues} (priority, name) VALUES (?, ?)", queue)


def _make_ready(
    conn: sqlite3.Connection, t: Tables, job_id: str, queue: QueueRef, *, head: bool
) -> None:
    at = _head(conn, t, queue) if head else _tail(conn, t, queue)
    conn.execute(
        f"""UPDATE {t.jobs} SET state = 'queued', priority = ?, name = ?, at = ?, token = NULL
            WHERE id = ?""",
        (*queue, at, job_id),
    )
    _add_queue(conn, t, queue)


def _set_result(
    conn: sqlite3.Connection, t: Tables, job_id: str, clock: Clock, outcome: Outcome
) -> None:
    conn.execute(
        f"""INSERT OR REPLACE INTO {t.results}
            (id, status, completed_at, duration_ms, result, error, expires)
            VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (
            job_id,
            outcome.status,
            clock.iso,
            # Redis stores "%.3f" text; round the same way so both read back equal.
            float(f"{outcome.duration_ms:.3f}"),
            outcome.result,
            outcome.error,
            clock.now + outcome.ttl,
        ),
    )


def _count(conn: sqlite3.Connection, t: Tables, clock: Clock, column: str) -> None:
    conn.execute(
        f"""INSERT INTO {t.throughput} (minute, {column}) VALUES (?, 1)
            ON CONFLICT (minute) DO UPDATE SET {column} = {column} + 1""",
        (clock.minute,),
    )


def _bury_lost(
    conn: sqlite3.Connection,
    t: Tables,
    job_id: str,
    reason: str,
    clock: Clock,
    ttl: int,
    where: tuple[str, str] = ("", ""),
) -> None:
    """Dead-letter a job the broker itself gave up on (lua/_route.lua `bury`).
    The record is left as it was, for inspection."""
    info = DeadInfo(
        reason=reason,
        error=reason,
        failed_at=clock.iso,
        priority=where[0],
        name=where[1],
        source="broker",
    )
    conn.execute(
        f"""UPDATE {t.jobs} SET state = 'dead', at = ?, token = NULL, dead_info = ?
            WHERE id = ?""",
        (clock.ms, info.encode(), job_id),
    )
    _set_result(conn, t, job_id, clock, Outcome("failed", 0.0, ttl, error=reason))


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
        _bury_lost(conn, t, job_id, reason, clock, ttl, ("", name))
        return False
    _make_ready(conn, t, job_id, (priority, name), head=False)
    return True


# -- client ------------------------------------------------------------------
def enqueue(store: Store, jobs: Sequence[NewJob], clock: Clock) -> list[bool]:
    with store.write() as conn:
        return [_insert(conn, store.t, job, clock) for job in jobs]


def _insert(conn: sqlite3.Connection, t: Tables, job: NewJob, clock: Clock) -> bool:
    row = conn.execute(f"SELECT expires FROM {t.jobs} WHERE id = ?", (job.id,)).fetchone()
    if row is not None:
        if row[0] is None or row[0] > clock.now:
            return False  # idempotent by id: the record still exists
        # A completed job whose record expired: the id is free again, as in Redis.
        conn.execute(f"DELETE FROM {t.jobs} WHERE id = ?", (job.id,))
    queue = (job.priority, job.name)
    if job.due is None:
        state, at = "queued", _tail(conn, t, queue)
    else:
        state, at = "scheduled", job.due
    conn.execute(
        f"""INSERT INTO {t.jobs} (id, record, state, priority, name, at)
            VALUES (?, ?, ?, ?, ?, ?)""",
        (job.id, job.record, state, job.priority, job.name, at),
    )
    _add_queue(conn, t, queue)
    return True


# -- worker --------------------------------------------------------------------
def dequeue(
    store: Store, queues: Sequence[QueueRef], count: int, deadline_ms: int, token_prefix: str
) -> list[Delivery]:
    t = store.t
    out: list[Delivery] = []
    with store.write() as conn:
        for queue in queues:
            if len(out) >= count:
                break
            rows = conn.execute(
                f"""SELECT id, record FROM {t.ready}
                    WHERE state = 'queued' AND priority = ? AND name = ?
                    ORDER BY at LIMIT ?""",
                (*queue, count - len(out)),
            ).fetchall()
            for job_id, record in rows:
                token = f"{token_prefix}{len(out) + 1}"
                conn.execute(
                    f"UPDATE {t.jobs} SET state = 'running', at = ?, token = ? WHERE id = ?",
                    (deadline_ms, token, job_id),
                )
                out.append(Delivery(job_id, record, token))
    return out


def extend(store: Store, leases: Sequence[tuple[str, str]], deadline_ms: int) -> list[str]:
    lost = []
    with store.write() as conn:
        for job_id, token in leases:
            cur = conn.execute(
                f"""UPDATE {store.t.jobs} SET at = ?
                    WHERE id = ? AND state = 'running' AND token = ?""",
                (deadline_ms, job_id, token),
            )
            if cur.rowcount == 0:
                lost.append(job_id)
    return lost


def complete(
    store: Store, delivery: Delivery, record: bytes, outcome: Outcome, clock: Clock, keep: int
) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return False
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'completed', record = ?, at = ?, token = NULL,
                stalls = 0, expires = ? WHERE id = ?""",
            (record, clock.ms, clock.now + outcome.ttl, delivery.id),
        )
        _set_result(conn, t, delivery.id, clock, outcome)
        conn.execute(f"DELETE FROM {t.completed} WHERE id = ?", (delivery.id,))
        cur = conn.execute(
            f"INSERT INTO {t.completed} (id, at_ms) VALUES (?, ?)", (delivery.id, clock.ms)
        )
        conn.execute(f"DELETE FROM {t.completed} WHERE seq <= ?", ((cur.lastrowid or 0) - keep,))
        _count(conn, t, clock, "completed")
    return True


def retry(store: Store, delivery: Delivery, record: bytes, due: float, clock: Clock) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return False
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'scheduled', record = ?, at = ?, token = NULL,
                expires = NULL WHERE id = ?""",
            (record, due, delivery.id),
        )
        _count(conn, t, clock, "failed")
    return True


def bury(
    store: Store,
    delivery: Delivery,
    record: bytes | None,
    info: DeadInfo,
    outcome: Outcome,
    clock: Clock,
) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return False
        if record:
            conn.execute(
                f"UPDATE {t.jobs} SET record = ?, expires = NULL WHERE id = ?",
                (record, delivery.id),
            )
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'dead', at = ?, token = NULL, stalls = 0,
                dead_info = ? WHERE id = ?""",
            (clock.ms, info.encode(), delivery.id),
        )
        _set_result(conn, t, delivery.id, clock, outcome)
        _count(conn, t, clock, "failed")
    return True


def requeue(store: Store, deliveries: Sequence[Delivery]) -> int:
    t = store.t
    n = 0
    with store.write() as conn:
        for d in deliveries:
            row = conn.execute(
                f"""SELECT priority, name FROM {t.jobs}
                    WHERE id = ? AND state = 'running' AND token = ?""",
                (d.id, d.token),
            ).fetchone()
            if row is not None:
                _make_ready(conn, t, d.id, (row[0], row[1]), head=True)
                n += 1
    return n


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


def recover(store: Store, max_stalls: int, limit: int, clock: Clock, ttl: int) -> Recovered:
    t = store.t
    report = Recovered([], [])
    with store.write() as conn:
        rows = conn.execute(
            f"""SELECT id, stalls, priority, name FROM {t.jobs}
                WHERE state = 'running' AND at <= ? ORDER BY at, id LIMIT ?""",
            (clock.ms, limit),
        ).fetchall()
        for job_id, stalls, priority, name in rows:
            stalls += 1
            if stalls >= max_stalls:
                conn.execute(f"UPDATE {t.jobs} SET stalls = 0 WHERE id = ?", (job_id,))
                reason = (
                    f"worker lost while running the job {stalls} times "
                    f"(MAX_STALLS={max_stalls}): it may be crashing its worker"
                )
                _bury_lost(conn, t, job_id, reason, clock, ttl)
                report.buried.append(job_id)
            else:
                conn.execute(f"UPDATE {t.jobs} SET stalls = ? WHERE id = ?", (stalls, job_id))
                _make_ready(conn, t, job_id, (priority, name), head=True)
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
            f"DELETE FROM {t.throughput} WHERE minute < ?",
            (int((now - THROUGHPUT_KEEP_S) // 60),),
        )


# -- dead letters ------------------------------------------------------------------
def delete_dead(store: Store, job_id: str) -> bool:
    t = store.t
    with store.write() as conn:
        cur = conn.execute(f"DELETE FROM {t.jobs} WHERE id = ? AND state = 'dead'", (job_id,))
        if cur.rowcount == 0:
            return False
        conn.execute(f"DELETE FROM {t.results} WHERE id = ?", (job_id,))
    return True


def replay(store: Store, job_id: str, record: bytes, queue: QueueRef) -> bool:
    t = store.t
    with store.write() as conn:
        cur = conn.execute(
            f"""UPDATE {t.jobs} SET record = ?, stalls = 0, dead_info = NULL, expires = NULL
                WHERE id = ? AND state = 'dead'""",
            (record, job_id),
        )
        if cur.rowcount == 0:
            return False
        conn.execute(f"DELETE FROM {t.results} WHERE id = ?", (job_id,))
        _make_ready(conn, t, job_id, queue, head=False)
    return True


# -- registry ----------------------------------------------------------------------
def register_types(store: Store, names: Sequence[str], now_ms: int) -> None:
    with store.write() as conn:
        conn.executemany(
            f"""INSERT INTO {store.t.types} (name, at_ms) VALUES (?, ?)
                ON CONFLICT (name) DO UPDATE SET at_ms = excluded.at_ms""",
            [(name, now_ms) for name in names],
        )


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
