"""Concurrency limits (docs/control.md): a bucket's slots, its waiters
(parked, FIFO, woken onto freed slots) and the expiry of a dead holder's
slot, on every backend."""

from __future__ import annotations

import time
import uuid

from bananas.brokers import Broker
from bananas.brokers.base import Delivery
from bananas.brokers.capabilities import ConcurrencyLimits, SlotJob, concurrency_limits
from bananas.concurrency import bucket_of

from .kit import drain_ids, fields, jobs, lease_one, until

LEASE = 30.0
BUCKET = bucket_of("t", None)


def ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def limits(broker: Broker) -> ConcurrencyLimits:
    found = concurrency_limits(broker)
    assert found is not None, f"{type(broker).__name__} has no concurrency limits"
    return found


def slot(d: Delivery, limit: int = 2, bucket: str = BUCKET) -> SlotJob:
    return SlotJob(d, bucket, limit, "normal:t")


async def lease_all(broker: Broker, n: int, lease: float = LEASE) -> list[Delivery]:
    return [await lease_one(broker, lease) for _ in range(n)]


async def test_jobs_beyond_the_limit_are_parked_uncharged(broker: Broker) -> None:
    a, b, c = ids(3)
    await broker.enqueue(jobs(a, b, c))
    ds = await lease_all(broker, 3)
    slots = limits(broker)
    assert await slots.admit([slot(d) for d in ds], LEASE) == [True, True, False]
    parked = ds[2].id
    assert await broker.job_state(parked) == "scheduled"  # off its lease, not ready
    assert await drain_ids(broker) == []
    assert fields(await broker.get_record(parked))["attempts"] == 0
    assert parked not in {d.id for d in ds[:2]} and (await broker.stats()).active == 2
    [usage] = await slots.slot_usage()
    assert (usage.bucket, usage.limit, usage.running, usage.waiting) == (BUCKET, 2, 2, 1)


async def test_a_release_resumes_the_oldest_waiter_with_its_slot(broker: Broker) -> None:
    all_ids = ids(5)
    await broker.enqueue(jobs(*all_ids))
    ds = await lease_all(broker, 5)
    slots = limits(broker)
    flags = []
    for d in ds:  # one at a time: the waiters join in this order
        flags += await slots.admit([slot(d)], LEASE)
    assert flags == [True, True, False, False, False]
    order = []
    running = ds[:2]
    for _ in range(3):
        await slots.release_slots([slot(running.pop(0))], LEASE)
        woken = await lease_one(broker)  # at the head of its ready list
        assert await slots.admit([slot(woken)], LEASE) == [True]  # its slot was kept for it
        order.append(woken.id)
        running.append(woken)
        assert await drain_ids(broker) == []  # one slot freed: one waiter resumed
    assert order == [d.id for d in ds[2:]]
    await slots.release_slots([slot(d) for d in running], LEASE)
    assert await slots.slot_usage() == []  # no holder, no waiter: the bucket is gone


async def test_a_dead_holders_slot_comes_back_when_its_lease_expires(broker: Broker) -> None:
    a, b = ids(2)
    await broker.enqueue(jobs(a, b))
    slots = limits(broker)
    dead = await lease_one(broker)
    started = time.monotonic()
    assert await slots.admit([slot(dead, limit=1)], 0.5) == [True]  # never extended
    live = await lease_one(broker)
    # Until the dead holder expires the job is parked; its re-check (the
    # soonest holder deadline) brings it back by the due move, then it holds.
    assert await slots.admit([slot(live, limit=1)], LEASE) == [False]

    async def back() -> Delivery | None:
        await broker.move_due()
        got = await broker.dequeue([("normal", "t")], 1, LEASE, f"r{time.monotonic_ns()}:")
        return got[0] if got else None

    again = await until(back, timeout=5.0, message="the parked job's re-check")
    assert again.id == live.id
    assert await slots.admit([slot(again, limit=1)], LEASE) == [True]
    assert 0.45 <= time.monotonic() - started < 3.0
    [usage] = await slots.slot_usage()
    assert (usage.running, usage.waiting) == (1, 0)


