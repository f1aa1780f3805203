"""The stop order in-process, on each real broker: a job that runs longer than
its lease finishes during the drain and its outcome is accepted, because the
lease heartbeat is stopped only after the drain (and the recoverer, which
would otherwise hand the job to another worker, keeps running meanwhile).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

from bananas import Bananas
from bananas.brokers import from_url
from bananas.config import Settings
from bananas.logs import EventLog
from bananas.worker import Worker

LEASE = 0.6  # seconds; the job below runs for more than three leases


def slow_app(url: str) -> Bananas:
    app = Bananas(url)

    @app.job()
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    return app


def test_a_job_longer_than_its_lease_finishes_during_the_drain(store_url: str) -> None:
    stream = io.StringIO()
    settings = Settings(
        broker_url=store_url,
        health_port=0,
        concurrency=1,
        lease_timeout=LEASE,
        shutdown_timeout=10.0,
        enable_scheduler=False,
    )

    async def main() -> tuple[int, Any]:
        app = slow_app(store_url)
        broker = from_url(store_url)
        reader = from_url(store_url)
        try:
            await reader.enqueue(app.build_jobs([app.spec("slow", {"seconds": LEASE * 3.5})]))
            worker = Worker(app, settings, EventLog("info", "json", stream), broker)
            run = asyncio.create_task(worker.run())
            deadline = time.monotonic() + 10
            while worker.status().in_flight == 0:
                assert time.monotonic() < deadline and not run.done(), "the job never started"
                await asyncio.sleep(0.02)
            worker.request_stop()  # the job has more than three leases to go
            code = await asyncio.wait_for(run, 20)
            return code, await reader.list_jobs("completed")
        finally:
            await reader.close()

    code, completed = asyncio.run(main())
    assert code == 0
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    names = [e["event"] for e in lines]
    assert "job.lease_lost" not in names and "job.recovered" not in names, names
    [drained] = [e for e in lines if e["event"] == "worker.drained"]
    assert drained["finished_during_drain"] == 1 and drained["put_back"] == 0
    assert drained["drain_s"] > LEASE * 2  # it did outlive its lease
    assert len(completed) == 1 and "job.completed" in names, names
