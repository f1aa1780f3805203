"""The Redis broker's idle fetch in one round trip (brokers/redis/wake.py):
BZPOPMIN and the dequeue go in one write, so the dequeue is already in
Redis, queued behind the pop, while the worker waits; the job that ends the
wait is leased by it. Also: a timeout, a script cache Redis lost, a killed
connection, a wait cancelled after Redis ran the dequeue, and a real worker
that starts a job enqueued while it waits and stops at once on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import redis
from apps.core import app
from support import Backend, WorkerFactory, wait_for

from bananas import Bananas, JobSpec
from bananas.brokers.base import NewJob
from bananas.brokers.redis import RedisBroker
from bananas.config import Settings
from bananas.errors import BrokerUnavailable

Q = [("normal", "t")]
ALL = [("high", "t"), ("normal", "t"), ("low", "t")]


CLIENT = Bananas(settings=Settings())  # encodes records as enqueue does, no broker


def jobs(*ids: str, priority: str = "normal") -> list[NewJob]:
    return CLIENT.build_jobs([JobSpec("t", {}, priority, job_id=i) for i in ids])


def prefix() -> str:
    return f"w:{time.monotonic_ns()}:"


def blocked_wake(r: redis.Redis) -> dict[str, Any] | None:
    """The connection blocked in BZPOPMIN with a command queued behind it."""
    for client in r.client_list():
        if client["cmd"] == "bzpopmin" and "b" in client["flags"] and int(client["qbuf"]) > 0:
            return dict(client)
    return None


def calls(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}


# What a client sends itself (the commands a script runs are counted too).
SENT = ("evalsha", "bzpopmin", "hello", "client|setinfo", "script|load", "ping")


def sent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in SENT if after.get(k) != before.get(k)}


async def until_blocked(r: redis.Redis) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while (found := blocked_wake(r)) is None:
        assert time.monotonic() < deadline, "no connection blocked with the dequeue queued"
        await asyncio.sleep(0.01)
    return found


def test_the_dequeue_waits_in_redis_behind_the_pop(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        waiter, client = RedisBroker(redis_url), RedisBroker(redis_url)
        await client.enqueue(jobs("elsewhere", priority="high"))  # connected, checked
        await waiter.dequeue(ALL, 5, 30.0, prefix())
        await waiter.wait_and_dequeue(ALL, 0.05, 5, 30.0, prefix())  # takes the marker
        token = prefix()
        task = asyncio.create_task(waiter.wait_and_dequeue(ALL, 10.0, 5, 30.0, token))
        blocked = await until_blocked(r)
        # The whole EVALSHA dequeue is in the connection's query buffer.
        assert int(blocked["qbuf"]) > 100, blocked
        before = calls(r)
        await client.enqueue(jobs("a", priority="low"))
        [delivery] = await task
        assert delivery.id == "a" and delivery.token == f"{token}1"
        # The enqueue, the pop and the dequeue: no second call from the waiter.
        assert sent(before, calls(r)) in ({"evalsha": 2}, {"evalsha": 2, "bzpopmin": 1})
        assert r.hget(waiter.keys.leases, "a") is not None
        await waiter.close()
        await client.close()

    asyncio.run(main())


def test_a_timed_out_wait_ran_the_dequeue_and_keeps_its_connection(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        waiter = RedisBroker(redis_url)
        task = asyncio.create_task(waiter.wait_and_dequeue(Q, 0.3, 5, 30.0, prefix()))
        first = await until_blocked(r)
        before = calls(r)
        assert await task == []
        assert sent(before, calls(r)) in ({"evalsha": 1}, {"evalsha": 1, "bzpopmin": 1})
        task = asyncio.create_task(waiter.wait_and_dequeue(Q, 0.3, 5, 30.0, prefix()))
        assert (await until_blocked(r))["id"] == first["id"]  # the same connection
        assert await task == []
        await waiter.close()

    asyncio.run(main())


def test_a_lost_script_cache_is_loaded_and_the_dequeue_redone(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        waiter = RedisBroker(redis_url)
        await waiter.enqueue(jobs("a", "b"))
        r.script_flush()
        got = await waiter.wait_and_dequeue(Q, 5.0, 5, 30.0, prefix())
        assert [d.id for d in got] == ["a", "b"]
        assert r.hlen(waiter.keys.leases) == 2
        await waiter.close()

    asyncio.run(main())


def test_a_killed_connection_is_unavailable_then_replaced(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        waiter, client = RedisBroker(redis_url), RedisBroker(redis_url)
        await waiter.enqueue(jobs("seen"))
        await waiter.dequeue(Q, 5, 30.0, prefix())  # the index copy now exists
        r.delete(waiter.keys.marker("normal", "t"))  # the enqueue's, left set
        assert waiter._ready_index.version != ""
        task = asyncio.create_task(waiter.wait_and_dequeue(Q, 10.0, 5, 30.0, prefix()))
        blocked = await until_blocked(r)
        r.client_kill_filter(_id=blocked["id"])
        try:
            await asyncio.wait_for(task, 5)
            raise AssertionError("a killed connection returned a reply")
        except BrokerUnavailable:
            pass
        assert waiter._ready_index.version == ""  # it may be another primary's now
        await client.enqueue(jobs("next"))
        got = await waiter.wait_and_dequeue(Q, 5.0, 5, 30.0, prefix())
        assert [d.id for d in got] == ["next"]
        await waiter.close()
        await client.close()

    asyncio.run(main())


def test_a_wait_cancelled_after_redis_ran_the_dequeue_gets_its_jobs_again(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        waiter, other = RedisBroker(redis_url), RedisBroker(redis_url)
        token = prefix()
        task = asyncio.create_task(waiter.wait_and_dequeue(Q, 10.0, 5, 30.0, token))
        await until_blocked(r)
        # Enqueued from a blocking client: the event loop does not run, so
        # the waiter cannot read the reply Redis sends once it leased the job.
        other.sync.enqueue(jobs("a"))
        deadline = time.monotonic() + 5
        while r.hget(waiter.keys.leases, "a") is None:
            assert time.monotonic() < deadline, "the queued dequeue never ran"
        task.cancel()  # before the loop reads the reply: it is lost
        await asyncio.wait([task])
        assert task.cancelled()
        assert waiter._wake is not None and waiter._wake._conn is None  # closed mid-reply
        # What the fetcher does at stop: the same prefix, count 0.
        again = await waiter.dequeue(Q, 0, 30.0, token)
        assert [(d.id, d.token) for d in again] == [("a", f"{token}1")]
        await other.enqueue(jobs("b"))
        assert [d.id for d in await waiter.wait_and_dequeue(Q, 5.0, 5, 30.0, prefix())] == ["b"]
        await waiter.close()
        await other.close()

    asyncio.run(main())


def test_a_repeated_prefix_gets_the_same_jobs(redis_url: str) -> None:
    async def main() -> None:
        broker = RedisBroker(redis_url)
        await broker.enqueue(jobs("a", "b"))
        token = prefix()
        first = await broker.wait_and_dequeue(Q, 5.0, 2, 30.0, token)
        again = await broker.dequeue(Q, 0, 30.0, token)
        assert [(d.id, d.token) for d in again] == [(d.id, d.token) for d in first]
        assert len(first) == 2 and await broker.count_jobs("queued") == 0
        await broker.close()

    asyncio.run(main())


def test_an_idle_worker_leases_on_wake_and_stops_at_once(
    target: Backend, workers: WorkerFactory, r: redis.Redis
) -> None:
    app.configure(Settings.load())
    worker = workers.start("apps.core:app")
    wait_for(lambda: blocked_wake(r), 10, message="the worker waiting with its dequeue queued")
    handle = app.enqueue("record", k="woken")
    wait_for(lambda: target.view.state(handle.id) == "completed", 10, message="the job to run")
    assert target.sink.hgetall("test:runs") == {"woken": "1"}
    wait_for(lambda: blocked_wake(r), 10, message="the worker waiting again")
    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0, worker.output()[-3000:]
    assert time.monotonic() - started < 3.0  # the blocked wait did not hold the stop
    (drained,) = worker.events("worker.drained")
    assert drained["put_back"] == 0, drained
