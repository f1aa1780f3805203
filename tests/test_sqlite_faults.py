"""The SQLite broker's file when it cannot be written: a full disk, another
process holding the write lock, a schema written by a newer Bananas. Real
`bananas worker` and `bananas status` processes.

A full disk, for real and bounded: SQLite's `PRAGMA max_page_count` caps how
far a connection may grow the file; past it SQLite refuses the write with
SQLITE_FULL, the very code (and code path) a full disk gives. The cap is
per connection, so every process of a test gets it from `SQLITE_TEST_MAX_PAGES`
through a `sitecustomize.py` the test writes (the worker, the CLI) and this
process through `capped()`. Nothing outside the test's own file is touched:
no root, no filesystem filled.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from support import WorkerFactory, free_port, wait_for

from bananas import Bananas
from bananas.brokers.sqlite import SQLiteBroker
from bananas.brokers.sqlite_db import SCHEMA_VERSION
from bananas.errors import BrokerRefusesWrites

APP = "test_sqlite_faults:app"
app = Bananas()


@app.job()
def mark(k: str, pad: str = "") -> str:
    return k


SITECUSTOMIZE = """
import os, sqlite3
_cap = int(os.environ.get("SQLITE_TEST_MAX_PAGES", "0"))
if _cap:
    _connect = sqlite3.connect
    def connect(*args, **kwargs):
        conn = _connect(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {_cap}")
        return conn
    sqlite3.connect = connect
"""


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return 0, None


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "q.db"


@pytest.fixture
def workers(tmp_path: Path, db: Path) -> Iterator[WorkerFactory]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    factory = WorkerFactory(f"sqlite:///{db}", tmp_path)
    base_env = factory.env

    def env(**extra: str) -> dict[str, str]:
        env = base_env(**extra)
        env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
        return env

    factory.env = env  # type: ignore[method-assign]
    yield factory
    factory.stop_all()


def enqueue(db: Path, jobs: list[tuple[str, dict[str, Any]]]) -> None:
    client = Bananas(f"sqlite:///{db}")
    try:
        client.enqueue_many(jobs)
    finally:
        client.close()


def counts(db: Path) -> dict[str, int]:
    async def read() -> dict[str, int]:
        broker = SQLiteBroker(f"sqlite:///{db}")
        try:
            return {s: await broker.count_jobs(s) for s in ("queued", "running", "completed")}
        finally:
            await broker.close()

    return asyncio.run(read())


def fill(db: Path, cap: int) -> None:
    """Fill the file up to `cap` pages (a disk with no space left)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA max_page_count = {cap}")
    conn.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)")
    for size in (4000, 1000, 200, 20):
        try:
            for _ in range(100_000):
                conn.execute("INSERT INTO filler VALUES (randomblob(?))", (size,))
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
    conn.close()


@contextmanager
def capped(pages: int) -> Iterator[None]:
    """This process's SQLite connections opened meanwhile get the size cap."""
    connect = sqlite3.connect

    def capped_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    sqlite3.connect = capped_connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = connect


