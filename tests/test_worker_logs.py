"""What a worker says when things go wrong, in-process with real brokers:

- a settle that fails because the broker is unreachable is `job.settle_failed`,
  not `job.lease_lost` (nothing was re-issued); a token the broker refuses is
  `job.lease_lost`;
- a worker whose clock is more than 1 s off the broker's warns `clock.skew`
  at start, with both times and the offset;
- `worker.status()` follows the run (what health and metrics read).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

from support import RedisServer

from bananas import Bananas
from bananas.brokers import Broker, from_url
from bananas.config import Settings
from bananas.logs import EventLog
from bananas.observe.stats import WorkerStats
from bananas.worker import Worker, WorkerState, WorkerStatus
from bananas.worker.executors import Executors
from bananas.worker.runner import JobRunner

Q = [("normal", "add")]


def core_app(url: str) -> Bananas:
    app = Bananas(url)

    @app.job()
    def add(a: int, b: int) -> int:
        return a + b

    return app


def events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [e for e in lines if e["event"] == name]


async def run_one(app: Bananas, broker: Broker, lease: float, log: EventLog) -> None:
    """Lease the one job and run it through a JobRunner (no worker around it)."""
    settings = Settings(lease_timeout=lease)
    [delivery] = await broker.dequeue(Q, 1, lease, f"w1{time.monotonic_ns()}:")
    runner = JobRunner(app.handlers, broker, settings, Executors(1), log, WorkerStats())
    await runner.run(delivery)


def test_settle_to_an_unreachable_broker_is_not_a_lost_lease(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    stream = io.StringIO()
    log = EventLog("debug", "json", stream)

    async def main() -> None:
        app = core_app(server.url)
        broker = from_url(server.url)
        try:
            await broker.enqueue(app.build_jobs([("add", {"a": 1, "b": 2})]))
            # The broker goes away while the job runs: stop it from the first ack.
            real_complete = broker.complete

            async def complete_after_outage(*args: Any) -> bool:
                server.stop()
                return await real_complete(*args)

            broker.complete = complete_after_outage  # type: ignore[method-assign]
            await run_one(app, broker, 0.5, log)
        finally:
            await broker.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()
    [failed] = events(stream, "job.settle_failed")
    assert "unreachable" in failed["detail"]
    assert events(stream, "job.lease_lost") == []


def test_a_refused_token_is_a_lost_lease(redis_url: str) -> None:
    stream = io.StringIO()
    log = EventLog("debug", "json", stream)

    async def main() -> None:
        app = core_app(redis_url)
        broker = from_url(redis_url)
        try:
            await broker.enqueue(app.build_jobs([("add", {"a": 1, "b": 2})]))
            real_complete = broker.complete

            async def complete_after_reissue(delivery: Any, *args: Any) -> bool:
                # The lease runs out and another worker takes the job first.
                deadline = time.monotonic() + 5
                while not (await broker.recover_expired(3)).recovered:
                    assert time.monotonic() < deadline, "lease never expired"
                    await asyncio.sleep(0.05)
                [again] = await broker.dequeue(Q, 1, 30.0, f"w2{time.monotonic_ns()}:")
                assert again.id == delivery.id
                return await real_complete(delivery, *args)

            broker.complete = complete_after_reissue  # type: ignore[method-assign]
            await run_one(app, broker, 0.2, log)
        finally:
            await broker.close()

    asyncio.run(main())
    [lost] = events(stream, "job.lease_lost")
    assert lost["outcome"] == "completed" and "re-issued" in lost["detail"]
    assert events(stream, "job.settle_failed") == []


def run_worker_briefly(
    tmp_path: Path, skew: float | None
) -> tuple[io.StringIO, WorkerStatus, WorkerStatus]:
    """Start a worker on SQLite (its broker clock skewed by `skew` seconds when
    given), wait until it runs, stop it; its log and its status while running
    and once stopped."""
    url = f"sqlite:///{tmp_path}/queue.db"
    stream = io.StringIO()
    settings = Settings(broker_url=url, health_port=0, concurrency=1)

    async def main() -> tuple[int, WorkerStatus, WorkerStatus]:
        broker = from_url(url)
        if skew is not None:
            offset = skew

            async def skewed() -> float:
                return time.time() + offset

            broker.server_time = skewed  # type: ignore[method-assign]
        worker = Worker(core_app(url), settings, EventLog("info", "json", stream), broker)
        run = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 10
        while worker.status().state is not WorkerState.RUNNING:
            assert time.monotonic() < deadline and not run.done(), "worker never ran"
            await asyncio.sleep(0.02)
        running = worker.status()
        worker.request_stop()
        return await asyncio.wait_for(run, 15), running, worker.status()

    code, running, stopped = asyncio.run(main())
    assert code == 0
    return stream, running, stopped


def test_clock_skew_is_reported_at_start(tmp_path: Path) -> None:
    stream, _, _ = run_worker_briefly(tmp_path, skew=-5.0)
    [skew] = events(stream, "clock.skew")
    assert skew["level"] == "warning"
    assert -5.5 < skew["offset_s"] < -4.5
    assert abs(skew["broker_time"] - skew["local_time"] - skew["offset_s"]) < 0.01


def test_no_skew_warning_within_a_second(tmp_path: Path) -> None:
    stream, _, _ = run_worker_briefly(tmp_path, skew=0.8)
    assert events(stream, "worker.started")
    assert events(stream, "clock.skew") == []
    assert events(stream, "worker.stopped")


def test_status_snapshot_follows_the_run(tmp_path: Path) -> None:
    _, running, stopped = run_worker_briefly(tmp_path, skew=None)
    assert running.broker_ok and running.fetching and running.takes_jobs
    assert (running.in_flight, running.concurrency) == (0, 1)
    assert running.drain_elapsed_s is None and running.readiness_problems() == []
    assert stopped.state is WorkerState.STOPPED
    assert stopped.drain_elapsed_s is not None and stopped.drain_duration_s > 0
    assert stopped.readiness_problems() == ["worker is stopped"]
    assert stopped.drain_info()["state"] == "stopped"
