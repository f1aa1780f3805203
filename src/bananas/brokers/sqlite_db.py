"""The SQLite file behind the embedded broker: URL, connection, schema, transactions.

Several worker processes share one file, so the mechanics follow huey's
SqliteStorage: WAL (readers never block the writer), a busy timeout (a writer
waits for another process's transaction instead of failing), and explicit
`BEGIN IMMEDIATE` so a transaction takes the write lock before it reads the
state it is about to change. Transactions are short: one state transition each.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import (
    BrokerError,
    BrokerIncompatible,
    BrokerRefusesWrites,
    BrokerUnavailable,
    ConfigError,
)

BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction
# PRAGMA user_version of the files this code writes. 2: the route column of
# jobs and queues (named routes); a version-1 file is upgraded when opened for
# writing (`_upgrade`), and code that knows only version 1 refuses the file
# rather than run a route's jobs on any worker.
SCHEMA_VERSION = 2

# Error codes that mean "try again later" (another process holds the lock, the
# file or its directory is not reachable right now), not a bug in a statement.
_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")
# The file is there but takes no more writes (its disk is full, or it is read-only).
_REFUSED = ("SQLITE_FULL", "SQLITE_READONLY")


def path_from_url(url: str) -> str:
    """`sqlite:///relative/path.db` -> relative/path.db; `sqlite:////abs.db` -> /abs.db."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not sep:
        raise ConfigError(f"broker URL {url!r} is not a sqlite:// URL")
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError(
            f"broker URL {url!r} names no file (allowed: sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db)"
        )
    return rest[1:]