def free_space(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE filler")  # its pages go to the free list: room again
    conn.close()


def page_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()


def test_full_disk_makes_the_worker_unready_and_it_recovers(
    workers: WorkerFactory, db: Path
) -> None:
    enqueue(db, [("mark", {"k": str(i), "pad": "x" * 300}) for i in range(300)])
    cap = page_count(db) + 400  # the room freed again at the end
    fill(db, cap)
    port = free_port()
    worker = workers.start(APP, HEALTH_PORT=str(port), SQLITE_TEST_MAX_PAGES=str(cap))

    def refusing() -> Any:
        status, body = get(port, "/readyz")
        problems = (body or {}).get("problems", [])
        return status == 503 and any("refuses writes" in p for p in problems) and body

    body = wait_for(refusing, 30, 0.1, message="/readyz 503: broker refuses writes")
    assert any("SQLITE_FULL" in p for p in body["problems"]), body
    assert counts(db)["completed"] < 300  # no progress is possible: the file is full

    # A producer on the same full disk is refused, saying so.
    with capped(cap), pytest.raises(BrokerRefusesWrites, match="SQLITE_FULL"):
        enqueue(db, [("mark", {"k": f"late-{i}", "pad": "x" * 300}) for i in range(200)])
    # Read-only commands still answer on the full disk.
    status = workers.cli("status", "--json", SQLITE_TEST_MAX_PAGES=str(cap))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queues"], status.stdout

    free_space(db)
    wait_for(lambda: get(port, "/readyz")[0] == 200, 30, 0.1, message="/readyz 200 again")
    try:
        wait_for(lambda: counts(db)["completed"] == 300, 60, 0.2, message="every job completed")
    except AssertionError:
        raise AssertionError(f"{counts(db)}\n{worker.output()[-4000:]}") from None
    assert worker.proc.poll() is None


@contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_read_only_commands_need_no_write_access(workers: WorkerFactory, db: Path) -> None:
    enqueue(db, [("mark", {"k": "a"})])
    with write_lock_held(db):
        started = time.monotonic()
        status = workers.cli("status", "--json", timeout=30)
        dlq = workers.cli("dlq", "list", timeout=30)
        elapsed = time.monotonic() - started
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["queues"] == [
        {"priority": "normal", "job_type": "mark", "depth": 1}
    ]
    assert dlq.returncode == 0 and "empty" in dlq.stdout, dlq.stderr
    assert elapsed < 8, f"status and dlq list waited {elapsed:.1f}s for the write lock"


def set_version(db: Path, version: int) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()


def test_a_fresh_worker_refuses_a_newer_schema(workers: WorkerFactory, db: Path) -> None:
    enqueue(db, [("mark", {"k": "a"})])
    set_version(db, 99)
    worker = workers.start(APP, wait=False)
    code = worker.wait(20)
    lines = [line for line in worker.output().splitlines() if not line.startswith("{")]
    assert code == 2, worker.output()
    assert lines == [
        "bananas: error: this SQLite file has schema version 99, newer than this Bananas "
        f"understands ({SCHEMA_VERSION}): upgrade Bananas or use another file"
    ], worker.output()


def test_a_running_worker_stops_taking_work_on_a_newer_schema(
    workers: WorkerFactory, db: Path
) -> None:
    enqueue(db, [("mark", {"k": "first"})])
    port = free_port()
    worker = workers.start(APP, HEALTH_PORT=str(port))
    wait_for(lambda: counts(db)["completed"] == 1, 20, 0.1, message="the first job ran")
    wait_for(lambda: get(port, "/readyz")[0] == 200, 10, 0.1, message="ready")
    client = Bananas(f"sqlite:///{db}")
    try:
        # Due in 2 s: the worker's scheduler moves them unless it stopped writing.
        client.enqueue_many([("mark", {"k": f"d{i}", "_delay": 2}) for i in range(5)])
    finally:
        client.close()
    newer = SCHEMA_VERSION + 1
    set_version(db, newer)

    def unready() -> Any:
        status, body = get(port, "/readyz")
        problems = (body or {}).get("problems", [])
        return status == 503 and any(f"schema version {newer}" in p for p in problems) and body

    wait_for(unready, 20, 0.1, message="/readyz 503 naming the schema")
    with pytest.raises(BrokerRefusesWrites, match=f"schema version {newer}"):
        enqueue(db, [("mark", {"k": "refused"})])
    time.sleep(3)  # the delayed jobs are due now: none may be taken
    conn = sqlite3.connect(db)  # this Bananas refuses to read the file now; SQL can
    states = dict(conn.execute('SELECT state, COUNT(*) FROM "bananas:jobs" GROUP BY state'))
    conn.close()
    assert states["completed"] == 1 and "running" not in states, states
    assert worker.proc.poll() is None
    warned = [e for e in worker.events() if f"schema version {newer}" in str(e.get("error", ""))]
    assert warned, worker.output()[-2000:]
