"""An idle worker's fetch (`wait_and_dequeue`): wait for a job, then lease it,
with `dequeue`'s contract (order, count, leases, tokens, a repeated prefix
answered again). Redis does both in one round trip (tests/test_wake.py
shows that); SQLite keeps the default of the two calls."""

from __future__ import annotations

import asyncio
import time

from bananas.brokers import Broker

from .conftest import Brokers
from .kit import Q, jobs, take

ALL = [("high", "t"), ("normal", "t"), ("low", "t")]


def prefix() -> str:
    return f"w:{time.monotonic_ns()}:"


async def test_ready_jobs_are_leased_at_once(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b", "c"))
    token = prefix()
    started = time.monotonic()
    got = await broker.wait_and_dequeue(Q, 5.0, 2, 30.0, token)
    assert time.monotonic() - started < 0.5
    assert [d.id for d in got] == ["a", "b"]
    assert all(d.token.startswith(token) for d in got)
    assert await broker.job_state("a") == "running"
    assert await take(broker, 5) == ["c"]


async def test_times_out_empty_when_idle(broker: Broker) -> None:
    await broker.enqueue(jobs("elsewhere", name="other"))
    started = time.monotonic()
    assert await broker.wait_and_dequeue(Q, 0.3, 5, 30.0, prefix()) == []
    assert 0.25 <= time.monotonic() - started < 2.0
    assert await broker.job_state("elsewhere") == "queued"


async def test_wakes_on_another_clients_enqueue_and_leases_the_job(brokers: Brokers) -> None:
    waiter, client = brokers.new(), brokers.new()
    await client.ping()
    # The waiter's last dequeue saw every list empty: the list the enqueue
    # fills is one its view of the ready lists lacks, and must still be read.
    assert await waiter.dequeue(ALL, 5, 30.0, prefix()) == []
    token = prefix()
    task = asyncio.create_task(waiter.wait_and_dequeue(ALL, 10.0, 5, 30.0, token))
    await asyncio.sleep(0.2)
    assert not task.done()
    sent = time.monotonic()
    await client.enqueue(jobs("wake", priority="low"))
    [delivery] = await task
    assert time.monotonic() - sent < 0.25
    assert delivery.id == "wake" and delivery.token.startswith(token)
    assert await client.job_state("wake") == "running"
    assert await waiter.complete(delivery, delivery.raw or b"", None, 1.0)
    assert await client.job_state("wake") == "completed"


async def test_the_queue_order_holds(broker: Broker) -> None:
    await broker.enqueue(jobs("l", priority="low") + jobs("h", priority="high"))
    got = await broker.wait_and_dequeue(ALL, 5.0, 1, 30.0, prefix())
    assert [d.id for d in got] == ["h"]


async def test_a_cancelled_wait_leaves_the_broker_usable(brokers: Brokers) -> None:
    waiter, client = brokers.new(), brokers.new()
    task = asyncio.create_task(waiter.wait_and_dequeue(Q, 30.0, 5, 30.0, prefix()))
    await asyncio.sleep(0.2)
    task.cancel()
    started = time.monotonic()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert done and task.cancelled()
    assert time.monotonic() - started < 2.0
    await client.enqueue(jobs("after"))
    got = await waiter.wait_and_dequeue(Q, 5.0, 5, 30.0, prefix())
    assert [d.id for d in got] == ["after"]
