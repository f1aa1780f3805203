"""Broker-level behaviour on Redis: leases, tokens, recovery, scripts."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from bananas.brokers.base import DeadInfo, NewJob
from bananas.brokers.redis import RedisBroker
from bananas.errors import BrokerError
from bananas.job import build_record
from bananas.loops import PeriodicTasks

Q = [("normal", "t")]


def job(i: int) -> NewJob:
    record = build_record(
        job_id=f"j{i}",
        name="t",
        payload_json=b"{}",
        priority="normal",
        max_retries=None,
        scheduled_for=None,
    )
    return NewJob(f"j{i}", "t", "normal", record)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_stale_ack_is_refused(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1)])
        [first] = await b.dequeue(Q, 1, 0.2, "w1:")
        await asyncio.sleep(0.3)
        report = await b.recover_expired(max_stalls=3)
        assert report.recovered == ["j1"]
        [second] = await b.dequeue(Q, 1, 10, "w2:")
        assert first.token != second.token
        # The slow first worker: its heartbeat, ack, retry and bury are all refused.
        assert await b.extend_leases([(first.id, first.token)], 10) == ["j1"]
        assert not await b.complete(first, b"{}", b"1", 1.0)
        assert not await b.retry(first, b"{}", time.time())
        assert not await b.bury(first, None, DeadInfo("x", "x"), 1.0)
        assert await b.complete(second, b'{"id":"j1"}', b"2", 1.0)
        await b.close()

    run(main())
    assert r.hget("bananas:result:j1", "result") == "2"
    assert r.hget("bananas:stalls", "j1") is None


def test_heartbeat_keeps_lease(redis_url: str) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1)])
        [d] = await b.dequeue(Q, 1, 0.5, "w:")
        for _ in range(4):
            await asyncio.sleep(0.2)
            assert await b.extend_leases([(d.id, d.token)], 0.5) == []
            assert (await b.recover_expired(3)).recovered == []
        assert await b.complete(d, b"{}", None, 1.0)
        await b.close()

    run(main())


def test_priority_order_and_batch_dequeue(redis_url: str) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        jobs = []
        for i, p in enumerate(["low", "normal", "high", "low", "high"]):
            rec = build_record(
                job_id=f"p{i}",
                name="t",
                payload_json=b"{}",
                priority=p,
                max_retries=None,
                scheduled_for=None,
            )
            jobs.append(NewJob(f"p{i}", "t", p, rec))
        await b.enqueue(jobs)
        order = [("high", "t"), ("normal", "t"), ("low", "t")]
        got = await b.dequeue(order, 10, 5, "w:")
        assert [d.id for d in got] == ["p2", "p4", "p1", "p0", "p3"]
        await b.close()

    run(main())


def test_wait_for_jobs_wakes_on_enqueue(redis_url: str) -> None:
    async def main() -> float:
        b = RedisBroker(redis_url)
        waiter = asyncio.create_task(b.wait_for_jobs(Q, 5))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        other = RedisBroker(redis_url)
        await other.enqueue([job(1)])
        await other.close()
        assert await waiter
        elapsed = time.monotonic() - t0
        await b.close()
        return elapsed

    assert run(main()) < 1.0


def test_scripts_reload_after_script_flush(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1)])
        r.script_flush()
        assert len(await b.dequeue(Q, 1, 5, "w:")) == 1
        await b.close()

    run(main())


@pytest.mark.parametrize("count", [1, 1200])
def test_enqueue_many_chunks(redis_url: str, r: redis.Redis, count: int) -> None:
    b = RedisBroker(redis_url)
    assert b.enqueue_sync([job(i) for i in range(count)]) == [True] * count
    assert r.llen("bananas:ready:normal:t") == count
    assert b.enqueue_sync([job(0)]) == [False]
    run(b.close())


def test_scripts_reload_after_script_flush_for_merged_acks_and_sync_enqueue(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(i) for i in range(5)])
        got = await b.dequeue(Q, 5, 30, "w:")
        r.script_flush()
        done = await asyncio.gather(*(b.complete(d, b"{}", None, 1.0) for d in got))
        assert done == [True] * 5
        await b.close()

    run(main())
    assert r.zcard("bananas:active") == 0 and r.hlen("bananas:leases") == 0
    r.script_flush()
    b = RedisBroker(redis_url)
    assert b.enqueue_sync([job(i) for i in range(10, 1210)]) == [True] * 1200
    run(b.close())


def test_a_call_that_cannot_be_sent_fails_alone_and_the_broker_goes_on(redis_url: str) -> None:
    """No caller may wait forever, and one bad call does not fail the others
    pipelined with it."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1), job(2)])
        bad = b._call("extend", ["bananas:active", "bananas:leases"], [object()])
        good = b.dequeue(Q, 1, 30, "w:")
        outcomes = await asyncio.wait_for(
            asyncio.gather(bad, good, return_exceptions=True), timeout=10
        )
        assert isinstance(outcomes[0], BrokerError), outcomes
        assert [d.id for d in outcomes[1]] == ["j1"]
        [d] = await asyncio.wait_for(b.dequeue(Q, 1, 30, "w:"), timeout=10)
        assert d.id == "j2"
        await b.close()

    run(main())


def test_one_bad_ack_in_a_merged_batch_fails_alone(redis_url: str, r: redis.Redis) -> None:
    """A job whose result key holds a foreign value cannot be acked; the acks
    sharing its script call still are, and its lease stays for recovery."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(i) for i in range(1, 4)])
        got = await b.dequeue(Q, 3, 30, "w:")
        r.set("bananas:result:j2", "not a hash")
        outcomes = await asyncio.gather(
            *(b.complete(d, b"{}", None, 1.0) for d in got), return_exceptions=True
        )
        assert outcomes[0] is True and outcomes[2] is True, outcomes
        assert isinstance(outcomes[1], BrokerError) and "WRONGTYPE" in str(outcomes[1])
        await b.close()

    run(main())
    assert r.zrange("bananas:active", 0, -1) == ["j2"]
    assert r.hget("bananas:result:j1", "status") == "completed"
    assert r.hget("bananas:result:j3", "status") == "completed"


def test_periodic_loops_on_redis_stop_even_when_a_cancel_is_swallowed(redis_url: str) -> None:
    """redis-py (with our retry policy and health checks) can swallow a cancel
    that lands mid-command and return normally; a loop cancelled once then ran
    on and the worker's stop waited for it forever (seen as a worker hanging
    after worker.drained). 200 loops of pings, each stopped at a random point
    of a command: every stop must end."""

    async def main() -> None:
        broker = RedisBroker(redis_url)
        errors: list[Exception] = []
        try:
            for i in range(200):
                loops = PeriodicTasks(lambda name, exc: errors.append(exc))
                loops.add("ping", 0.0, broker.ping)
                for _ in range(1 + i % 7):
                    await asyncio.sleep(0)
                await asyncio.wait_for(loops.stop(), 5)
        finally:
            await broker.close()
        assert errors == []

    asyncio.run(main())
