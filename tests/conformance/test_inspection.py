"""Inspection for the CLI and dashboard: stats, listings by state with paging
and job-type filter, job state, oldest ready age, leased jobs per queue, the
capped recent-completions index."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from bananas.brokers import Broker
from bananas.brokers.base import JOB_STATES, DeadInfo, NewJob

from .kit import job, jobs, lease_one, record

MIXED = [("high", "b"), ("high", "a"), ("normal", "a"), ("low", "a")]


async def populate(broker: Broker) -> None:
    """queued: h-b1 h-a1 h-a2 n-a1 l-a1 l-a2; running: r1 (a); scheduled: s1 (b);
    completed: c1 (a); dead: d1 (b)."""
    await broker.enqueue(
        [
            job("r1", name="a", priority="low"),
            job("c1", name="a", priority="low"),
            job("d1", name="b", priority="high"),
            job("s1", name="b", due=time.time() + 3600),
        ]
    )
    await lease_one(broker, queues=[("low", "a")])
    c1 = await lease_one(broker, queues=[("low", "a")])
    assert await broker.complete(c1, record("c1", name="a", priority="low"), None, 1.0)
    d1 = await lease_one(broker, queues=[("high", "b")])
    assert await broker.bury(d1, None, DeadInfo("x", "y"), 1.0)
    await broker.enqueue(
        [
            job("l-a1", name="a", priority="low"),
            job("h-a1", name="a", priority="high"),
            job("h-b1", name="b", priority="high"),
            job("n-a1", name="a"),
            job("h-a2", name="a", priority="high"),
            job("l-a2", name="a", priority="low"),
        ]
    )


async def test_stats(broker: Broker) -> None:
    await populate(broker)
    stats = await broker.stats()
    assert stats.ready == {
        ("high", "a"): 2,
        ("high", "b"): 1,
        ("normal", "a"): 1,
        ("normal", "b"): 0,  # used once (s1 is scheduled there): listed, empty
        ("low", "a"): 2,
    }
    assert stats.unrouted == {"high": 0, "normal": 0, "low": 0}
    assert (stats.scheduled, stats.active, stats.dead, stats.completed) == (1, 1, 1, 1)


async def test_stats_of_an_empty_broker(broker: Broker) -> None:
    stats = await broker.stats()
    assert stats.ready == {}
    assert (stats.scheduled, stats.active, stats.dead, stats.completed) == (0, 0, 0, 0)
    for state in JOB_STATES:
        assert await broker.list_jobs(state) == []
        assert await broker.count_jobs(state) == 0


async def test_job_state_of_each_state(broker: Broker) -> None:
    await populate(broker)
    expected = {
        "h-a1": "queued",
        "r1": "running",
        "s1": "scheduled",
        "c1": "completed",
        "d1": "dead",
        "unknown": None,
    }
    for job_id, state in expected.items():
        assert await broker.job_state(job_id) == state, job_id


async def test_list_queued_in_delivery_order(broker: Broker) -> None:
    await populate(broker)
    listed = await broker.list_jobs("queued", 0, 50)
    # By priority, then job type, next to run first within a queue.
    assert [j.id for j in listed] == ["h-a1", "h-a2", "h-b1", "n-a1", "l-a1", "l-a2"]
    first = listed[0]
    assert (first.state, first.when_ms, first.priority, first.name) == ("queued", 0, "high", "a")
    assert first.record is not None and b'"h-a1"' in first.record
    assert [j.id for j in await broker.list_jobs("queued", 1, 3)] == ["h-a2", "h-b1", "n-a1"]
    assert [j.id for j in await broker.list_jobs("queued", 5, 3)] == ["l-a2"]
    assert await broker.list_jobs("queued", 6, 3) == []


async def test_list_queued_by_job_type(broker: Broker) -> None:
    await populate(broker)
    only_a = await broker.list_jobs("queued", 0, 50, job_type="a")
    assert [j.id for j in only_a] == ["h-a1", "h-a2", "n-a1", "l-a1", "l-a2"]
    assert [j.id for j in await broker.list_jobs("queued", 2, 2, job_type="a")] == [
        "n-a1",
        "l-a1",
    ]
    assert [j.id for j in await broker.list_jobs("queued", job_type="b")] == ["h-b1"]
    assert await broker.list_jobs("queued", job_type="zzz") == []


async def test_count_jobs(broker: Broker) -> None:
    await populate(broker)
    counts = {s: await broker.count_jobs(s) for s in JOB_STATES}
    assert counts == {"queued": 6, "running": 1, "scheduled": 1, "completed": 1, "dead": 1}
    by_type = {s: await broker.count_jobs(s, job_type="b") for s in JOB_STATES}
    assert by_type == {"queued": 1, "running": 0, "scheduled": 1, "completed": 0, "dead": 1}
    assert await broker.count_jobs("completed", job_type="a") == 1


async def test_listings_of_indexed_states(broker: Broker) -> None:
    await populate(broker)
    [running] = await broker.list_jobs("running")
    assert (running.id, running.priority, running.name) == ("r1", "low", "a")
    assert running.when_ms > time.time() * 1000  # the lease deadline
    [scheduled] = await broker.list_jobs("scheduled")
    assert scheduled.id == "s1" and scheduled.when_ms > (time.time() + 3500) * 1000
    [completed] = await broker.list_jobs("completed")
    assert (completed.id, completed.name, completed.priority) == ("c1", "a", "low")
    assert abs(completed.when_ms - time.time() * 1000) < 60_000
    [dead] = await broker.list_jobs("dead", job_type="b")
    assert dead.id == "d1" and dead.record is not None
    assert await broker.list_jobs("dead", job_type="a") == []


async def test_running_and_scheduled_soonest_first(broker: Broker) -> None:
    now = time.time()
    await broker.enqueue([job("late", due=now + 200), job("soon", due=now + 100)])
    await broker.enqueue(jobs("long", "short"))
    await broker.dequeue([("normal", "t")], 1, 60.0, "w:1:")
    await broker.dequeue([("normal", "t")], 1, 30.0, "w:2:")
    assert [j.id for j in await broker.list_jobs("scheduled")] == ["soon", "late"]
    assert [j.id for j in await broker.list_jobs("scheduled", 1, 1)] == ["late"]
    assert [j.id for j in await broker.list_jobs("running")] == ["short", "long"]
    assert [j.id for j in await broker.list_jobs("running", job_type="t", offset=1)] == ["long"]


async def test_completed_newest_first_with_paging(broker: Broker) -> None:
    ids = [f"c{i}" for i in range(4)]
    await broker.enqueue(jobs(*ids))
    for job_id in ids:
        assert await broker.complete(await lease_one(broker), record(job_id), None, 1.0)
        await asyncio.sleep(0.003)  # distinct finish times
    assert [j.id for j in await broker.list_jobs("completed")] == ["c3", "c2", "c1", "c0"]
    assert [j.id for j in await broker.list_jobs("completed", 1, 2)] == ["c2", "c1"]
    assert [j.id for j in await broker.list_jobs("completed", 1, 2, job_type="t")] == [
        "c2",
        "c1",
    ]
    assert (await broker.stats()).completed == 4


async def test_recent_completions_index_is_capped(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Patched wherever the broker's classes read it (the recoverer trims the index).
    patched = 0
    for cls in type(broker).__mro__:
        module = sys.modules[cls.__module__]
        if hasattr(module, "KEEP_COMPLETED"):
            monkeypatch.setattr(module, "KEEP_COMPLETED", 3)
            patched += 1
    assert patched
    ids = [f"c{i}" for i in range(5)]
    await broker.enqueue(jobs(*ids))
    for job_id in ids:
        assert await broker.complete(await lease_one(broker), record(job_id), None, 1.0)
        await asyncio.sleep(0.003)
    await broker.recover_expired(max_stalls=3)  # the periodic upkeep may do the trimming
    assert [j.id for j in await broker.list_jobs("completed")] == ["c4", "c3", "c2"]
    assert await broker.count_jobs("completed") == 3
    assert await broker.job_state("c0") == "completed"  # the cap trims the index only
    result = await broker.get_result("c0")
    assert result is not None


async def test_unknown_state_is_refused(broker: Broker) -> None:
    with pytest.raises(ValueError, match="unknown job state"):
        await broker.list_jobs("pending")
    with pytest.raises(ValueError, match="unknown job state"):
        await broker.count_jobs("failed")


async def test_oldest_ready_age(broker: Broker) -> None:
    old = (datetime.now(UTC) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    await broker.enqueue(
        [
            NewJob("old", "t", "high", record("old", priority="high", created_at=old)),
            job("new", priority="high"),
            job("n"),
        ]
    )
    ages = await broker.oldest_ready_age()
    assert set(ages) == {"high", "normal", "low"}
    assert 29 <= ages["high"] < 40
    assert 0 <= ages["normal"] < 5
    assert ages["low"] == 0.0
    await lease_one(broker, queues=[("high", "t")])  # the old job starts running
    assert (await broker.oldest_ready_age())["high"] < 5


async def test_active_by_queue(broker: Broker) -> None:
    await populate(broker)
    assert await broker.active_by_queue() == {("low", "a"): 1}
    await broker.dequeue(MIXED, 3, 30.0, "w:")
    assert await broker.active_by_queue() == {("low", "a"): 1, ("high", "b"): 1, ("high", "a"): 2}
