"""State transitions of the SQLite broker's worker path, one transaction each
(the upkeep ones are in sqlite_upkeep.py).

Each function mirrors one script in lua/ (same name) and keeps its semantics:
a transition either happens completely or not at all, and a lease token that
no longer matches refuses the change. Functions run on the broker's database
thread and take the clock from their caller, so one transition sees one time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from ..errors import CancelRequested
from ..job import wire_durations
from ..keys import split_lane
from ..routes import DEFAULT_ROUTE
from . import sqlite_unique as unique
from .records import DeadInfo, Delivery, NewJob, QueueRef
from .sqlite_db import Store, Tables


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
# A lease's token is stored as "~<token>" while the job has not started (it
# sits in a worker's prefetch buffer): the recoverer charges it no stall. A
# settled job keeps the token of the outcome that settled it, so an outcome
# sent again (its reply was lost) is answered done, as on Redis.
def _holds(conn: sqlite3.Connection, t: Tables, job_id: str, token: str) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM {t.jobs} WHERE id = ? AND state = 'running' AND token IN (?, ?)",
        (job_id, token, "~" + token),
    ).fetchone()
    return row is not None


def _settled_by(conn: sqlite3.Connection, t: Tables, job_id: str, token: str, state: str) -> bool:
    """The job is in `state`, settled by the lease `token`: its own outcome again."""
    row = conn.execute(
        f"SELECT 1 FROM {t.jobs} WHERE id = ? AND state = ? AND token = ?",
        (job_id, state, token),
    ).fetchone()
    return row is not None


After = Callable[[sqlite3.Connection], None] | None
"""More of the same transaction: a workflow member's move (sqlite_workflows.py)."""

Where = tuple[str, str, str]
"""A queue as the tables name it: (route, priority, job type)."""


def where(queue: QueueRef) -> Where:
    """A QueueRef (lane, type) as (route, priority, type): see keys.lane."""
    route, priority = split_lane(queue[0])
    return (route, priority, queue[1])


def _tail(conn: sqlite3.Connection, t: Tables, queue: Where) -> float:
    """Position behind the last queued job (LPUSH: runs after all of them)."""
    row = conn.execute(
        f"SELECT max(at) FROM {t.ready} WHERE state = 'queued' AND route = ? AND priority = ? "
        "AND name = ?",
        queue,
    ).fetchone()
    return 0.0 if row[0] is None else float(row[0]) + 1


def _head(conn: sqlite3.Connection, t: Tables, queue: Where) -> float:
    """Position before the next queued job (RPUSH: runs before all of them)."""
    row = conn.execute(
        f"SELECT min(at) FROM {t.ready} WHERE state = 'queued' AND route = ? AND priority = ? "
        "AND name = ?",
        queue,
    ).fetchone()
    return 0.0 if row[0] is None else float(row[0]) - 1


def _add_queue(conn: sqlite3.Connection, t: Tables, queue: Where) -> None:
    conn.execute(
        f"INSERT OR IGNORE INTO {t.queues} (route, priority, name) VALUES (?, ?, ?)", queue
    )


def _make_ready(
    conn: sqlite3.Connection, t: Tables, job_id: str, queue: Where, *, head: bool
) -> None:
    at = _head(conn, t, queue) if head else _tail(conn, t, queue)
    conn.execute(
        f"""UPDATE {t.jobs} SET state = 'queued', route = ?, priority = ?, name = ?, at = ?,
            token = NULL
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
            # Whole microseconds, as Redis' duration_us: both read back equal.
            int(wire_durations(outcome.duration_ms)[1]) / 1000,
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
    if job.unique is not None:
        holder = unique.take(conn, t, job.unique, job.id, job.unique_ms, clock.now)
        if holder is not None:
            job.duplicate_of = holder
            return False
    queue = (job.route or DEFAULT_ROUTE, job.priority, job.name)
    if job.due is not None:
        state, at = "scheduled", job.due
    elif job.delay is not None:
        state, at = "scheduled", clock.now + job.delay
    else:
        state, at = "queued", _tail(conn, t, queue)
    conn.execute(
        f"""INSERT INTO {t.jobs} (id, record, state, route, priority, name, at)
            VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (job.id, job.record, state, *queue, at),
    )
    _add_queue(conn, t, queue)
    return True


