"""REDIS_MIN_REPLICAS: writes are acknowledged once N replicas have them
(`WAIT N timeout` after each pipeline), on a real primary + replica
(`--replicaof`) and real worker processes. The replica is paused with
SIGSTOP to make its acknowledgements late."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.core import app
from replication import Replicated
from support import BrokerView, WorkerFactory, wait_for

from bananas.brokers import from_url
from bananas.brokers.redis import RedisBroker
from bananas.config import Settings
from bananas.errors import ConfigError, ReplicationTimeout


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Replicated]:
    replicated = Replicated(tmp_path / "redis").start()
    yield replicated
    app.configure(Settings.load(env={}))  # drops the app's clients of this pair
    replicated.stop()


@pytest.fixture
def factory(pair: Replicated, tmp_path: Path) -> Iterator[WorkerFactory]:
    workers = WorkerFactory(pair.url, tmp_path)
    yield workers
    workers.stop_all()


def use(pair: Replicated, **env: str) -> None:
    """The in-process app enqueues onto the pair's primary with these settings."""
    app.configure(Settings.load(env={"REDIS_URL": pair.url, **env}))


def runs(pair: Replicated) -> dict[str, str]:
    client = redis.Redis(port=pair.primary.port, decode_responses=True)
    try:
        return dict(client.hgetall("test:runs"))
    finally:
        client.close()


def completed(view: BrokerView, ids: list[str]) -> bool:
    return all(view.state(i) == "completed" for i in ids)


def test_one_replica_acknowledges_every_write_of_a_drain(
    pair: Replicated, factory: WorkerFactory
) -> None:
    pair.reset_stats()
    use(pair, REDIS_MIN_REPLICAS="1")
    ids = [app.enqueue("record", k=f"s{i}").id for i in range(60)]

    async def produce() -> list[str]:
        handles = [await app.enqueue_async("record", k=f"a{i}") for i in range(20)]
        await app.async_broker().close()
        return [h.id for h in handles]

    ids += asyncio.run(produce())
    # One WAIT per sync call, at least one per async pipeline: 80 enqueues acknowledged.
    after_enqueue = pair.wait_calls()
    assert after_enqueue >= 61, after_enqueue
    factory.start("apps.core:app", REDIS_MIN_REPLICAS="1")
    view = BrokerView(pair.url)
    try:
        wait_for(lambda: completed(view, ids), 30, interval=0.1, message="80 jobs completed")
    finally:
        view.close()
    assert runs(pair) == {**{f"s{i}": "1" for i in range(60)}, **{f"a{i}": "1" for i in range(20)}}
    # The worker's dequeues and acks waited for the replica too.
    assert pair.wait_calls() > after_enqueue
    assert not factory.repeat_causes()


def test_without_the_setting_no_wait_is_sent(pair: Replicated, factory: WorkerFactory) -> None:
    pair.reset_stats()
    use(pair)
    ids = [app.enqueue("record", k=f"s{i}").id for i in range(30)]

    async def produce() -> list[str]:
        handles = [await app.enqueue_async("record", k=f"a{i}") for i in range(10)]
        await app.async_broker().close()
        return [h.id for h in handles]

    ids += asyncio.run(produce())
    factory.start("apps.core:app")
    view = BrokerView(pair.url)
    try:
        wait_for(lambda: completed(view, ids), 30, interval=0.1, message="40 jobs completed")
    finally:
        view.close()
    assert len(runs(pair)) == 40
    assert pair.wait_calls() == 0


