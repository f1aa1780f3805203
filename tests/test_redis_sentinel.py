"""A RedisBroker on a redis+sentinel:// URL, in-process, against the real
sentinel bed (tests/topology.py): the start-up probes work through the
sentinels, the batcher's and the sync client's own connections follow a
failover to the promoted replica, `bananas status` shows the URL redacted,
and closing the broker closes its sentinel connections (a leaked one is a
ResourceWarning, an error under this suite's filterwarnings)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from topology import SentinelBed
from topology_base import poll

from bananas import Bananas, BrokerUnavailable
from bananas.brokers import from_url
from bananas.brokers.redis import RedisBroker
from bananas.brokers.redis.sentinel import RECHECK_S

SECRET = "primary-secret-1"
SENTINEL_SECRET = "sentinel-secret-2"
Q = [("normal", "noop")]


def make_app(url: str) -> Bananas:
    app = Bananas(url)

    @app.job()
    async def noop(k: str) -> str:
        return k

    return app


async def until_available(action: Callable[[], Any], timeout: float = 20) -> Any:
    """`await action()` until it stops raising BrokerUnavailable."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await action()
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_a_broker_on_sentinel_follows_a_failover(
    sentinel_factory: Callable[..., SentinelBed],
) -> None:
    bed = sentinel_factory(password=SECRET, sentinel_password=SENTINEL_SECRET)
    app = make_app(bed.url)

    async def main() -> None:
        broker = from_url(bed.url)
        assert isinstance(broker, RedisBroker)
        try:
            await broker.check_access("worker")
            assert await broker.durability_warnings() == []  # read from the primary
            assert SECRET not in broker.describe() and SENTINEL_SECRET not in broker.describe()
            assert await broker.enqueue(app.build_jobs([app.spec("noop", {"k": "before"})]))
            [got] = await broker.dequeue(Q, 1, 30.0, "w:1:")
            assert await broker.complete(got, (got.raw or b""), b'"before"', 1.0)
            assert broker._batcher is not None and broker._batcher._conn.port == bed.primary_port

            old = bed.kill_primary()
            new = await asyncio.to_thread(bed.wait_promoted, 30)
            assert new != old

            jobs = app.build_jobs([app.spec("noop", {"k": "after"})])
            assert await until_available(lambda: broker.enqueue(jobs)) == [True]
            [got] = await until_available(lambda: broker.dequeue(Q, 1, 30.0, "w:2:"))
            assert await broker.complete(got, (got.raw or b""), b'"after"', 1.0)
            # the batcher's own connection (not from the pool) found the new primary
            assert broker._batcher._conn.port == new
            assert await broker.job_state(got.id) == "completed"
        finally:
            await broker.close()

    asyncio.run(main())


def test_the_sync_client_follows_a_failover(
    sentinel_factory: Callable[..., SentinelBed],
) -> None:
    bed = sentinel_factory(password=SECRET)
    app = make_app(bed.url)
    broker = RedisBroker(bed.url)
    try:
        assert broker.sync.enqueue(app.build_jobs([app.spec("noop", {"k": "a"})])) == [True]
        old = bed.kill_primary()
        new = bed.wait_promoted(30)
        deadline = time.monotonic() + 20
        while True:
            try:
                assert broker.sync.enqueue(app.build_jobs([app.spec("noop", {"k": "b"})]))
                break
            except BrokerUnavailable:
                assert time.monotonic() < deadline, "no enqueue 20 s after the promotion"
                time.sleep(0.1)
        # the enqueue that failed dropped this thread's held connection; the
        # next one makes it again, through the sentinels
        assert broker.sync.enqueue(app.build_jobs([app.spec("noop", {"k": "c"})])) == [True]
        held = broker.sync._local.conn
        assert held.port == new != old
    finally:
        asyncio.run(broker.close())


def test_status_shows_the_sentinel_url_redacted(
    sentinel_factory: Callable[..., SentinelBed],
) -> None:
    bed = sentinel_factory(password=SECRET, sentinel_password=SENTINEL_SECRET)
    env = {**os.environ, "REDIS_URL": bed.url}
    env.pop("BANANAS_BROKER_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bananas.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert SECRET not in text and SENTINEL_SECRET not in text
    assert "redis+sentinel://:***@127.0.0.1:" in text and "sentinel_password=***" in text


def test_a_planned_failover_loses_no_acknowledged_enqueue(
    sentinel_factory: Callable[..., SentinelBed],
) -> None:
    """SENTINEL FAILOVER: the old primary stays up, still a primary, for ~10 s
    after the promotion (until the sentinels reconfigure it), and its resync
    as a replica then discards what it took meanwhile. Connections that stay
    open on it (the batcher's, the sync client's held one) must move to the
    promoted replica within RECHECK_S, not when the old one is demoted."""
    bed = sentinel_factory()
    app = make_app(bed.url)

    async def main() -> None:
        broker = from_url(bed.url)
        assert isinstance(broker, RedisBroker)
        try:
            assert await broker.enqueue(app.build_jobs([app.spec("noop", {"k": "before"})]))
            assert broker.sync.enqueue(app.build_jobs([app.spec("noop", {"k": "sync"})]))
            old = bed.primary_port
            assert broker._batcher is not None and broker._batcher._conn.port == old
            with bed.sentinel_client() as s:
                assert s.execute_command("SENTINEL FAILOVER", "mymaster")
            new = await asyncio.to_thread(bed.wait_promoted, 30)
            # the longest the clients may go on trusting the sentinels' last answer
            await asyncio.sleep(RECHECK_S)
            with bed.client(old) as c:  # the window: the old primary still takes writes
                assert c.execute_command("ROLE")[0] == "master"
            jobs = app.build_jobs([app.spec("noop", {"k": f"after{i}"}) for i in range(2)])
            assert await broker.enqueue(jobs[:1]) == [True]
            assert await asyncio.to_thread(broker.sync.enqueue, jobs[1:]) == [True]
            assert broker._batcher._conn.port == new

            def demoted() -> bool:
                with bed.client(old) as c:
                    return bool(c.execute_command("ROLE")[0] == "slave")

            await asyncio.to_thread(poll, demoted, 30, "the old primary to become a replica")
            for job in jobs:  # still there once the old primary has resynced
                assert await broker.job_state(job.id) == "queued", job
        finally:
            await broker.close()

    asyncio.run(main())
