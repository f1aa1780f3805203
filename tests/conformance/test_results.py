"""Results: stored on completion and on failure, read and waited on from
asyncio and from plain code, kept for the result TTL."""

from __future__ import annotations

import asyncio
import time

from bananas.brokers import Broker
from bananas.brokers.base import DeadInfo

from .conftest import Brokers
from .kit import jobs, lease_one, record, until

# A waiter must wake on the completion itself (Redis: the PUBLISH; SQLite:
# the 25 ms watcher), well before the Redis waits' 1 s fallback poll
# (RESULT_POLL_S) could find the result: with the PUBLISH gone, these fail.
WAKE_BOUND = 0.4


async def test_complete_stores_the_result(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b"))
    a, b = await lease_one(broker), await lease_one(broker)
    done = record("a", status="completed", attempts=1)
    assert await broker.complete(a, done, b'{"sent": true}', 12.34567)
    assert await broker.complete(b, record("b"), None, 0.5)
    result = await broker.get_result("a")
    assert result is not None
    assert result.status == "completed" and result.error is None
    assert result.value() == {"sent": True}
    assert result.duration_ms == 12.346
    assert result.completed_at.endswith("Z") and "T" in result.completed_at
    none = await broker.get_result("b")
    assert none is not None and none.result is None and none.value() is None
    assert await broker.job_state("a") == "completed"
    assert await broker.get_record("a") == done
    assert await broker.count_jobs("running") == 0


async def test_missing_results(broker: Broker) -> None:
    assert await broker.get_result("nope") is None
    assert await broker.get_results([]) == []
    await broker.enqueue(jobs("a", "b"))
    assert await broker.complete(await lease_one(broker), record("a"), b"1", 1.0)
    got = await broker.get_results(["b", "a", "nope", "a"])
    assert [r.value() if r else None for r in got] == [None, 1, None, 1]
    assert got[1] is not None and got[1].status == "completed"


async def test_wait_result_wakes_when_another_client_completes(brokers: Brokers) -> None:
    client, worker = brokers.new(), brokers.new()
    await worker.enqueue(jobs("w"))
    lease = await lease_one(worker)
    waiting = asyncio.create_task(client.wait_result("w", 10.0))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    finished = time.monotonic()
    assert await worker.complete(lease, record("w"), b'"hi"', 1.0)
    result = await waiting
    assert result is not None and result.value() == "hi"
    assert time.monotonic() - finished < WAKE_BOUND


async def test_wait_result_returns_a_failure(brokers: Brokers) -> None:
    client, worker = brokers.new(), brokers.new()
    await worker.enqueue(jobs("f"))
    lease = await lease_one(worker)
    waiting = asyncio.create_task(client.wait_result("f", 10.0))
    await asyncio.sleep(0.2)
    finished = time.monotonic()
    assert await worker.bury(lease, None, DeadInfo("gave up", "KeyError: x"), 1.0)
    result = await waiting
    assert time.monotonic() - finished < WAKE_BOUND
    assert result is not None and result.status == "failed" and result.error == "KeyError: x"


async def test_wait_result_times_out(broker: Broker) -> None:
    await broker.enqueue(jobs("slow"))
    started = time.monotonic()
    assert await broker.wait_result("slow", 0.3) is None
    assert 0.25 <= time.monotonic() - started < 2.0
    started = time.monotonic()
    assert await broker.wait_result("slow", 0) is None
    assert time.monotonic() - started < 0.5


async def test_wait_result_when_already_done(broker: Broker) -> None:
    await broker.enqueue(jobs("a"))
    assert await broker.complete(await lease_one(broker), record("a"), b"7", 1.0)
    result = await broker.wait_result("a", 0)
    assert result is not None and result.value() == 7


async def test_sync_client_waits_while_a_worker_completes(brokers: Brokers) -> None:
    client, worker = brokers.new(), brokers.new()
    ids = await asyncio.to_thread(client.sync.enqueue, jobs("s"))
    assert ids == [True]
    assert await asyncio.to_thread(client.sync.get_result, "s") is None
    waiting = asyncio.create_task(asyncio.to_thread(client.sync.wait_result, "s", 10.0))
    lease = await lease_one(worker)
    await asyncio.sleep(0.2)
    finished = time.monotonic()
    assert await worker.complete(lease, record("s"), b"[1, 2]", 1.0)
    result = await waiting
    assert time.monotonic() - finished < WAKE_BOUND
    assert result is not None and result.value() == [1, 2]
    again = await asyncio.to_thread(client.sync.get_result, "s")
    assert again is not None and again.status == "completed"
    assert await asyncio.to_thread(client.sync.wait_result, "nope", 0.2) is None


async def test_same_client_completes_and_waits(broker: Broker) -> None:
    await broker.enqueue(jobs("me"))
    lease = await lease_one(broker)
    waiting = asyncio.create_task(broker.wait_result("me", 10.0))
    await asyncio.sleep(0.1)
    assert await broker.complete(lease, record("me"), b"1", 1.0)
    result = await asyncio.wait_for(waiting, 2.0)
    assert result is not None and result.value() == 1


async def test_results_and_records_expire_after_the_ttl(brokers: Brokers) -> None:
    broker = brokers.new(result_ttl=1.0)
    await broker.enqueue(jobs("t", "f"))
    assert await broker.complete(await lease_one(broker), record("t"), b"1", 1.0)
    assert await broker.bury(await lease_one(broker), None, DeadInfo("x", "y"), 1.0)
    assert await broker.get_result("t") is not None

    async def gone() -> bool:
        return await broker.get_result("t") is None and await broker.get_result("f") is None

    await until(gone, timeout=5.0, message="results to expire")
    assert await broker.get_record("t") is None
    assert await broker.job_state("t") is None
    assert await broker.job_state("f") == "dead"  # a dead letter stays until handled
    assert await broker.get_record("f") is not None
    assert await broker.enqueue(jobs("t")) == [True]  # the id is free again


async def test_many_waiters_each_get_their_own_result(brokers: Brokers) -> None:
    client, worker = brokers.new(), brokers.new()
    ids = [f"m{i}" for i in range(30)]
    await worker.enqueue(jobs(*ids))
    waits = [asyncio.create_task(client.wait_result(i, 10.0)) for i in ids]
    leases = await worker.dequeue([("normal", "t")], 30, 30.0, "w:")
    await asyncio.sleep(0.1)
    for d in leases:
        assert await worker.complete(d, record(d.id), f'"{d.id}"'.encode(), 1.0)
    results = await asyncio.wait_for(asyncio.gather(*waits), 5.0)
    assert [r.value() if r else None for r in results] == ids