def test_enqueue_without_a_replica_raises_replication_timeout(pair: Replicated) -> None:
    use(pair, REDIS_MIN_REPLICAS="1", REDIS_MIN_REPLICAS_TIMEOUT="300ms")
    app.enqueue("record", k="warm")  # the client connected and checked its permissions
    pair.pause_replica()
    started = time.monotonic()
    with pytest.raises(ReplicationTimeout) as info:
        app.enqueue("record", k="sync", _job_id="job-sync")
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5, elapsed
    message = str(info.value)
    assert "0 of 1 Redis replicas acknowledged the write within 300ms" in message
    assert "REDIS_MIN_REPLICAS=1" in message and "idempotent" in message
    assert "job-sync" in message and info.value.job_ids == ("job-sync",)
    assert pickle.loads(pickle.dumps(info.value)).job_ids == ("job-sync",)

    async def enqueue_async() -> float:
        broker = app.async_broker()
        with contextlib.suppress(ReplicationTimeout):  # it checked permissions too: time the next
            await app.enqueue_async("record", k="warm-a")
        began = time.monotonic()
        try:
            with pytest.raises(ReplicationTimeout) as raised:
                await app.enqueue_async("record", k="async", _job_id="job-async")
            assert raised.value.job_ids == ("job-async",)
            return time.monotonic() - began
        finally:
            await broker.close()

    elapsed = asyncio.run(enqueue_async())
    assert 0.3 <= elapsed < 1.5, elapsed
    # Applied on the primary all the same, and sending it again is safe.
    view = BrokerView(pair.url)
    try:
        assert view.state("job-sync") == "queued"
        pair.resume_replica()
        again = app.enqueue("record", k="sync", _job_id="job-sync")
        assert again.id == "job-sync"
        assert view.queued("record").count("job-sync") == 1
    finally:
        view.close()


def test_a_settle_waits_for_the_replica_and_the_job_runs_once(
    pair: Replicated, factory: WorkerFactory
) -> None:
    use(pair, REDIS_MIN_REPLICAS="1")
    worker = factory.start(
        "apps.core:app",
        REDIS_MIN_REPLICAS="1",
        REDIS_MIN_REPLICAS_TIMEOUT="200ms",
        LEASE_TIMEOUT="30s",
    )
    job = app.enqueue("sleepy", k="slow", seconds=1.0)
    sink = redis.Redis(port=pair.primary.port, decode_responses=True)
    view = BrokerView(pair.url)
    try:
        wait_for(lambda: sink.hget("test:started", "slow"), 20, message="the job to start")
        pair.pause_replica()
        # The ack is applied on the primary, but the replica cannot confirm it.
        wait_for(lambda: view.result(job.id) is not None, 10, message="the ack on the primary")
        waits = pair.wait_calls()
        wait_for(lambda: pair.wait_calls() >= waits + 5, 10, message="the worker retrying")
        assert not [e for e in worker.events("job.completed") if e.get("job_id") == job.id]
        pair.resume_replica()

        def acknowledged() -> bool:
            return any(e.get("job_id") == job.id for e in worker.events("job.completed"))

        wait_for(acknowledged, 10, message="job.completed once the replica is back")
        assert view.state(job.id) == "completed"
        assert runs(pair) == {"slow": "1"}
        assert not factory.repeat_causes(), factory.repeat_causes()
        # Its dequeues failed meanwhile: a fetch error, said with the cause.
        fetch_errors = worker.events("broker.unreachable")
        assert any("replicas acknowledged" in e.get("error", "") for e in fetch_errors)
        # And the worker goes on taking jobs.
        after = app.enqueue("record", k="after")
        wait_for(lambda: view.state(after.id) == "completed", 20, message="a job after")
        assert runs(pair) == {"slow": "1", "after": "1"}
    finally:
        sink.close()
        view.close()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"REDIS_MIN_REPLICAS": "-1"}, "REDIS_MIN_REPLICAS='-1' is invalid"),
        ({"REDIS_MIN_REPLICAS": "101"}, "allowed: an integer from 0 (off) to 100"),
        ({"REDIS_MIN_REPLICAS": "one"}, "REDIS_MIN_REPLICAS='one'"),
        ({"REDIS_MIN_REPLICAS_TIMEOUT": "0"}, "between 1ms and 4s"),
        ({"REDIS_MIN_REPLICAS_TIMEOUT": "5s"}, "REDIS_MIN_REPLICAS_TIMEOUT='5s'"),
        ({"REDIS_MIN_REPLICAS_TIMEOUT": "soon"}, "allowed: 1ms to 4s"),
    ],
)
def test_bad_settings_are_one_clear_error(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env=env)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_settings_parse_and_reach_the_broker() -> None:
    default = Settings.load(env={})
    assert (default.redis_min_replicas, default.redis_min_replicas_timeout) == (0, 1.0)
    s = Settings.load(env={"REDIS_MIN_REPLICAS": "2", "REDIS_MIN_REPLICAS_TIMEOUT": "250ms"})
    assert s.replication == {"min_replicas": 2, "min_replicas_timeout": 0.25}
    broker, off = from_url("redis://127.0.0.1:1/0", **s.replication), from_url("redis://h/0")
    assert isinstance(broker, RedisBroker) and isinstance(off, RedisBroker)
    assert broker._replicas is not None and broker._replicas.args == ("WAIT", 2, 250)
    assert off._replicas is None and off.sync._replicas is None


