"""Redis refuses writes: maxmemory reached under noeviction. Jobs that ran
keep their outcome until Redis takes writes again (no stall charged, no run
repeated, no false dead letter), the worker takes no more work meanwhile and
/readyz says why; all of it recovers by itself once memory is freed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.refusals import app
from apps.sink import open_sink
from support import BrokerView, RedisServer, WorkerFactory, free_port, wait_for
from test_observe import get

from bananas.config import Settings

LEASE_S = 1.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def fill(r: redis.Redis) -> None:
    """Put Redis over maxmemory the way an operator meets it: a limit a little
    above what is used, then writes until one is refused. The limit then
    drops a little under what is used: the refused write's own buffer left
    room a small write could still take, which would make the test a race."""
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", used + 2_000_000)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(100):
            r.set(f"filler:{i}", b"x" * 250_000)
    r.config_set("maxmemory", int(r.info("memory")["used_memory"]) - 500_000)


def free(r: redis.Redis) -> None:
    r.delete(*(f"filler:{i}" for i in range(100)))


def ready(port: int) -> tuple[int, list[str]]:
    status, body = get(port, "/readyz")
    return status, (body or {}).get("problems", [])


def test_outcomes_refused_at_maxmemory_are_written_after_memory_is_freed(
    server: RedisServer, tmp_path: Path
) -> None:
    sink_url = f"sqlite:///{tmp_path}/sink.db"
    gate = tmp_path / "gate"
    workers = WorkerFactory(server.url, tmp_path, sink_url=sink_url)
    port = free_port()
    worker = workers.start(
        "apps.refusals:app",
        "--concurrency",
        "6",
        WORKER_PREFETCH="6",
        HEALTH_PORT=str(port),
        LEASE_TIMEOUT=f"{LEASE_S}s",
        MAX_STALLS="1",  # one stall charged would dead-letter the job at once
        TEST_GATE=str(gate),
    )
    r = redis.Redis.from_url(server.url)
    view = BrokerView(server.url)
    sink = open_sink(sink_url)
    try:
        app.configure(Settings.load(env={"REDIS_URL": server.url}))
        ok = [app.enqueue("gated", k=f"ok{i}").id for i in range(3)]
        bad = [app.enqueue("gated_fail", k=f"bad{i}").id for i in range(2)]
        flaky = [app.enqueue("gated_flaky", k="flaky").id]
        wait_for(lambda: len(sink.hgetall("test:runs")) == 6, 20, message="6 jobs running")
        # Six more fill the prefetch buffer (concurrency + prefetch = 12), six
        # wait in Redis: those must stay there while outcomes are refused.
        later = [app.enqueue("gated", k=f"later{i}").id for i in range(12)]
        wait_for(lambda: view.count("queued") == 6, 10, message="the buffer full")

        fill(r)
        gate.touch()  # the six running jobs finish now; Redis refuses their outcomes
        wait_for(
            lambda: any("refuses writes" in p for p in ready(port)[1]),
            10,
            message="/readyz reporting the refusal",
        )
        assert ready(port)[0] == 503
        # Three leases' time: enough for the recoverer to charge a stall, were
        # the refused outcomes' leases left to expire.
        time.sleep(3 * LEASE_S)
        assert r.hlen("bananas:stalls") == 0
        assert view.count("dead") == 0, [view.dead_info(j).reason for j in bad]
        # The buffered jobs may have started (a slot frees as its ack is sent,
        # before the refusal is known); nothing more was taken from Redis.
        assert view.count("queued") == 6
        runs = sink.hgetall("test:runs")
        assert set(runs) <= {*(f"ok{i}" for i in range(3)), "bad0", "bad1", "flaky"} | {
            f"later{i}" for i in range(6)
        }
        assert set(runs.values()) == {"1"}, f"a job ran again under OOM: {runs}"

        free(r)  # memory is free again: nothing else is done by hand
        everything = ok + bad + flaky + later
        wait_for(
            lambda: all(view.state(j) in ("completed", "dead") for j in everything),
            20,
            interval=0.1,
            message="every outcome written",
        )
        wait_for(lambda: ready(port)[0] == 200, 10, message="/readyz recovering")
        for job_id in ok + flaky + later:
            assert view.state(job_id) == "completed", job_id
            result = view.result(job_id)
            assert result is not None and result.status == "completed", job_id
        for job_id in bad:
            assert view.state(job_id) == "dead", job_id
            info = view.dead_info(job_id)
            assert "fails on purpose" in info.error and "worker lost" not in info.reason
        runs = sink.hgetall("test:runs")
        expected = {k: "1" for k in runs if k != "flaky"} | {"flaky": "2"}
        assert runs == expected, f"needless re-runs: {runs}; {workers.repeat_causes()}"
        assert len(runs) == 18
        assert not worker.events("job.settle_failed") and not worker.events("job.lease_lost")
        assert len(worker.events("broker.refuses_writes")) >= 1
        assert worker.events("broker.accepts_writes")
    finally:
        worker.stop()
        view.close()
        r.close()
