"""Where the test handlers record what ran, for any broker: the tests and the
worker processes open the same sink by URL (TEST_SINK_URL, else TEST_REDIS_URL).

- `redis://...`: plain Redis commands on `test:*` keys (hashes, lists,
  strings), as the handlers always wrote them; a batch is one MULTI/EXEC.
- `sqlite:///path`: one SQLite file shared by every process (WAL, busy
  timeout, each call one BEGIN IMMEDIATE transaction), with the same
  operations over two tables. A batch is one transaction.

Both are thread-safe and process-safe. The sink of a process is created once,
under a lock: job threads start together in a fresh worker, and two clients
made side by side once left one to be garbage-collected, its __del__ closing
the connection pool under the other thread's pipeline (a run counted twice).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

# ("incr", name, field) | ("hset", name, field, value) | ("rpush", name, value)
Op = tuple[Any, ...]


class Sink:
    """The operations the handlers and tests use, named after Redis's."""

    def incr(self, name: str, field: str, by: int = 1) -> int:
        raise NotImplementedError

    def hset(self, name: str, field: str, value: str) -> None:
        raise NotImplementedError

    def hgetall(self, name: str) -> dict[str, str]:
        raise NotImplementedError

    def rpush(self, name: str, value: str) -> None:
        raise NotImplementedError

    def lrange(self, name: str) -> list[str]:
        raise NotImplementedError

    def set(self, name: str, value: str) -> None:
        raise NotImplementedError

    def get(self, name: str) -> str | None:
        raise NotImplementedError

    def many(self, *ops: Op) -> None:
        """Apply several operations at once (atomically)."""
        raise NotImplementedError

    def close(self) -> None:
        return None

    # -- derived reads ------------------------------------------------------
    def hget(self, name: str, field: str) -> str | None:
        return self.hgetall(name).get(field)

    def hlen(self, name: str) -> int:
        return len(self.hgetall(name))

    def hexists(self, name: str, field: str) -> bool:
        return field in self.hgetall(name)

    def hkeys(self, name: str) -> list[str]:
        return list(self.hgetall(name))

    def hvals(self, name: str) -> list[str]:
        return list(self.hgetall(name).values())

    def llen(self, name: str) -> int:
        return len(self.lrange(name))


class RedisSink(Sink):
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)

    def incr(self, name: str, field: str, by: int = 1) -> int:
        return int(self.client.hincrby(name, field, by))

    def hset(self, name: str, field: str, value: str) -> None:
        self.client.hset(name, field, value)

    def hgetall(self, name: str) -> dict[str, str]:
        return dict(self.client.hgetall(name))

    def hget(self, name: str, field: str) -> str | None:
        value = self.client.hget(name, field)
        return None if value is None else str(value)

    def hlen(self, name: str) -> int:
        return int(self.client.hlen(name))

    def rpush(self, name: str, value: str) -> None:
        self.client.rpush(name, value)

    def lrange(self, name: str) -> list[str]:
        return list(self.client.lrange(name, 0, -1))

    def llen(self, name: str) -> int:
        return int(self.client.llen(name))

    def set(self, name: str, value: str) -> None:
        self.client.set(name, value)

    def get(self, name: str) -> str | None:
        value = self.client.get(name)
        return None if value is None else str(value)

    def many(self, *ops: Op) -> None:
        pipe = self.client.pipeline()
        for op, *args in ops:
            if op == "incr":
                pipe.hincrby(args[0], args[1], 1)
            elif op == "hset":
                pipe.hset(args[0], args[1], args[2])
            elif op == "rpush":
                pipe.rpush(args[0], args[1])
            else:
                raise ValueError(f"unknown sink operation {op!r}")
        pipe.execute()

    def close(self) -> None:
        self.client.close()


class SQLiteSink(Sink):
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS kv (name TEXT, field TEXT, value TEXT,"
        " PRIMARY KEY (name, field))",
        "CREATE TABLE IF NOT EXISTS lists (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        " name TEXT, value TEXT)",
    )

    def __init__(self, path: str) -> None:
        self.lock = threading.Lock()  # one connection per process, one caller at a time
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        with self._write() as db:
            for statement in self.SCHEMA:
                db.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _read(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    @staticmethod
    def _incr(db: sqlite3.Connection, name: str, field: str, by: int) -> int:
        row = db.execute(
            "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (name, field)"
            " DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value RETURNING value",
            (name, field, by),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _hset(db: sqlite3.Connection, name: str, field: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (name, field, str(value)))

    @staticmethod
    def _rpush(db: sqlite3.Connection, name: str, value: str) -> None:
        db.execute("INSERT INTO lists (name, value) VALUES (?, ?)", (name, str(value)))

    def incr(self, name: str, field: str, by: int = 1) -> int:
        with self._write() as db:
            return self._incr(db, name, field, by)

    def hset(self, name: str, field: str, value: str) -> None:
        with self._write() as db:
            self._hset(db, name, field, value)

    def hgetall(self, name: str) -> dict[str, str]:
        rows = self._read("SELECT field, value FROM kv WHERE name = ?", name)
        return {str(f): str(v) for f, v in rows}

    def hlen(self, name: str) -> int:
        return int(self._read("SELECT COUNT(*) FROM kv WHERE name = ?", name)[0][0])

    def rpush(self, name: str, value: str) -> None:
        with self._write() as db:
            self._rpush(db, name, value)

    def lrange(self, name: str) -> list[str]:
        rows = self._read("SELECT value FROM lists WHERE name = ? ORDER BY seq", name)
        return [str(v) for (v,) in rows]

    def set(self, name: str, value: str) -> None:
        self.hset(name, "", value)  # a string is the hash field "" of its name

    def get(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM kv WHERE name = ? AND field = ''", name)
        return str(rows[0][0]) if rows else None

    def many(self, *ops: Op) -> None:
        with self._write() as db:
            for op, *args in ops:
                if op == "incr":
                    self._incr(db, args[0], args[1], 1)
                elif op == "hset":
                    self._hset(db, args[0], args[1], args[2])
                elif op == "rpush":
                    self._rpush(db, args[0], args[1])
                else:
                    raise ValueError(f"unknown sink operation {op!r}")

    def close(self) -> None:
        with self.lock:
            self.db.close()


def open_sink(url: str) -> Sink:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisSink(url)
    if url.startswith("sqlite:///"):
        # As the broker reads it: sqlite:///rel/path -> rel/path, sqlite:////abs -> /abs
        return SQLiteSink(url[len("sqlite:///") :])
    raise ValueError(f"TEST_SINK_URL={url!r}: expected redis://... or sqlite:///path")


_sink: Sink | None = None
_sink_lock = threading.Lock()


def sink() -> Sink:
    """This process's sink, created once (under a lock: see the module doc)."""
    global _sink
    if _sink is None:
        with _sink_lock:
            if _sink is None:
                url = os.environ.get("TEST_SINK_URL") or os.environ["TEST_REDIS_URL"]
                _sink = open_sink(url)
    return _sink
