"""Workflows on SQLite (docs/workflows.md), with the semantics of
lua/_wf.lua, wf_enqueue.lua and wf_cancel.lua. A member's final transition
(complete, bury, cancelled, cancel, the recoverer's bury, a dead letter's
deletion) calls `settle` inside its own transaction: the job's outcome and
its workflow's move are one commit.

Two tables, created with the first workflow (a file that never had one
has neither, and nothing else reads them): `wf` (one row per workflow) and
`wf_steps` (one per step: its state, its dependents, the record of a step
still waiting, its result once final)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from ..keys import split_lane
from .records import NewJob
from .sqlite_db import Store, Tables
from .sqlite_ops import Clock, Outcome, _insert, _set_result
from .workflow_records import (
    FINAL_STEP_STATES,
    StepView,
    WorkflowHead,
    WorkflowPlan,
    WorkflowView,
    failed_value,
    member_of_raw,
    started_from,
)

T = TypeVar("T")


def names(t: Tables) -> tuple[str, str]:
    return t.name("wf"), t.name("wf_steps")


def _bump(conn: sqlite3.Connection, t: Tables, state: str, n: int) -> None:
    conn.execute(
        f"""INSERT INTO {t.name("wf_counts")} (state, n) VALUES (?, ?)
            ON CONFLICT (state) DO UPDATE SET n = n + excluded.n""",
        (state, n),
    )


def ensure(conn: sqlite3.Connection, t: Tables) -> None:
    wf, steps = names(t)
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {wf} (
            id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL, policy TEXT NOT NULL,
            total INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0, output BLOB NOT NULL,
            created_ms INTEGER NOT NULL, finished_ms INTEGER, failed_step TEXT, error TEXT,
            expires REAL)"""
    )
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {steps} (
            id TEXT PRIMARY KEY NOT NULL, wf TEXT NOT NULL, seq INTEGER NOT NULL,
            name TEXT NOT NULL, lane TEXT NOT NULL, state TEXT NOT NULL, wait INTEGER NOT NULL,
            next TEXT NOT NULL, record BLOB, info BLOB NOT NULL, result BLOB)"""
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {t.name('wf_steps:wf')} ON {steps} (wf, seq)")
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {t.name("wf_counts")} (
            state TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL) WITHOUT ROWID"""
    )