# -- worker --------------------------------------------------------------------
def dequeue(
    store: Store,
    queues: Sequence[QueueRef],
    count: int,
    deadline_ms: int,
    token_prefix: str,
    start: int | None = None,
) -> list[Delivery]:
    start = count if start is None else start
    t = store.t
    out: list[Delivery] = []
    with store.write() as conn:
        for queue in queues:
            if len(out) >= count:
                break
            rows = conn.execute(
                f"""SELECT id, record FROM {t.ready}
                    WHERE state = 'queued' AND route = ? AND priority = ? AND name = ?
                    ORDER BY at LIMIT ?""",
                (*where(queue), count - len(out)),
            ).fetchall()
            for job_id, record in rows:
                token = f"{token_prefix}{len(out) + 1}"
                stored = token if len(out) < start else "~" + token
                conn.execute(
                    f"UPDATE {t.jobs} SET state = 'running', at = ?, token = ? WHERE id = ?",
                    (deadline_ms, stored, job_id),
                )
                out.append(Delivery(job_id, record, token))
    return out


def extend(
    store: Store,
    leases: Sequence[tuple[str, str]],
    deadline_ms: int,
    started: Collection[str] = (),
) -> list[str]:
    lost = []
    with store.write() as conn:
        for job_id, token in leases:
            cur = conn.execute(
                f"""UPDATE {store.t.jobs} SET at = ?, token = CASE WHEN ? THEN ? ELSE token END
                    WHERE id = ? AND state = 'running' AND token IN (?, ?)""",
                (deadline_ms, job_id in started, token, job_id, token, "~" + token),
            )
            if cur.rowcount == 0:
                lost.append(job_id)
    return lost


def complete(
    store: Store,
    delivery: Delivery,
    record: bytes,
    outcome: Outcome,
    clock: Clock,
    keep: int,
    after: After = None,
) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return _settled_by(conn, t, delivery.id, delivery.token, "completed")
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'completed', record = ?, at = ?, token = ?,
                stalls = 0, expires = ? WHERE id = ?""",
            (record, clock.ms, delivery.token, clock.now + outcome.ttl, delivery.id),
        )
        _set_result(conn, t, delivery.id, clock, outcome)
        conn.execute(f"DELETE FROM {t.completed} WHERE id = ?", (delivery.id,))
        cur = conn.execute(
            f"INSERT INTO {t.completed} (id, at_ms) VALUES (?, ?)", (delivery.id, clock.ms)
        )
        conn.execute(f"DELETE FROM {t.completed} WHERE seq <= ?", ((cur.lastrowid or 0) - keep,))
        _count(conn, t, clock, "completed")
        unique.release(conn, t, [delivery.id])
        if after is not None:
            after(conn)
    return True


def retry(store: Store, delivery: Delivery, record: bytes, delay: float, clock: Clock) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return _settled_by(conn, t, delivery.id, delivery.token, "scheduled")
        cancelled = conn.execute(f"SELECT 1 FROM {t.cancels} WHERE id = ?", (delivery.id,))
        if cancelled.fetchone() is not None:  # nothing written: the worker settles it cancelled
            raise CancelRequested(f"job {delivery.id} was cancelled: not retried")
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'scheduled', record = ?, at = ?, token = ?,
                expires = NULL WHERE id = ?""",
            (record, clock.now + delay, delivery.token, delivery.id),
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
    after: After = None,
) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return _settled_by(conn, t, delivery.id, delivery.token, "dead")
        if record:
            conn.execute(
                f"UPDATE {t.jobs} SET record = ?, expires = NULL WHERE id = ?",
                (record, delivery.id),
            )
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'dead', at = ?, token = ?, stalls = 0,
                dead_info = ? WHERE id = ?""",
            (clock.ms, delivery.token, info.encode(), delivery.id),
        )
        _set_result(conn, t, delivery.id, clock, outcome)
        _count(conn, t, clock, "failed")
        unique.release(conn, t, [delivery.id])
        if after is not None:
            after(conn)
    return True


def requeue(store: Store, deliveries: Sequence[Delivery]) -> int:
    t = store.t
    n = 0
    with store.write() as conn:
        for d in deliveries:
            row = conn.execute(
                f"""SELECT route, priority, name FROM {t.jobs}
                    WHERE id = ? AND state = 'running' AND token IN (?, ?)""",
                (d.id, d.token, "~" + d.token),
            ).fetchone()
            if row is not None:
                _make_ready(conn, t, d.id, (row[0], row[1], row[2]), head=True)
                n += 1
    return n
