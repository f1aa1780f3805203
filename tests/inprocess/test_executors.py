"""The three executors behind the Worker: results, job context, timeouts."""

from __future__ import annotations

import os

import pytest

from .conftest import Harness, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)


async def test_async_thread_and_process_jobs_return_results(harness: Harness) -> None:
    await harness.start(concurrency=2)
    a = await harness.enqueue("add", a=2, b=3)
    t = await harness.enqueue("in_thread", k="t")
    p = await harness.enqueue("in_process", n=10)
    assert (await harness.result(a)).value() == 5
    thread = await harness.result(t)
    assert thread.status == "completed", thread.error
    # A plain function runs in the pool's thread, with the job's context copied in.
    assert thread.value() == {"thread": thread.value()["thread"], "job_id": t, "attempt": 1}
    assert thread.value()["thread"].startswith("bananas-job")
    process = await harness.result(p, timeout=30)  # a spawned pool starts cold
    assert process.status == "completed", process.error
    assert process.value()["sum"] == sum(i * i for i in range(10))
    assert process.value()["pid"] != os.getpid()


async def test_timeouts_dead_letter_and_the_worker_runs_on(harness: Harness) -> None:
    running = await harness.start(concurrency=3)
    ha = await harness.enqueue("hang_async", k="a")
    ht = await harness.enqueue("hang_thread", k="t")
    hp = await harness.enqueue("hang_process", k="p")
    for job_id in (ha, ht, hp):
        await until(lambda j=job_id: _is_dead(harness, j), 30, message=f"{job_id} dead-lettered")
    # The async job was cancelled at its timeout, retried once, cancelled again.
    assert LEDGER.attempts("a") == 2 and LEDGER.cancelled["a"] == 2
    assert LEDGER.attempts("t") == 1
    infos = {j: await harness.broker.get_dead_info(j) for j in (ha, ht, hp)}
    assert "timed out after 0.2s (cancelled)" in infos[ha].error  # type: ignore[union-attr]
    assert "thread left running" in infos[ht].error  # type: ignore[union-attr]
    assert "process killed" in infos[hp].error  # type: ignore[union-attr]
    # After a killed pool the worker still runs jobs, process ones included.
    after = await harness.enqueue("in_process", n=4)
    assert (await harness.result(after, timeout=30)).value()["sum"] == 14
    assert running.alive


async def test_a_crashed_process_job_is_dead_lettered_and_the_pool_restarts(
    harness: Harness,
) -> None:
    running = await harness.start(concurrency=2)
    crashed = await harness.enqueue("crash_process")
    await until(lambda: _is_dead(harness, crashed), 30, message="the crashed job dead-lettered")
    info = await harness.broker.get_dead_info(crashed)
    assert info is not None and "the job's process died" in info.error
    after = await harness.enqueue("in_process", n=3)
    assert (await harness.result(after, timeout=30)).value()["sum"] == 5
    assert running.alive


async def _is_dead(harness: Harness, job_id: str) -> bool:
    return await harness.state(job_id) == "dead"