def _missing(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


# -- transitions -----------------------------------------------------------------
def enqueue(store: Store, plan: WorkflowPlan, clock: Clock) -> None:
    t = store.t
    wf, steps = names(t)
    dependents = plan.dependents()
    with store.write() as conn:
        ensure(conn, t)
        _purge(conn, t, clock.now)
        conn.execute(
            f"""INSERT INTO {wf} (id, state, policy, total, output, created_ms)
                VALUES (?, 'running', ?, ?, ?, ?)""",
            (plan.id, plan.policy, len(plan.steps), orjson.dumps(plan.output), clock.ms),
        )
        _bump(conn, t, "running", 1)
        for seq, s in enumerate(plan.steps):
            conn.execute(
                f"""INSERT INTO {steps} (id, wf, seq, name, lane, state, wait, next, record, info)
                    VALUES (?, ?, ?, ?, ?, 'waiting', ?, ?, ?, ?)""",
                (
                    s.id,
                    plan.id,
                    seq,
                    s.name,
                    s.lane,
                    len(s.deps),
                    ",".join(dependents.get(s.id, ())),
                    s.record,
                    s.info(),
                ),
            )
        roots = conn.execute(
            f"SELECT id FROM {steps} WHERE wf = ? AND wait = 0 ORDER BY seq", (plan.id,)
        ).fetchall()
        for (step,) in roots:
            _release(conn, t, step, clock)


def _release(conn: sqlite3.Connection, t: Tables, step: str, clock: Clock) -> None:
    _, steps = names(t)
    row = conn.execute(
        f"SELECT name, lane, record FROM {steps} WHERE id = ? AND state = 'waiting'", (step,)
    ).fetchone()
    if row is None:
        return
    name, lane, record = row
    route, priority = split_lane(lane)
    _insert(conn, t, NewJob(step, name, priority, record, route=route), clock)
    conn.execute(f"UPDATE {steps} SET state = 'queued', record = NULL WHERE id = ?", (step,))


def settle(
    conn: sqlite3.Connection,
    t: Tables,
    workflow_id: str,
    step: str,
    state: str,
    value: bytes | str | None,
    clock: Clock,
    ttl: int,
) -> None:
    """Step `step` ended in `state`; `value` is its result JSON (None for
    None) or its error text. Applied once per step (lua/_wf.lua)."""
    wf, steps = names(t)
    try:
        head = conn.execute(
            f"SELECT state, policy, total, done FROM {wf} WHERE id = ?", (workflow_id,)
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return
        raise
    if head is None:
        return
    was = conn.execute(f"SELECT state FROM {steps} WHERE id = ?", (step,)).fetchone()
    if was is None or was[0] in FINAL_STEP_STATES:
        return
    wstate, policy, total, done = head
    conn.execute(f"UPDATE {steps} SET state = ? WHERE id = ?", (state, step))
    conn.execute(f"UPDATE {wf} SET done = done + 1 WHERE id = ?", (workflow_id,))
    done += 1
    if wstate != "running":
        return
    if state == "completed":
        stored = value if value is not None else b"null"
    elif policy == "continue":
        stored = failed_value(step, state, str(value or ""))
    else:
        stop(conn, t, workflow_id, "failed", clock, ttl, step, str(value or ""))
        return
    conn.execute(f"UPDATE {steps} SET result = ? WHERE id = ?", (stored, step))
    nexts = conn.execute(f"SELECT next FROM {steps} WHERE id = ?", (step,)).fetchone()[0]
    for dep in filter(None, str(nexts).split(",")):
        left = conn.execute(
            f"UPDATE {steps} SET wait = wait - 1 WHERE id = ? RETURNING wait", (dep,)
        ).fetchone()
        if left is not None and left[0] <= 0:
            _release(conn, t, dep, clock)
    if done >= total:
        _finish(conn, t, workflow_id, "completed", clock, ttl)


def _cancel_job(conn: sqlite3.Connection, t: Tables, step: str, clock: Clock, ttl: int) -> None:
    _set_result(conn, t, step, clock, Outcome("cancelled", 0.0, ttl, error="cancelled"))


def stop(
    conn: sqlite3.Connection,
    t: Tables,
    workflow_id: str,
    state: str,
    clock: Clock,
    ttl: int,
    failed_step: str = "",
    error: str = "",
) -> None:
    """Waiting, queued and scheduled steps cancelled now; running ones asked
    to stop (the cancels table: their workers settle them cancelled)."""
    wf, steps = names(t)
    rows = conn.execute(
        f"SELECT id, state FROM {steps} WHERE wf = ? AND state IN ('waiting', 'queued')",
        (workflow_id,),
    ).fetchall()
    stopped = 0
    for step, st in rows:
        if st == "waiting":
            conn.execute(
                f"UPDATE {steps} SET state = 'cancelled', record = NULL WHERE id = ?", (step,)
            )
            _cancel_job(conn, t, step, clock, ttl)
            stopped += 1
            continue
        job = conn.execute(f"SELECT state FROM {t.jobs} WHERE id = ?", (step,)).fetchone()
        if job is None:
            continue
        if job[0] in ("queued", "scheduled"):
            conn.execute(
                f"""UPDATE {t.jobs} SET state = 'cancelled', at = ?, token = NULL,
                    expires = ? WHERE id = ?""",
                (clock.ms, clock.now + ttl, step),
            )
            conn.execute(f"UPDATE {steps} SET state = 'cancelled' WHERE id = ?", (step,))
            _cancel_job(conn, t, step, clock, ttl)
            stopped += 1
        elif job[0] == "running":
            conn.execute(
                f"INSERT OR IGNORE INTO {t.cancels} (id, at_ms) VALUES (?, ?)", (step, clock.ms)
            )
    conn.execute(f"UPDATE {wf} SET done = done + ? WHERE id = ?", (stopped, workflow_id))
    _finish(conn, t, workflow_id, state, clock, ttl, failed_step, error)


def _finish(
    conn: sqlite3.Connection,
    t: Tables,
    workflow_id: str,
    state: str,
    clock: Clock,
    ttl: int,
    failed_step: str = "",
    error: str = "",
) -> None:
    wf, _ = names(t)
    conn.execute(
        f"""UPDATE {wf} SET state = ?, finished_ms = ?, failed_step = ?, error = ?, expires = ?
            WHERE id = ?""",
        (state, clock.ms, failed_step or None, error or None, clock.now + ttl, workflow_id),
    )
    _bump(conn, t, "running", -1)
    _bump(conn, t, state, 1)
    created = conn.execute(f"SELECT created_ms FROM {wf} WHERE id = ?", (workflow_id,)).fetchone()
    status = "completed" if state == "completed" else "failed"
    duration = max(0.0, clock.ms - int(created[0]))
    _set_result(conn, t, workflow_id, clock, Outcome(status, duration, ttl, error=error or None))


def _purge(conn: sqlite3.Connection, t: Tables, now: float) -> None:
    """Workflows final for longer than RESULT_TTL go, with their steps."""
    wf, steps = names(t)
    gone = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM {wf} WHERE expires IS NOT NULL AND expires <= ? LIMIT 100", (now,)
        )
    ]
    for workflow_id in gone:
        conn.execute(f"DELETE FROM {steps} WHERE wf = ?", (workflow_id,))
        conn.execute(f"DELETE FROM {wf} WHERE id = ?", (workflow_id,))


