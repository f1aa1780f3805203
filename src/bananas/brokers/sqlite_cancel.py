"""Cancel on SQLite (docs/control.md), one transaction each, with the
semantics of lua/cancel.lua, lua/cancelled.lua and lua/cancel_check.lua; a
mixin of SQLiteBroker like sqlite_progress.py.

A running job someone cancelled has a row in the `cancels` table, which its
worker reads (`cancel_requests`): while nobody cancels the table is empty
and the check is one indexed read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import InvalidRecord
from ..job import decode_record, now_iso
from . import sqlite_unique
from . import sqlite_workflows as wf
from .records import CancelOutcome, Delivery, cancelled_record
from .sqlite_db import Store
from .sqlite_ops import Clock, Outcome, _holds, _set_result, _settled_by

T = TypeVar("T")

_FINISHED = {
    "completed": CancelOutcome.ALREADY_COMPLETED,
    "dead": CancelOutcome.ALREADY_DEAD,
    "failed": CancelOutcome.ALREADY_DEAD,
    "cancelled": CancelOutcome.ALREADY_CANCELLED,
}


def _cancelled_record(raw: bytes | None, job_id: str) -> bytes | None:
    try:
        return cancelled_record(decode_record(raw, expected_id=job_id))
    except InvalidRecord:
        return raw  # kept as it is, for inspection


def cancel(store: Store, job_id: str, clock: Clock, ttl: int) -> CancelOutcome:
    t = store.t
    with store.write() as conn:
        row = conn.execute(
            f"SELECT state, record, expires FROM {t.jobs} WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None or (row[2] is not None and row[2] <= clock.now):
            found = conn.execute(
                f"SELECT status FROM {t.results} WHERE id = ? AND expires > ?",
                (job_id, clock.now),
            ).fetchone()
            return (
                _FINISHED.get(found[0], CancelOutcome.UNKNOWN) if found else CancelOutcome.UNKNOWN
            )
        state, raw = str(row[0]), row[1]
        if state == "running":
            conn.execute(
                f"INSERT OR IGNORE INTO {t.cancels} (id, at_ms) VALUES (?, ?)", (job_id, clock.ms)
            )
            return CancelOutcome.REQUESTED
        if state in _FINISHED:
            return _FINISHED[state]
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'cancelled', record = ?, at = ?, token = NULL,
                stalls = 0, expires = ? WHERE id = ?""",
            (_cancelled_record(raw, job_id), clock.ms, clock.now + ttl, job_id),
        )
        _set_result(conn, t, job_id, clock, Outcome("cancelled", 0.0, ttl, error="cancelled"))
        sqlite_unique.release(conn, t, [job_id])  # final: its unique key is free
        wf.settle_raw(conn, t, raw, job_id, "cancelled", "cancelled", clock, ttl)
    return CancelOutcome.CANCELLED


def settle_cancelled(
    store: Store, delivery: Delivery, record: bytes | None, clock: Clock, outcome: Outcome
) -> bool:
    t = store.t
    with store.write() as conn:
        if not _holds(conn, t, delivery.id, delivery.token):
            return _settled_by(conn, t, delivery.id, delivery.token, "cancelled")
        if record:
            conn.execute(f"UPDATE {t.jobs} SET record = ? WHERE id = ?", (record, delivery.id))
        conn.execute(
            f"""UPDATE {t.jobs} SET state = 'cancelled', at = ?, token = ?, stalls = 0,
                expires = ? WHERE id = ?""",
            (clock.ms, delivery.token, clock.now + outcome.ttl, delivery.id),
        )
        conn.execute(f"DELETE FROM {t.cancels} WHERE id = ?", (delivery.id,))
        _set_result(conn, t, delivery.id, clock, outcome)
        sqlite_unique.release(conn, t, [delivery.id])
        if delivery.workflow is not None:
            wf.settle(
                conn,
                t,
                delivery.workflow,
                delivery.id,
                "cancelled",
                "cancelled",
                clock,
                outcome.ttl,
            )
    return True


def cancel_requests(store: Store, job_ids: Sequence[str]) -> list[str]:
    """The ids of `job_ids` with a cancel request; requests of jobs that
    finished anyway are dropped first (only when there are any)."""
    t = store.t
    if store.conn.execute(f"SELECT 1 FROM {t.cancels} LIMIT 1").fetchone() is None:
        return []  # nobody cancels: all it costs
    with store.write() as conn:
        conn.execute(
            f"""DELETE FROM {t.cancels} WHERE id NOT IN (SELECT id FROM {t.jobs}
                WHERE state IN ('queued', 'scheduled', 'running'))"""
        )
        flagged = {str(r[0]) for r in conn.execute(f"SELECT id FROM {t.cancels}")}
    return [job_id for job_id in job_ids if job_id in flagged]


class SQLiteCancels:
    _ttl: int

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def cancel(self, job_id: str) -> CancelOutcome:
        return await self._run(
            lambda s: cancel(s, job_id, Clock(time.time(), now_iso()), self._ttl)
        )

    async def _settle_cancelled(
        self, delivery: Delivery, record: bytes | None, duration_ms: float
    ) -> bool:
        outcome = Outcome("cancelled", duration_ms, self._ttl, error="cancelled")
        clock = Clock(time.time(), now_iso())
        return await self._run(lambda s: settle_cancelled(s, delivery, record, clock, outcome))

    async def _cancel_requests(self, job_ids: Sequence[str]) -> list[str]:
        return await self._run(lambda s: cancel_requests(s, job_ids))