async def test_the_heartbeat_keeps_a_slot_and_wakes_onto_expired_ones(broker: Broker) -> None:
    a, b, c = ids(3)
    await broker.enqueue(jobs(a, b, c))
    slots = limits(broker)
    keeper, dead, waiter = await lease_all(broker, 3)
    assert await slots.admit([slot(keeper), slot(dead)], 0.6) == [True, True]
    assert await slots.admit([slot(waiter)], LEASE) == [False]

    async def woken() -> Delivery | None:
        assert await slots.extend_slots([slot(keeper)], 0.6) == []  # kept alive
        got = await broker.dequeue([("normal", "t")], 1, LEASE, f"h{time.monotonic_ns()}:")
        return got[0] if got else None

    found = await until(woken, timeout=5.0, message="a waiter woken by the heartbeat")
    assert found.id == waiter.id
    assert await slots.admit([slot(found)], LEASE) == [True]
    assert await slots.extend_slots([slot(dead)], LEASE) == [dead.id]  # it expired


async def test_per_key_buckets_are_capped_each(broker: Broker) -> None:
    all_ids = ids(4)
    await broker.enqueue(jobs(*all_ids))
    ds = await lease_all(broker, 4)
    slots = limits(broker)
    one, two = bucket_of("t", "customer-1"), bucket_of("t", "customer-2")
    got = await slots.admit(
        [slot(ds[0], 1, one), slot(ds[1], 1, two), slot(ds[2], 1, one), slot(ds[3], 1, two)],
        LEASE,
    )
    assert got == [True, True, False, False]
    usage = {u.bucket: (u.running, u.waiting) for u in await slots.slot_usage()}
    assert usage == {one: (1, 1), two: (1, 1)}


async def test_a_cancelled_waiter_is_skipped(broker: Broker) -> None:
    a, b, c = ids(3)
    await broker.enqueue(jobs(a, b, c))
    slots = limits(broker)
    holder, gone, next_ = await lease_all(broker, 3)
    for d in (holder, gone, next_):
        await slots.admit([slot(d, limit=1)], LEASE)
    await broker.cancel(gone.id)
    await slots.release_slots([slot(holder, limit=1)], LEASE)
    woken = await lease_one(broker)
    assert woken.id == next_.id
    assert await slots.admit([slot(woken, limit=1)], LEASE) == [True]


async def test_a_lease_not_ours_is_not_parked(broker: Broker) -> None:
    a, b = ids(2)
    await broker.enqueue(jobs(a, b))
    slots = limits(broker)
    holder, other = await lease_all(broker, 2)
    await slots.admit([slot(holder, limit=1)], LEASE)
    stale = Delivery(other.id, other.raw, "not-the-token")
    assert await slots.admit([slot(stale, limit=1)], LEASE) == [False]
    assert await broker.job_state(other.id) == "running"  # left with its real holder
    [usage] = await slots.slot_usage()
    assert (usage.running, usage.waiting) == (1, 0)  # and not a waiter


async def test_a_hold_is_its_leases_not_the_jobs(broker: Broker) -> None:
    """A job put back (a retry, a drain) and leased again elsewhere holds a
    slot of its own: the first lease's release does not drop it."""
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    slots = limits(broker)
    first = await lease_one(broker)
    assert await slots.admit([slot(first, limit=1)], LEASE) == [True]
    await broker.requeue([first])
    second = await lease_one(broker)
    assert second.id == first.id and second.token != first.token
    assert await slots.admit([slot(second, limit=1)], LEASE) == [False]  # the first holds
    await slots.release_slots([slot(first, limit=1)], LEASE)  # ... until it lets go
    third = await lease_one(broker)
    assert await slots.admit([slot(third, limit=1)], LEASE) == [True]
    assert await slots.extend_slots([slot(first, limit=1)], LEASE) == [first.id]
    assert await slots.extend_slots([slot(third, limit=1)], LEASE) == []