def test_sqlite_refuses_min_replicas(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REDIS_MIN_REPLICAS=1 needs a Redis broker"):
        from_url(f"sqlite:///{tmp_path}/q.db", min_replicas=1)


def test_the_worker_exits_2_naming_a_bad_setting(tmp_path: Path) -> None:
    done = WorkerFactory("redis://127.0.0.1:1/0", tmp_path).cli(
        "worker", "--app", "apps.core:app", REDIS_MIN_REPLICAS="lots"
    )
    assert done.returncode == 2, done.stderr
    assert "REDIS_MIN_REPLICAS='lots' is invalid" in done.stderr


def test_a_call_redone_after_noscript_is_waited_for_too(pair: Replicated) -> None:
    """Redis without its script cache (restarted, SCRIPT FLUSH) answers
    NOSCRIPT; the call is loaded and sent again, and its WAIT covers it."""
    use(pair, REDIS_MIN_REPLICAS="1", REDIS_MIN_REPLICAS_TIMEOUT="300ms")
    primary = redis.Redis(port=pair.primary.port)

    async def enqueue_async(k: str) -> None:
        try:
            await app.enqueue_async("record", k=k)
        finally:
            await app.async_broker().close()

    try:
        asyncio.run(enqueue_async("warm"))
        app.enqueue("record", k="warm-sync")
        primary.script_flush()
        asyncio.run(enqueue_async("reloaded"))
        app.enqueue("record", k="reloaded-sync")
        pair.pause_replica()
        primary.script_flush()
        with pytest.raises(ReplicationTimeout):
            app.enqueue("record", k="unconfirmed-sync")
        primary.script_flush()
        with pytest.raises(ReplicationTimeout):
            asyncio.run(enqueue_async("unconfirmed"))
    finally:
        primary.close()


def test_a_resent_enqueue_on_a_new_connection_is_still_waited_for(pair: Replicated) -> None:
    """The resend finds its job stored and writes nothing; a WAIT on a fresh
    connection would then return at once and acknowledge a write no replica
    has. The fence written before every WAIT (replicas.py) prevents that."""
    from conformance.kit import job

    def client() -> RedisBroker:
        broker = from_url(pair.url, min_replicas=1, min_replicas_timeout=0.3)
        assert isinstance(broker, RedisBroker)
        return broker

    first = client()
    assert first.sync.enqueue([job("warm")]) == [True]
    pair.pause_replica()
    with pytest.raises(ReplicationTimeout):
        first.sync.enqueue([job("job-fenced")])
    # Another process sends it again: a new client, new connections.
    again = client()
    with pytest.raises(ReplicationTimeout):
        again.sync.enqueue([job("job-fenced")])
    pair.resume_replica()
    assert client().sync.enqueue([job("job-fenced")]) == [False]  # stored once, now replicated
