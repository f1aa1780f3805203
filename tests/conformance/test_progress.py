"""Progress and lease reads: what a running job reports (set_progress) is read
back from asyncio and plain code, only by the lease holder, kept for its TTL;
job_lease names the worker holding a running job."""

from __future__ import annotations

import asyncio
import time

from bananas.brokers import Broker

from .conftest import Brokers
from .kit import jobs, lease_one, record, until


async def test_the_holder_writes_progress_and_any_client_reads_it(brokers: Brokers) -> None:
    worker, client = brokers.new(), brokers.new()
    await worker.enqueue(jobs("p"))
    lease = await lease_one(worker)
    assert await client.get_progress("p") is None
    before = time.time()
    assert await worker.set_progress(lease, 0.25, "a quarter", 1, 60)
    got = await client.get_progress("p")
    assert got is not None
    assert (got.fraction, got.message, got.attempt) == (0.25, "a quarter", 1)
    assert before - 2 <= got.updated_at <= time.time() + 2
    assert await worker.set_progress(lease, 0.5, "half ✓", 2, 60)
    got = await asyncio.to_thread(client.sync.get_progress, "p")
    assert got is not None and (got.fraction, got.message, got.attempt) == (0.5, "half ✓", 2)


async def test_a_caller_without_the_lease_writes_nothing(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b"))
    lease = await lease_one(broker)
    other = await lease_one(broker)
    assert lease.id == "a" and other.id == "b"
    stale = type(lease)(lease.id, lease.raw, other.token)
    assert not await broker.set_progress(stale, 0.9, "not mine", 1, 60)
    assert await broker.get_progress("a") is None
    assert await broker.set_progress(lease, 0.5, "mine", 1, 60)
    assert await broker.complete(lease, record("a"), None, 1.0)
    # Settled: a handler still running (a thread past its timeout) cannot write.
    assert not await broker.set_progress(lease, 0.75, "late", 1, 60)
    got = await broker.get_progress("a")
    assert got is not None and got.message == "mine"


async def test_progress_expires_after_its_ttl(broker: Broker) -> None:
    await broker.enqueue(jobs("e"))
    lease = await lease_one(broker)
    assert await broker.set_progress(lease, 1.0, "done", 1, 1)
    assert await broker.get_progress("e") is not None

    async def gone() -> bool:
        await broker.recover_expired(3)  # SQLite's purge point; Redis expires by itself
        return await broker.get_progress("e") is None

    await until(gone, timeout=5.0, message="the progress to expire")


async def test_job_lease_names_the_holding_worker(broker: Broker) -> None:
    await broker.enqueue(jobs("r", "q"))
    assert await broker.job_lease("r") is None  # queued
    started = time.time()
    [first, second] = await broker.dequeue([("normal", "t")], 2, 30.0, "host:123:abc:7:", start=1)
    assert await broker.job_lease("nope") is None
    lease = await broker.job_lease(first.id)
    assert lease is not None
    assert lease.worker == "host:123:abc" and lease.started
    assert started + 25 < lease.deadline < time.time() + 35
    waiting = await broker.job_lease(second.id)
    assert waiting is not None and waiting.worker == "host:123:abc" and not waiting.started
    assert await broker.complete(first, record(first.id), None, 1.0)
    assert await broker.job_lease(first.id) is None
