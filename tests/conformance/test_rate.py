"""Rate limits (docs/control.md, "Rate limits"), broker level: slot
reservations of a bucket (`rate_admit`: GCRA, shared by every client), the
park of a job until its slot without charging an attempt (`rate_park`),
waking it (`rate_wake`) and the views' reads (`rate_usage`)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import orjson
import pytest

from bananas.brokers import Broker
from bananas.brokers.base import CancelOutcome, DeadInfo
from bananas.errors import CancelRequested
from bananas.rates import RESERVED, bucket_id

from .conftest import Brokers
from .kit import Q, fields, jobs, lease_one, until


def ids(n: int) -> list[str]:
    """UUIDs: on a cluster they spread over the partitions."""
    return [str(uuid.uuid4()) for _ in range(n)]


def parked(raw: bytes | None) -> bytes:
    """The record as the worker parks it: holding its slot, attempts unchanged."""
    data = fields(raw)
    data.update({RESERVED: data.get("attempts") or 0, "status": "scheduled"})
    return orjson.dumps(data)


async def test_slots_are_spaced_one_interval_apart_from_now(broker: Broker) -> None:
    bucket = bucket_id("t", None)
    first = await broker.rate_admit(bucket, 0.1, 5)
    assert first[0] == 0  # an unused bucket starts now
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(abs(g - 0.1) < 1e-6 for g in gaps), first
    again = await broker.rate_admit(bucket, 0.1, 1)  # the next free slot, after the five
    assert 0.3 < again[0] <= 0.5, again
    other = await broker.rate_admit(bucket_id("t", "tenant-42"), 0.1, 1)
    assert other == [0]  # a key has its own bucket


async def test_clients_sharing_a_bucket_never_get_the_same_slot(brokers: Brokers) -> None:
    clients = [brokers.new() for _ in range(3)]
    bucket = bucket_id("shared", None)
    started = time.monotonic()
    replies = await asyncio.gather(
        *(c.rate_admit(bucket, 0.01, 20) for c in clients for _ in range(2))
    )
    elapsed = time.monotonic() - started
    # Each reply's delays are from its own call's "now": put them on one time line.
    slots = sorted(d for reply in replies for d in reply)
    assert len(slots) == 120 and slots[0] == 0
    # 120 distinct slots, 10 ms apart: the last one 1.19 s out (less the calls' spread).
    assert 1.19 - elapsed - 0.01 <= slots[-1] <= 1.19 + 1e-6


async def test_an_idle_bucket_is_free_again(broker: Broker) -> None:
    bucket = bucket_id("idle", None)
    assert (await broker.rate_admit(bucket, 0.01, 3))[0] == 0

    async def free_now() -> bool:
        return (await broker.rate_admit(bucket, 0.01, 1)) == [0]

    await until(free_now, message="the bucket's slots to pass")


async def test_a_parked_job_is_scheduled_with_attempts_unchanged_and_comes_back(
    broker: Broker,
) -> None:
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    rec = parked(lease.raw)
    assert await broker.rate_park(lease, rec, 0.2, "t")
    assert await broker.rate_park(lease, rec, 0.2, "t")  # sent again (a lost reply): done
    assert await broker.job_state(a) == "scheduled"
    assert (await broker.stats()).active == 0  # the lease ended
    stored = fields(await broker.get_record(a))
    assert (stored["attempts"], stored[RESERVED]) == (0, 0)
    assert await broker.dequeue(Q, 10, 30.0, "w:early:") == []  # not before its slot

    async def woken() -> list[str]:
        await broker.rate_wake([a])
        return [d.id for d in await broker.dequeue(Q, 10, 30.0, f"w{time.monotonic_ns()}:")]

    assert await until(woken, message="the parked job back at its slot") == [a]


async def test_park_refuses_a_lease_that_is_not_ours(broker: Broker) -> None:
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    lease.token = lease.token + "-stale"
    assert not await broker.rate_park(lease, parked(lease.raw), 1.0, "t")
    assert await broker.job_state(a) == "running"


async def test_park_of_a_cancelled_running_job_is_refused(broker: Broker) -> None:
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    assert await broker.cancel(a) == CancelOutcome.REQUESTED
    with pytest.raises(CancelRequested):
        await broker.rate_park(lease, parked(lease.raw), 1.0, "t")
    assert await broker.job_state(a) == "running"  # nothing changed: its worker settles it


async def test_usage_counts_throttled_jobs_and_booked_slots(broker: Broker) -> None:
    await broker.declare_rate_limits({"t": "5/s", "u": None})
    assert [(u.name, u.limit, u.throttled) for u in await broker.rate_usage()] == [("t", "5/s", 0)]
    a, b, c = ids(3)
    await broker.enqueue(jobs(a, b, c))
    leases = [await lease_one(broker) for _ in range(3)]
    await broker.rate_admit(bucket_id("t", None), 0.2, 10)  # 2 s of slots booked
    for lease in leases[:2]:
        assert await broker.rate_park(lease, parked(lease.raw), 30.0, "t")
    # A RetryLater park (no type) is scheduled work, not throttled.
    assert await broker.rate_park(leases[2], parked(leases[2].raw), 30.0, None)
    [usage] = await broker.rate_usage()
    assert (usage.name, usage.limit, usage.throttled) == ("t", "5/s", 2)
    assert 1.5 < usage.booked <= 2.0
    assert (await broker.stats()).scheduled == 3
    await broker.declare_rate_limits({"t": None})  # the limit removed from the code
    assert await broker.rate_usage() == []


async def test_parks_sent_together_get_each_their_own_outcome(broker: Broker) -> None:
    """An admission parks its batch at once (gathered; SQLite shares one
    transaction): a stale lease, a cancelled job and good ones side by side."""
    job_ids = ids(4)
    await broker.enqueue(jobs(*job_ids))
    leases = [await lease_one(broker) for _ in range(4)]
    stale, cancelled, *_good = leases
    stale.token += "-stale"
    assert await broker.cancel(cancelled.id) == CancelOutcome.REQUESTED
    outcomes = await asyncio.gather(
        *(broker.rate_park(d, parked(d.raw), 5.0, "t") for d in leases), return_exceptions=True
    )
    assert outcomes[0] is False and isinstance(outcomes[1], CancelRequested)
    assert outcomes[2:] == [True, True]
    states = [await broker.job_state(d.id) for d in leases]
    assert states == ["running", "running", "scheduled", "scheduled"]


async def test_a_replayed_dead_job_does_not_keep_an_old_slot(broker: Broker) -> None:
    """Parked at attempt 0, then dead-lettered: its replay (attempts 0 again)
    must take a new slot, not start on the one its first run reserved."""
    [a] = ids(1)
    await broker.enqueue(jobs(a))
    lease = await lease_one(broker)
    assert await broker.rate_park(lease, parked(lease.raw), 0.01, "t")

    async def again() -> list:
        await broker.rate_wake([a])
        return await broker.dequeue(Q, 1, 30.0, f"w{time.monotonic_ns()}:")

    [lease] = await until(again, message="the parked job back")
    assert fields(lease.raw)[RESERVED] == 0
    info = DeadInfo(reason="boom", error="boom", priority="normal", name="t")
    assert await broker.bury(lease, lease.raw, info, 1.0)
    assert await broker.replay_dead(a)
    assert RESERVED not in fields(await broker.get_record(a))
