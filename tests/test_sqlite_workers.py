"""Real `bananas worker` processes sharing one SQLite file: exactly-once
delivery across processes, SIGKILL recovery by lease expiry, idle pick-up
latency and idle CPU, and the default broker when no URL is configured.

The handlers below are this module's own app (workers load it with
`--app test_sqlite_workers:app`); they record runs by appending one line per
run to a file, so the tests need no Redis at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import TESTS, WorkerFactory, wait_for

from bananas import Bananas
from bananas.brokers.sqlite import SQLiteBroker

APP = "test_sqlite_workers:app"
app = Bananas()


def _append(variable: str, line: str) -> None:
    # One small O_APPEND write per line: lines from several processes never interleave.
    with open(os.environ[variable], "a") as f:
        f.write(line + "\n")


@app.job()
def mark(k: str) -> str:
    _append("SQLITE_TEST_RUNS", f"{k} {os.getpid()}")
    return k


@app.job()
async def nap(k: str, seconds: float) -> str:
    _append("SQLITE_TEST_STARTED", k)
    await asyncio.sleep(seconds)
    _append("SQLITE_TEST_RUNS", f"{k} {os.getpid()}")
    return k


@app.job()
async def stamp(k: str, sent: float) -> None:
    _append("SQLITE_TEST_RUNS", f"{k} {time.time() - sent}")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"runs": tmp_path / "runs.txt", "started": tmp_path / "started.txt"}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/q.db"


@pytest.fixture
def sqlite_workers(tmp_path: Path, url: str, files: dict[str, Path]) -> Iterator[WorkerFactory]:
    factory = WorkerFactory("", tmp_path)
    base_env = factory.env

    def env(**extra: str) -> dict[str, str]:
        return base_env(
            BANANAS_BROKER_URL=url,
            SQLITE_TEST_RUNS=str(files["runs"]),
            SQLITE_TEST_STARTED=str(files["started"]),
            **extra,
        )

    factory.env = env  # type: ignore[method-assign]
    yield factory
    factory.stop_all()


@pytest.fixture
def client(url: str) -> Iterator[Bananas]:
    c = Bananas(url)
    yield c
    c.close()


def broker_figures(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        broker = SQLiteBroker(url)
        try:
            return {s: await broker.count_jobs(s) for s in ("queued", "running", "dead")}
        finally:
            await broker.close()

    return asyncio.run(read())


def test_two_workers_run_5000_jobs_exactly_once(
    sqlite_workers: WorkerFactory, client: Bananas, files: dict[str, Path], url: str
) -> None:
    handles = client.enqueue_many([("mark", {"k": str(i)}) for i in range(5000)])
    started = time.monotonic()
    w1 = sqlite_workers.start(APP, "--concurrency", "20")
    w2 = sqlite_workers.start(APP, "--concurrency", "20")
    wait_for(lambda: len(lines(files["runs"])) >= 5000, 50, 0.1, message="5000 runs")
    elapsed = time.monotonic() - started
    runs = [line.split() for line in lines(files["runs"])]
    counts = Counter(k for k, _ in runs)
    assert len(counts) == 5000 and set(counts.values()) == {1}  # each job exactly once
    assert len({pid for _, pid in runs}) == 2, "both workers took jobs"
    assert str(w1.pid) in {pid for _, pid in runs} and str(w2.pid) in {pid for _, pid in runs}
    wait_for(lambda: broker_figures(url)["running"] == 0, 10, message="no leases left")
    assert broker_figures(url) == {"queued": 0, "running": 0, "dead": 0}
    sample = [handles[0], handles[2500], handles[-1]]
    assert [h.result(timeout=5) for h in sample] == ["0", "2500", "4999"]
    print(f"\n5000 jobs, two workers on one SQLite file: {elapsed:.1f}s (incl. start-up)")
    for w in (w1, w2):
        w.signal(signal.SIGTERM)
        assert w.wait(20) == 0


def test_sigkilled_workers_jobs_come_back_after_lease_expiry(
    sqlite_workers: WorkerFactory, client: Bananas, files: dict[str, Path], url: str
) -> None:
    env = {"LEASE_TIMEOUT": "2s"}
    victim = sqlite_workers.start(APP, "--concurrency", "20", **env)
    client.enqueue_many([("nap", {"k": str(i), "seconds": 3.0}) for i in range(20)])
    wait_for(lambda: len(lines(files["started"])) == 20, 20, message="20 jobs in flight")
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)
    assert lines(files["runs"]) == []
    assert broker_figures(url)["running"] == 20  # leased to a dead process
    rescuer = sqlite_workers.start(APP, "--concurrency", "20", **env)
    wait_for(lambda: len(lines(files["runs"])) == 20, 30, 0.1, message="20 recovered jobs")
    assert time.monotonic() - killed_at < 20
    runs = [line.split() for line in lines(files["runs"])]
    assert sorted(int(k) for k, _ in runs) == list(range(20))
    assert {pid for _, pid in runs} == {str(rescuer.pid)}
    assert len(rescuer.events("job.recovered")) == 20
    wait_for(lambda: broker_figures(url)["running"] == 0, 10, message="no leases left")
    assert broker_figures(url) == {"queued": 0, "running": 0, "dead": 0}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_worker_picks_up_fast_and_burns_no_cpu(
    sqlite_workers: WorkerFactory, client: Bananas, files: dict[str, Path]
) -> None:
    worker = sqlite_workers.start(APP, "--mode", "thin")
    time.sleep(1.0)  # let start-up work (imports, first heartbeat) finish before measuring
    cpu_before, wall_before = _cpu_seconds(worker.pid), time.monotonic()
    time.sleep(4.0)  # an idle period is what is measured here
    idle_cpu = (_cpu_seconds(worker.pid) - cpu_before) / (time.monotonic() - wall_before)
    latencies = []
    for i in range(5):
        client.enqueue("stamp", k=str(i), sent=time.time())
        wait_for(lambda n=i: len(lines(files["runs"])) > n, 10, 0.005, message=f"job {i}")
        latencies.append(float(lines(files["runs"])[i].split()[1]))
        time.sleep(0.3)  # idle again before the next job
    latencies.sort()
    shown = ", ".join(f"{x * 1000:.1f}" for x in latencies)
    print(f"\nidle worker CPU {idle_cpu:.2%} of a core; pick-up latencies (ms): {shown}")
    assert idle_cpu < 0.05
    assert latencies[2] < 0.1  # median enqueue -> start, from idle
    assert latencies[-1] < 0.5


def test_worker_defaults_to_the_embedded_sqlite_file(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WORKER_", "BANANAS_", "LOG_")) and k != "REDIS_URL"
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]),
        LOG_FORMAT="json",
        HEALTH_PORT="0",
        SQLITE_TEST_RUNS=str(tmp_path / "runs.txt"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bananas.cli", "worker", "--app", APP],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        db = tmp_path / ".bananas" / "queue.db"
        client = Bananas(f"sqlite:///{db}")
        wait_for(db.exists, 20, message="the default database file")
        assert client.enqueue("mark", k="default").result(timeout=20) == "default"
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    # Absolute: the folder it found, not one relative to wherever it was started.
    assert f'"broker":"sqlite:///{db}"' in output.replace(" ", "")
    assert "Redis is the production broker" in output


# -- SQLite specifics (the conformance suite covers the shared semantics) ----------
def test_sqlite_urls_and_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bananas.brokers import from_url
    from bananas.errors import ConfigError

    monkeypatch.chdir(tmp_path)

    async def use(url: str) -> None:
        broker = from_url(url)
        try:
            await broker.ping()
        finally:
            await broker.close()

    asyncio.run(use("sqlite:///rel/dir/q.db"))
    assert (tmp_path / "rel" / "dir" / "q.db").exists()
    asyncio.run(use(f"sqlite:///{tmp_path}/abs/q.db"))
    assert (tmp_path / "abs" / "q.db").exists()
    with pytest.raises(ConfigError, match="names no file"):
        from_url("sqlite://")


def test_unreachable_file_is_a_broker_unavailable_error(tmp_path: Path) -> None:
    from bananas.errors import BrokerUnavailable

    (tmp_path / "file").write_text("not a directory")

    async def main() -> None:
        broker = SQLiteBroker(f"sqlite:///{tmp_path}/file/q.db")
        try:
            with pytest.raises(BrokerUnavailable, match="unavailable"):
                await broker.ping()
        finally:
            await broker.close()

    asyncio.run(main())


def test_a_locked_file_waits_without_blocking_the_event_loop(tmp_path: Path) -> None:
    import sqlite3

    from bananas import Bananas, JobSpec
    from bananas.brokers.base import NewJob
    from bananas.config import Settings

    url = f"sqlite:///{tmp_path}/q.db"
    client = Bananas(settings=Settings())  # encodes the record as enqueue does
    rec = client.build_jobs([JobSpec("t", {}, "normal", job_id="a")])[0].record

    async def main() -> None:
        broker = SQLiteBroker(url)
        await broker.ping()
        other = sqlite3.connect(tmp_path / "q.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        enqueue = asyncio.create_task(broker.enqueue([NewJob("a", "t", "normal", rec)]))
        await asyncio.sleep(0.5)
        assert not enqueue.done()  # waiting for the lock (busy timeout), not failing
        other.execute("COMMIT")
        assert await asyncio.wait_for(enqueue, 5.0) == [True]
        assert ticks >= 20  # the loop kept running while the write waited
        tick.cancel()
        other.close()
        assert await broker.count_jobs("queued") == 1
        await broker.close()

    asyncio.run(main())


def test_a_file_from_a_newer_bananas_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from bananas.errors import BrokerError

    with sqlite3.connect(tmp_path / "q.db") as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()

    async def main() -> None:
        broker = SQLiteBroker(f"sqlite:///{tmp_path}/q.db")
        try:
            with pytest.raises(BrokerError, match="schema version 99"):
                await broker.ping()
        finally:
            await broker.close()

    asyncio.run(main())
