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

from bananas import Bananas, BrokerUnavailable
from bananas.brokers import from_url
from bananas.brokers.redis import RedisBroker

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