def cancel(store: Store, workflow_id: str, clock: Clock, ttl: int) -> str | None:
    t = store.t
    wf, _ = names(t)
    with store.write() as conn:
        try:
            row = conn.execute(f"SELECT state FROM {wf} WHERE id = ?", (workflow_id,)).fetchone()
        except sqlite3.OperationalError as exc:
            if _missing(exc):
                return None
            raise
        if row is None:
            return None
        if row[0] != "running":
            return str(row[0])
        stop(conn, t, workflow_id, "cancelled", clock, ttl, "", "cancelled")
    return "cancelled"


def settle_raw(
    conn: sqlite3.Connection,
    t: Tables,
    raw: bytes | None,
    step: str,
    state: str,
    value: str,
    clock: Clock,
    ttl: int,
) -> None:
    """`settle` for a job known by its record (the recoverer, a deletion)."""
    workflow_id = member_of_raw(raw)
    if workflow_id:
        settle(conn, t, workflow_id, step, state, value, clock, ttl)


# -- reads -----------------------------------------------------------------------
def _guarded(fn: Callable[[], T], empty: T) -> T:
    try:
        return fn()
    except sqlite3.OperationalError as exc:
        if _missing(exc):
            return empty
        raise


def head(store: Store, workflow_id: str) -> WorkflowHead | None:
    wf, _ = names(store.t)

    def read() -> WorkflowHead | None:
        row = store.conn.execute(
            f"""SELECT state, policy, total, done, output, failed_step, error FROM {wf}
                WHERE id = ?""",
            (workflow_id,),
        ).fetchone()
        if row is None:
            return None
        return WorkflowHead(
            workflow_id, row[0], row[1], row[2], row[3], orjson.loads(row[4]), row[5], row[6]
        )

    return _guarded(read, None)


def view(store: Store, workflow_id: str) -> WorkflowView | None:
    t = store.t
    wf, steps = names(t)

    def read() -> WorkflowView | None:
        with store.snapshot() as conn:
            row = conn.execute(
                f"""SELECT state, policy, total, done, created_ms, finished_ms, failed_step,
                    error FROM {wf} WHERE id = ?""",
                (workflow_id,),
            ).fetchone()
            if row is None:
                return None
            found = conn.execute(
                f"""SELECT s.id, s.name, s.state, s.info, j.state, j.record, r.completed_at,
                    r.duration_ms, r.error FROM {steps} s
                    LEFT JOIN {t.jobs} j ON j.id = s.id
                    LEFT JOIN {t.results} r ON r.id = s.id
                    WHERE s.wf = ? ORDER BY s.seq""",
                (workflow_id,),
            ).fetchall()
        return WorkflowView(
            id=workflow_id,
            state=row[0],
            policy=row[1],
            total=row[2],
            done=row[3],
            created_at=row[4] / 1000,
            finished_at=None if row[5] is None else row[5] / 1000,
            steps=[_step(*r) for r in found],
            failed_step=row[6],
            error=row[7],
        )

    return _guarded(read, None)


