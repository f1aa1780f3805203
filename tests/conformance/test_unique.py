"""Unique jobs (docs/control.md): the lock is taken with the enqueue, a
second enqueue of the key answers the job that holds it, and every final
path frees it (complete, bury, the recoverer's burial after MAX_STALLS, a
dead letter's delete, a cancel of a queued job, the settle of a cancelled
running one); a replay takes it again or reports the holder; the TTL frees
it too."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bananas import Bananas, JobSpec
from bananas.brokers import Broker
from bananas.brokers.base import DeadInfo, NewJob
from bananas.config import Settings
from bananas.errors import BananasError, UniqueConflict

from .kit import Q, drain_ids, expire, fields, jobs, lease_one

_CLIENT = Bananas(settings=Settings())


def unique(
    key: str | None = "k", payload: dict[str, Any] | None = None, ttl: float = 60.0
) -> NewJob:
    spec = JobSpec("t", payload or {"n": 1}, "normal", unique_for=ttl, unique_key=key)
    return _CLIENT.build_jobs([spec])[0]


async def enqueue_one(broker: Broker, new: NewJob) -> bool:
    [ok] = await broker.enqueue([new])
    return ok


def info() -> DeadInfo:
    return DeadInfo(reason="failed", error="ValueError: bad", priority="normal", name="t")


async def free(broker: Broker, key: str = "k") -> bool:
    """The key is free: an enqueue of it creates a job (which then holds it)."""
    new = unique(key)
    return await enqueue_one(broker, new) and new.duplicate_of is None


async def test_a_second_enqueue_of_a_key_answers_the_first_job(broker: Broker) -> None:
    first, second = unique(), unique()
    assert await enqueue_one(broker, first) and first.duplicate_of is None
    assert not await enqueue_one(broker, second)
    assert second.duplicate_of == first.id
    assert await broker.get_record(second.id) is None  # nothing written
    assert await drain_ids(broker) == [first.id]
    assert fields(await broker.get_record(first.id))["unique_key"] == first.unique


async def test_the_default_key_is_the_type_and_the_canonical_payload(broker: Broker) -> None:
    a = unique(None, {"x": 1, "y": 2})
    b = unique(None, {"y": 2, "x": 1})  # same object, other key order
    c = unique(None, {"x": 1, "y": 3})
    assert await enqueue_one(broker, a)
    assert not await enqueue_one(broker, b) and b.duplicate_of == a.id
    assert await enqueue_one(broker, c) and c.duplicate_of is None
    assert sorted(await drain_ids(broker)) == sorted([a.id, c.id])


async def test_one_batch_with_a_key_twice_and_plain_jobs_keeps_its_order(broker: Broker) -> None:
    first, again, other = unique("a"), unique("a"), unique("b")
    plain = jobs("p1", "p2")
    batch = [plain[0], first, again, plain[1], other]
    assert await broker.enqueue(batch) == [True, True, False, True, True]
    assert again.duplicate_of == first.id
    assert await drain_ids(broker) == ["p1", first.id, "p2", other.id]


async def test_an_enqueue_sent_again_is_idempotent_by_id(broker: Broker) -> None:
    new = unique()
    assert await enqueue_one(broker, new)
    assert not await enqueue_one(broker, new)  # its reply was lost: sent again
    assert new.duplicate_of is None  # not a duplicate: the same job
    assert await drain_ids(broker) == [new.id]


async def test_complete_frees_the_key(broker: Broker) -> None:
    new = unique()
    await enqueue_one(broker, new)
    lease = await lease_one(broker)
    assert not await free(broker)  # running: still held
    assert await broker.complete(lease, lease.raw or b"", b"1", 1.0)
    assert await free(broker)


async def test_a_cancel_frees_the_key(broker: Broker) -> None:
    queued = unique("q")
    await enqueue_one(broker, queued)
    assert not await free(broker, "q")  # (the probe above is a duplicate: nothing made)
    assert (await broker.cancel(queued.id)).value == "cancelled"
    assert await free(broker, "q")


async def test_a_cancelled_running_job_frees_the_key_as_it_settles(broker: Broker) -> None:
    running = unique("r")
    await enqueue_one(broker, running)
    lease = await lease_one(broker)
    assert (await broker.cancel(running.id)).value == "cancel_requested"
    assert not await free(broker, "r")  # still running: still held
    assert await broker.settle_cancelled(lease, None, 1.0)
    assert await free(broker, "r")


async def test_a_retry_keeps_the_key(broker: Broker) -> None:
    new = unique()
    await enqueue_one(broker, new)
    assert await broker.retry(await lease_one(broker), new.record, 60.0)
    dup = unique()
    assert not await enqueue_one(broker, dup) and dup.duplicate_of == new.id


async def test_bury_frees_the_key(broker: Broker) -> None:
    new = unique()
    await enqueue_one(broker, new)
    assert await broker.bury(await lease_one(broker), None, info(), 1.0)
    assert await free(broker)


async def test_a_burial_after_max_stalls_frees_the_key(broker: Broker) -> None:
    new = unique()
    await enqueue_one(broker, new)
    await broker.dequeue(Q, 1, 0.05, "w1:")
    assert (await expire(broker, max_stalls=1)).buried == [new.id]
    assert await broker.job_state(new.id) == "dead"
    assert await free(broker)


async def test_a_deleted_dead_letter_holds_no_key_and_leaves_a_newer_holder(
    broker: Broker,
) -> None:
    old = unique()
    await enqueue_one(broker, old)
    assert await broker.bury(await lease_one(broker), None, info(), 1.0)
    newer = unique()
    assert await enqueue_one(broker, newer) and newer.duplicate_of is None
    assert await broker.delete_dead(old.id)
    dup = unique()
    assert not await enqueue_one(broker, dup) and dup.duplicate_of == newer.id


async def test_a_replay_takes_the_key_again(broker: Broker) -> None:
    old = unique()
    await enqueue_one(broker, old)
    assert await broker.bury(await lease_one(broker), None, info(), 1.0)
    assert await broker.replay_dead(old.id)
    dup = unique()
    assert not await enqueue_one(broker, dup) and dup.duplicate_of == old.id
    lease = await lease_one(broker)
    assert lease.id == old.id
    assert await broker.complete(lease, lease.raw or b"", None, 1.0)
    assert await free(broker)


async def test_a_replay_while_a_newer_job_holds_the_key_is_refused(broker: Broker) -> None:
    old = unique()
    await enqueue_one(broker, old)
    assert await broker.bury(await lease_one(broker), None, info(), 1.0)
    newer = unique()
    assert await enqueue_one(broker, newer)
    with pytest.raises(UniqueConflict) as caught:
        await broker.replay_dead(old.id)
    assert caught.value.holder == newer.id and newer.id in str(caught.value)
    assert await broker.job_state(old.id) == "dead"  # left as it was


async def test_the_key_is_free_once_unique_for_passes(broker: Broker) -> None:
    held = unique(ttl=0.3)
    started = time.monotonic()
    await enqueue_one(broker, held)
    assert not await free(broker)
    deadline = time.monotonic() + 10
    while not await free(broker):
        assert time.monotonic() < deadline, "the key was never freed"
        await asyncio.sleep(0.02)
    assert time.monotonic() - started >= 0.25  # not before its time
    # The first job finishing later does not free the newer holder's key.
    lease = await lease_one(broker)
    assert lease.id == held.id
    assert await broker.complete(lease, lease.raw or b"", None, 1.0)
    assert not await free(broker)


def test_a_unique_key_needs_a_unique_type_and_no_job_id() -> None:
    app = Bananas(settings=Settings())

    @app.job
    def plain() -> None: ...

    @app.job(unique_for="10m")
    def once(n: int) -> None: ...

    with pytest.raises(BananasError, match="not unique"):
        app.spec("plain", _unique_key="k")
    with pytest.raises(BananasError, match="_job_id"):
        app.spec("once", {"n": 1}, _job_id="x")
    with pytest.raises(BananasError, match="unique_for"):
        app.job(name="bad", unique_for="soon")(lambda: None)
    with pytest.raises(BananasError, match="unique_for"):
        app.cron("* * * * *", name="c", unique_for="1m")(lambda: None)
    spec = app.spec("plain", _unique_key="k", _unique_for="5s")
    assert (spec.unique_for, spec.unique_key) == (5.0, "k")
    assert app.spec("once", {"n": 1}).unique_for == 600.0
