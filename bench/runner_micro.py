"""Micro-benchmark of the worker's per-job runner path (JobRunner.run) with no
broker I/O: a stub broker accepts every outcome at once, so what is timed is
Bananas' own per-job work (decode, checks, executor, settle bookkeeping), in
CPU time (steadier than wall time on a shared machine).

    .venv/bin/python bench/runner_micro.py 20000 15        # no hooks
    .venv/bin/python bench/runner_micro.py 20000 15 hook   # one no-op run hook

Compare against another checkout with PYTHONPATH=<its src>; docs/hooks.md has
the figures."""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import time
from typing import Any

from bananas import Bananas
from bananas.brokers.records import Delivery
from bananas.config import Settings
from bananas.logs import EventLog
from bananas.observe.stats import WorkerStats
from bananas.worker.executors import Executors
from bananas.worker.runner import JobRunner

app = Bananas("sqlite:///:memory:", settings=Settings())


@app.job()
async def noop(k: int) -> None:
    return None


class StubBroker:
    async def complete(self, *args: Any) -> bool:
        return True


async def one_round(runner: JobRunner, records: list[tuple[str, bytes]]) -> float:
    started = time.process_time()
    for job_id, raw in records:
        await runner.run(Delivery(job_id, raw, "t"))
    return (time.process_time() - started) / len(records) * 1e6


async def main(n: int, rounds: int) -> None:
    settings = Settings()
    runner = JobRunner(
        app.handlers,
        StubBroker(),
        settings,
        Executors(4),  # type: ignore[arg-type]
        EventLog("warning", "json", stream=io.StringIO()),
        WorkerStats(concurrency=4),
    )
    if len(sys.argv) > 3 and sys.argv[3] == "hook":
        from bananas.hooks import Hook, Hooks

        class Nothing(Hook):
            def before_run(self, job: Any) -> None:
                pass

            def after_run(self, job: Any, outcome: Any) -> None:
                pass

        runner.hooks = Hooks([Nothing()]).for_worker(runner.log, "w")
    jobs = app.build_jobs([noop.spec(k=i) for i in range(n)])
    records = [(j.id, j.record) for j in jobs]
    results = [await one_round(runner, records) for _ in range(rounds)]
    print(
        f"per job: median {statistics.median(results):.2f} us, min {min(results):.2f} us "
        f"({rounds} rounds of {n})"
    )


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
