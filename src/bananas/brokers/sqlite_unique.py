"""Unique jobs on SQLite (lua/_unique.lua's twin; docs/control.md).

One row per held key: digest -> the id of the job holding it and when the
hold ends (`expires`, unix seconds: unique_for from the enqueue). Every
transition that makes a job final calls `release` inside its own
transaction: complete, bury (sqlite_ops), the recoverer's burials and
`delete_dead` (sqlite_upkeep), and cancel (its transaction calls
`release(conn, t, [job_id])`: the hook for "cancelled"). Release is one
indexed DELETE by job id, which on a table with no row for the job finds
nothing: jobs without a key pay one index probe per transition.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .sqlite_db import Tables


def take(
    conn: sqlite3.Connection, t: Tables, digest: str, job_id: str, ttl_ms: int, now: float
) -> str | None:
    """Take the key for `job_id`: None when taken (or it already held it),
    else the id of the live job that holds it (nothing changed)."""
    row = conn.execute(
        f"SELECT job_id, expires FROM {t.unique} WHERE digest = ?", (digest,)
    ).fetchone()
    if row is not None and row[1] > now and row[0] != job_id:
        return str(row[0])
    conn.execute(
        f"INSERT OR REPLACE INTO {t.unique} (digest, job_id, expires) VALUES (?, ?, ?)",
        (digest, job_id, now + ttl_ms / 1000),
    )
    return None


def release(conn: sqlite3.Connection, t: Tables, job_ids: Sequence[str]) -> None:
    """Free the keys these (now final) jobs hold. A key whose hold ended and
    that a newer job took since is that job's row, and stays."""
    if len(job_ids) == 1:
        conn.execute(f"DELETE FROM {t.unique} WHERE job_id = ?", (job_ids[0],))
    elif job_ids:
        conn.executemany(f"DELETE FROM {t.unique} WHERE job_id = ?", [(i,) for i in job_ids])


def purge(conn: sqlite3.Connection, t: Tables, now: float, limit: int) -> None:
    """Drop holds that ended (bounded, from the periodic purge): a job still
    live past its unique_for no longer blocks anyone, its row is garbage."""
    conn.execute(
        f"""DELETE FROM {t.unique} WHERE rowid IN
            (SELECT rowid FROM {t.unique} WHERE expires <= ? LIMIT ?)""",
        (now, limit),
    )