def _step(
    step: str,
    name: str,
    state: str,
    info: bytes,
    job_state: str | None,
    raw: bytes | None,
    finished: str | None,
    duration: float | None,
    error: str | None,
) -> StepView:
    attempts = None
    if raw:
        with contextlib.suppress(orjson.JSONDecodeError):
            attempts = orjson.loads(raw).get("attempts")
    parsed = orjson.loads(info)
    deps = parsed.get("deps") or ()
    return StepView(
        id=step,
        name=name,
        state=state,
        depends_on=tuple(deps),
        job_state={"dead": "dead"}.get(job_state or "", job_state),
        attempts=attempts if isinstance(attempts, int) else None,
        started_at=started_from(finished, duration),
        finished_at=finished,
        duration_ms=duration,
        error=error,
        inputs=str(parsed.get("in") or ""),
    )


def count(store: Store, state: str) -> int:
    def read() -> int:
        row = store.conn.execute(
            f"SELECT n FROM {store.t.name('wf_counts')} WHERE state = ?", (state,)
        ).fetchone()
        return 0 if row is None else max(0, int(row[0]))

    return _guarded(read, 0)


def running(store: Store, limit: int) -> list[str]:
    wf, _ = names(store.t)
    return _guarded(
        lambda: [
            str(r[0])
            for r in store.conn.execute(
                f"SELECT id FROM {wf} WHERE state = 'running' ORDER BY created_ms LIMIT ?", (limit,)
            )
        ],
        [],
    )


def values(store: Store, workflow_id: str, ids: list[str]) -> dict[str, bytes]:
    _, steps = names(store.t)

    def read() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for step, value in store.conn.execute(
                f"SELECT id, result FROM {steps} WHERE id IN ({marks}) AND result IS NOT NULL",
                part,
            ):
                out[str(step)] = bytes(value)
        return out

    return _guarded(read, {})


def step_info(store: Store, step: str) -> bytes | None:
    _, steps = names(store.t)
    row: Any = _guarded(
        lambda: store.conn.execute(f"SELECT info FROM {steps} WHERE id = ?", (step,)).fetchone(),
        None,
    )
    return None if row is None else bytes(row[0])


# -- the broker's calls ----------------------------------------------------------
class SQLiteWorkflows:
    """SQLiteBroker's workflow calls (mixed in; it provides the rest)."""

    _ttl: int
    _tables: Tables

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    def _member_settle(
        self, delivery: Any, state: str, value: bytes | str | None, clock: Clock
    ) -> Callable[[sqlite3.Connection], None] | None:
        """The workflow move a member's settle makes in its transaction
        (None for a plain job: nothing more)."""
        workflow_id = delivery.workflow
        if workflow_id is None:
            return None
        ttl, step = self._ttl, delivery.id

        tables = self._tables

        def move(conn: sqlite3.Connection) -> None:
            settle(conn, tables, workflow_id, step, state, value, clock, ttl)

        return move

    async def enqueue_workflow(self, plan: WorkflowPlan) -> None:
        clock = Clock(*_now())
        await self._run(lambda s: enqueue(s, plan, clock))

    async def workflow(self, workflow_id: str) -> WorkflowView | None:
        return await self._read(lambda s: view(s, workflow_id))

    async def workflow_head(self, workflow_id: str) -> WorkflowHead | None:
        return await self._read(lambda s: head(s, workflow_id))

    async def _count_workflows(self, state: str) -> int:
        return await self._read(lambda s: count(s, state))

    async def list_workflows(self, limit: int = 50) -> list[str]:
        return await self._read(lambda s: running(s, limit))

    async def cancel_workflow(self, workflow_id: str) -> str | None:
        clock = Clock(*_now())
        return await self._run(lambda s: cancel(s, workflow_id, clock, self._ttl))

    async def workflow_values(self, workflow_id: str, ids: list[str]) -> dict[str, bytes]:
        return await self._read(lambda s: values(s, workflow_id, ids))

    async def _step_info(self, workflow_id: str, step_id: str) -> bytes | None:
        return await self._read(lambda s: step_info(s, step_id))


def _now() -> tuple[float, str]:
    import time

    from ..job import now_iso

    return time.time(), now_iso()
