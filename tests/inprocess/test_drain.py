"""Graceful stop with request_stop(): fetching stops, prefetched jobs go back
uncharged at once, in-flight jobs finish within SHUTDOWN_TIMEOUT, and what
outlasts it is cancelled and put back uncharged."""

from __future__ import annotations

import time

import pytest

from .conftest import Harness, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)


async def test_drain_finishes_in_flight_and_puts_prefetched_back(harness: Harness) -> None:
    ids = await harness.enqueue_many(
        [harness.spec("nap", k=f"j{i}", seconds=0.5) for i in range(5)]
    )
    # Two slots and three prefetched: one fetch leases all five.
    running = await harness.start(concurrency=2, prefetch=3, shutdown_timeout=10.0)
    await until(lambda: len(LEDGER.order) == 2, message="two jobs running")
    await until(
        lambda: _count(harness, "running", 5), message="all five leased (two run, three wait)"
    )
    started = set(LEDGER.order)
    assert await running.stop() == 0
    assert set(LEDGER.order) == started, "no job started after request_stop()"
    assert LEDGER.runs == {k: 1 for k in started}, "the in-flight jobs finished"
    by_key = dict(zip((f"j{i}" for i in range(5)), ids, strict=True))
    for k, job_id in by_key.items():
        if k in started:
            assert (await harness.result(job_id)).status == "completed"
        else:
            assert await harness.state(job_id) == "queued", k
            assert (await harness.record(job_id))["attempts"] == 0, k
    assert await harness.broker.count_jobs("running") == 0
    [drained] = running.events("worker.drained")
    assert drained["finished_during_drain"] == 2 and drained["put_back"] == 3


async def test_drain_past_timeout_cancels_and_puts_back_uncharged(
    one_partition: None, harness: Harness
) -> None:
    ids = await harness.enqueue_many(
        [harness.spec("nap", k=f"long{i}", seconds=30.0) for i in range(2)]
    )
    running = await harness.start(concurrency=2, prefetch=0, shutdown_timeout=0.3)
    await until(lambda: len(LEDGER.order) == 2, message="two jobs running")
    began = time.monotonic()
    assert await running.stop() == 0
    # SHUTDOWN_TIMEOUT, then the cancel: far below the jobs' 30 s.
    assert time.monotonic() - began < 3.0
    assert LEDGER.cancelled == {"long0": 1, "long1": 1} and not LEDGER.runs
    for job_id in ids:
        assert await harness.state(job_id) == "queued"
        assert (await harness.record(job_id))["attempts"] == 0
    [drained] = running.events("worker.drained")
    assert drained["put_back"] == 2 and drained["finished_during_drain"] == 0
    # Put back at the head of their queue: ahead of a job enqueued since.
    later = await harness.enqueue("nap", k="later", seconds=0.0)
    queued = [j.id for j in await harness.broker.list_jobs("queued", job_type="nap")]
    assert sorted(queued[:2]) == sorted(ids) and queued[2:] == [later], queued


async def test_idle_worker_stops_at_once(harness: Harness) -> None:
    running = await harness.start()
    began = time.monotonic()
    assert await running.stop() == 0
    took = time.monotonic() - began
    # Well under the fetch loop's 1 s idle wait and the router's 2 s one: a
    # stop must not wait them out (on Redis, redis-py can swallow the first
    # cancel of a blocking command; `until_stop` cancels until it ends).
    assert took < 0.5, f"stopping an idle worker took {took:.3f}s"
    assert running.events("worker.stopped")


async def _count(harness: Harness, state: str, n: int) -> bool:
    return await harness.broker.count_jobs(state) == n
