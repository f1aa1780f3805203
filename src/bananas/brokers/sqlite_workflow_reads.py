"""Reads of the SQLite workflow tables (sqlite_workflows.py): the handles'
head, the views' WorkflowView, the counters, a step's inputs. A file that
never had a workflow has none of the tables: the reads then find nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .sqlite_db import Store, Tables
from .workflow_records import StepView, WorkflowHead, WorkflowView, started_from

T = TypeVar("T")


def names(t: Tables) -> tuple[str, str]:
    return t.name("wf"), t.name("wf_steps")


def static(t: Tables) -> str:
    """The table of what a step keeps unchanged (its record until released,
    its info, its dependents): apart, so that the per-member updates of a
    10,000-member chord's callback row do not rewrite its 10,000-id info."""
    return t.name("wf_static")


def bump(conn: sqlite3.Connection, t: Tables, state: str, n: int) -> None:
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
            result BLOB)"""
    )
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {static(t)} (
            id TEXT PRIMARY KEY NOT NULL, record BLOB, info BLOB NOT NULL, next TEXT NOT NULL)"""
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {t.name('wf_steps:wf')} ON {steps} (wf, seq)")
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {t.name("wf_counts")} (
            state TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL) WITHOUT ROWID"""
    )


def missing(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


# -- reads -----------------------------------------------------------------------
def _guarded(fn: Callable[[], T], empty: T) -> T:
    try:
        return fn()
    except sqlite3.OperationalError as exc:
        if missing(exc):
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
                f"""SELECT s.id, s.name, s.state, b.info, j.state, j.record, r.completed_at,
                    r.duration_ms, r.error FROM {steps} s
                    JOIN {static(t)} b ON b.id = s.id
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
    _, _steps = names(store.t)
    row: Any = _guarded(
        lambda: store.conn.execute(
            f"SELECT info FROM {static(store.t)} WHERE id = ?", (step,)
        ).fetchone(),
        None,
    )
    return None if row is None else bytes(row[0])