def wrap(exc: sqlite3.Error | OSError) -> BrokerError:
    if isinstance(exc, OSError):  # the file's directory could not be created
        return BrokerUnavailable(f"SQLite database unavailable: {exc}")
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_REFUSED):
        return BrokerRefusesWrites(f"SQLite refuses writes: {exc} ({name})")
    if name.startswith(_TRANSIENT) or "locked" in str(exc):
        return BrokerUnavailable(f"SQLite database unavailable: {exc}")
    return BrokerError(f"SQLite error: {exc}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Tables:
    """Table and index names, under the broker prefix like the Redis keys."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.jobs = self.name("jobs")
        self.results = self.name("results")
        self.completed = self.name("completed")
        self.queues = self.name("queues")
        self.workers = self.name("workers")
        self.throughput = self.name("throughput")
        self.progress = self.name("progress")
        self.cancels = self.name("cancels")
        self.unique = self.name("unique")
        self.slots = self.name("slots")  # concurrency limits (sqlite_slots.py)
        self.slot_waiters = self.name("slot_waiters")
        self.slot_buckets = self.name("slot_buckets")
        # Queued-job queries name their index: without statistics the planner
        # may pick the job-type index and scan a whole type to find one priority.
        self.ready = f"{self.jobs} INDEXED BY {self.name('jobs:ready')}"

    def name(self, what: str) -> str:
        return _quote(f"{self.prefix}:{what}")

    def upgrade_from_1(self) -> list[str]:
        """Version 1 -> 2: every job and queue of a version-1 file is on the
        default route. The queues table gets its new key by a copy (SQLite
        cannot change a primary key in place); the ready index is made again
        by `schema` with the route in it."""
        t, ix = self, self.name
        old = self.name("queues:v1")
        return [
            f"ALTER TABLE {t.jobs} ADD COLUMN route TEXT NOT NULL DEFAULT 'default'",
            f"DROP INDEX IF EXISTS {ix('jobs:ready')}",
            f"ALTER TABLE {t.queues} RENAME TO {old}",
            f"""CREATE TABLE {t.queues} (
                route TEXT NOT NULL DEFAULT 'default',
                priority TEXT NOT NULL, name TEXT NOT NULL,
                PRIMARY KEY (route, priority, name)) WITHOUT ROWID""",
            f"INSERT INTO {t.queues} (priority, name) SELECT priority, name FROM {old}",
            f"DROP TABLE {old}",
        ]

    def schema(self) -> list[str]:
        t, ix = self, self.name
        return [
            # One row per job. `at` is the sort key of the job's state: queue
            # position (queued; smaller runs first), lease deadline in unix ms
            # (running), due time in unix seconds (scheduled), time of death in
            # unix ms (dead), finish time in unix ms (completed). `expires` is the
            # record's TTL after completion, like the Redis record key's.
            f"""CREATE TABLE IF NOT EXISTS {t.jobs} (
                id TEXT PRIMARY KEY NOT NULL,
                record BLOB,
                state TEXT NOT NULL,
                priority TEXT NOT NULL,
                name TEXT NOT NULL,
                route TEXT NOT NULL DEFAULT 'default',
                at REAL NOT NULL,
                token TEXT,
                stalls INTEGER NOT NULL DEFAULT 0,
                dead_info BLOB,
                expires REAL)""",
            f"""CREATE INDEX IF NOT EXISTS {ix("jobs:ready")}
                ON {t.jobs} (route, priority, name, at, id) WHERE state = 'queued'""",
            f"CREATE INDEX IF NOT EXISTS {ix('jobs:state')} ON {t.jobs} (state, at, id)",
            f"CREATE INDEX IF NOT EXISTS {ix('jobs:type')} ON {t.jobs} (name, state, at, id)",
            f"""CREATE INDEX IF NOT EXISTS {ix("jobs:expires")}
                ON {t.jobs} (expires) WHERE expires IS NOT NULL""",
            f"""CREATE TABLE IF NOT EXISTS {t.results} (
                id TEXT PRIMARY KEY NOT NULL,
                status TEXT NOT NULL,
                completed_at TEXT NOT NULL,
                duration_ms REAL NOT NULL,
                result BLOB,
                error TEXT,
                expires REAL NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {ix('results:expires')} ON {t.results} (expires)",
            # The capped recent-completions index: seq gives newest-first paging
            # and lets the cap be enforced with one range delete.
            f"""CREATE TABLE IF NOT EXISTS {t.completed} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                at_ms INTEGER NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {t.queues} (
                route TEXT NOT NULL DEFAULT 'default',
                priority TEXT NOT NULL, name TEXT NOT NULL,
                PRIMARY KEY (route, priority, name)) WITHOUT ROWID""",
            f"""CREATE TABLE IF NOT EXISTS {t.workers} (
                id TEXT PRIMARY KEY NOT NULL, info BLOB NOT NULL, seen_ms INTEGER NOT NULL)""",
            # Older files have a job-types table nothing reads (SQLite routes no
            # foreign records).
            f"DROP TABLE IF EXISTS {t.name('types')}",
            # What a running job last reported (sqlite_progress.py); a table
            # added without a version bump: older code never reads it, and
            # reads of a file that predates it find no progress.
            f"""CREATE TABLE IF NOT EXISTS {t.progress} (
                id TEXT PRIMARY KEY NOT NULL,
                fraction REAL NOT NULL,
                message TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                updated_at REAL NOT NULL,
                expires REAL NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {ix('progress:expires')} ON {t.progress} (expires)",
            # Running jobs someone cancelled (sqlite_cancel.py); added without
            # a version bump, like progress: older code never reads it.
            f"""CREATE TABLE IF NOT EXISTS {t.cancels} (
                id TEXT PRIMARY KEY NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID""",
            f"""CREATE TABLE IF NOT EXISTS {t.throughput} (
                minute INTEGER PRIMARY KEY,
                completed INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0)""",
            # The unique keys held by live jobs (sqlite_unique.py); added
            # without a version bump, as progress: older code never reads it.
            f"""CREATE TABLE IF NOT EXISTS {t.unique} (
                digest TEXT PRIMARY KEY NOT NULL,
                job_id TEXT NOT NULL,
                expires REAL NOT NULL)""",
            f"CREATE INDEX IF NOT EXISTS {ix('unique:job')} ON {t.unique} (job_id)",
            f"CREATE INDEX IF NOT EXISTS {ix('unique:expires')} ON {t.unique} (expires)",
            # Concurrency slots (sqlite_slots.py); added without a version bump.
            f"""CREATE TABLE IF NOT EXISTS {t.slots} (bucket TEXT NOT NULL, job_id TEXT NOT NULL,
                deadline REAL NOT NULL, PRIMARY KEY (bucket, job_id)) WITHOUT ROWID""",
            f"""CREATE TABLE IF NOT EXISTS {t.slot_waiters} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL,
                job_id TEXT NOT NULL, UNIQUE (bucket, job_id))""",
            f"""CREATE TABLE IF NOT EXISTS {t.slot_buckets} (
                bucket TEXT PRIMARY KEY NOT NULL, lim INTEGER NOT NULL) WITHOUT ROWID""",
            # Rate limits (sqlite_rate.py); added without a version bump, as progress.
            f"""CREATE TABLE IF NOT EXISTS {t.name("rates")} (
                bucket TEXT PRIMARY KEY NOT NULL, tat_ms REAL NOT NULL) WITHOUT ROWID""",
            f"""CREATE TABLE IF NOT EXISTS {t.name("throttled")} (
                id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, until_ms REAL NOT NULL)""",
            f"""CREATE TABLE IF NOT EXISTS {t.name("rate_limits")} (
                name TEXT PRIMARY KEY NOT NULL, rate TEXT NOT NULL) WITHOUT ROWID""",
        ]


def refuse_newer(conn: sqlite3.Connection) -> int:
    """The file's schema version; a newer one than this code knows is refused
    (never misread or written), at open and at every write transaction, so a
    file upgraded under a running worker stops it taking work."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise BrokerIncompatible(
            f"this SQLite file has schema version {version}, newer than this Bananas "
            f"understands ({SCHEMA_VERSION}): upgrade Bananas or use another file"
        )
    return version


def _lacks_route(conn: sqlite3.Connection, tables: Tables) -> bool:
    """A jobs table is there without the route column (made by version 1)."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info({tables.jobs})")]
    return bool(columns) and "route" not in columns


def _check_version(conn: sqlite3.Connection, tables: Tables) -> None:
    version = refuse_newer(conn)
    # By the columns, not the number: a file from before user_version was kept is 0.
    if version < 2 and _lacks_route(conn, tables):
        for statement in tables.upgrade_from_1():
            conn.execute(statement)
    if version < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switch a new file to WAL. Two processes opening the same new file at
    once race for the exclusive lock the switch takes, and SQLite answers the
    loser "database is locked" at once, without its busy handler: ask again
    until BUSY_TIMEOUT (the winner's switch takes milliseconds)."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Store:
    """One connection and its schema. Used from a single thread only."""

    def __init__(self, conn: sqlite3.Connection, tables: Tables) -> None:
        self.conn = conn
        self.t = tables

    @classmethod
    def open(cls, path: str, tables: Tables) -> Store:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            _enter_wal(conn)
            # WAL + NORMAL syncs at checkpoints, not per commit: a power cut may
            # lose the last transactions (like Redis' appendfsync everysec); a
            # process crash loses nothing.
            conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(conn, tables)
            with store.write():
                _check_version(conn, tables)
                for statement in tables.schema():
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open_reader(cls, path: str, tables: Tables) -> Store | None:
        """A read-only connection (`bananas status`, `dlq list`, the dashboard's
        reads): it needs neither the write lock nor free disk. None when the
        file is not there yet or predates this schema: the caller opens it for
        writing, which creates or upgrades it."""
        if path == ":memory:" or not Path(path).exists():
            return None
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if refuse_newer(conn) < SCHEMA_VERSION:
                conn.close()
                return None
        except BaseException:
            conn.close()
            raise
        return cls(conn, tables)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its first read."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            refuse_newer(conn)
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several queries see one consistent state."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def version(self) -> int:
        """Changes whenever another connection committed (not for this one's commits)."""
        row = self.conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])
