"""Dead letters: bury with error and traceback, inspect, replay with a fresh
budget, delete."""

from __future__ import annotations

import asyncio
import time

import pytest

from bananas.brokers import Broker
from bananas.brokers.base import DeadInfo
from bananas.errors import InvalidRecord

from .kit import Q, drain_ids, fields, jobs, lease_one, record


def info(reason: str = "failed 4 times (max_retries=3)") -> DeadInfo:
    return DeadInfo(
        reason=reason,
        error="ValueError: bad",
        traceback="Traceback...",
        priority="normal",
        name="t",
    )


async def test_bury_stores_the_failure(broker: Broker) -> None:
    await broker.enqueue(jobs("d"))
    lease = await lease_one(broker)
    failed = record("d", status="failed", attempts=4, error="ValueError: bad")
    before_ms = time.time() * 1000
    assert await broker.bury(lease, failed, info(), 12.5)
    assert await broker.job_state("d") == "dead"
    assert await broker.get_record("d") == failed
    [letter] = await broker.list_dead()
    assert letter.id == "d" and letter.record == failed
    assert before_ms - 1 <= letter.died_at_ms <= time.time() * 1000 + 1
    assert letter.info.reason == "failed 4 times (max_retries=3)"
    assert letter.info.error == "ValueError: bad"
    assert letter.info.traceback == "Traceback..."
    assert letter.info.failed_at  # filled in when the caller left it empty
    assert await broker.get_dead_info("d") == letter.info
    result = await broker.get_result("d")
    assert result is not None
    assert (result.status, result.error, result.duration_ms) == ("failed", "ValueError: bad", 12.5)
    stats = await broker.stats()
    assert (stats.dead, stats.active) == (1, 0)
    assert await broker.count_jobs("dead") == 1


async def test_bury_without_record_keeps_the_stored_one(broker: Broker) -> None:
    [new] = jobs("d")
    await broker.enqueue([new])
    assert await broker.bury(await lease_one(broker), None, info("bad payload"), 0.0)
    assert await broker.get_record("d") == new.record
    result = await broker.get_result("d")
    assert result is not None and result.error == "ValueError: bad"


async def test_result_error_falls_back_to_the_reason(broker: Broker) -> None:
    await broker.enqueue(jobs("d"))
    assert await broker.bury(await lease_one(broker), None, DeadInfo("no handler", ""), 0.0)
    result = await broker.get_result("d")
    assert result is not None and result.error == "no handler"


async def test_replay_gives_a_fresh_budget(broker: Broker) -> None:
    await broker.enqueue(jobs("d", name="mail", priority="high"))
    lease = await lease_one(broker, queues=[("high", "mail")])
    failed = record(
        "d", name="mail", priority="high", status="failed", attempts=4, error="E", traceback="T"
    )
    assert await broker.bury(lease, failed, info(), 1.0)
    assert await broker.replay_dead("d")
    assert await broker.job_state("d") == "queued"
    assert await broker.get_dead_info("d") is None
    assert await broker.get_result("d") is None
    assert await broker.list_dead() == []
    replayed = fields(await broker.get_record("d"))
    assert replayed["attempts"] == 0 and replayed["status"] == "pending"
    assert "error" not in replayed and "traceback" not in replayed
    assert await drain_ids(broker, [("high", "mail")]) == ["d"]
    assert not await broker.replay_dead("d")  # no longer dead


async def test_replay_goes_behind_waiting_jobs(broker: Broker) -> None:
    await broker.enqueue(jobs("d"))
    assert await broker.bury(await lease_one(broker), None, info(), 1.0)
    await broker.enqueue(jobs("x"))
    assert await broker.replay_dead("d")
    assert await drain_ids(broker) == ["x", "d"]


async def test_replay_refuses_live_jobs(broker: Broker) -> None:
    await broker.enqueue(jobs("q"))
    assert not await broker.replay_dead("q")
    assert await broker.job_state("q") == "queued"


async def test_replay_of_an_unreadable_record_raises(broker: Broker) -> None:
    await broker.enqueue(jobs("junk"))
    assert await broker.bury(await lease_one(broker), b"[1, 2]", info(), 0.0)
    with pytest.raises(InvalidRecord):
        await broker.replay_dead("junk")
    assert await broker.job_state("junk") == "dead"
    assert await broker.delete_dead("junk")


async def test_delete_removes_everything(broker: Broker) -> None:
    await broker.enqueue(jobs("d", "alive"))
    assert await broker.bury(await lease_one(broker), None, info(), 1.0)
    assert await broker.delete_dead("d")
    assert await broker.job_state("d") is None
    assert await broker.get_record("d") is None
    assert await broker.get_result("d") is None
    assert await broker.get_dead_info("d") is None
    assert not await broker.delete_dead("d")
    assert not await broker.delete_dead("alive")  # only dead letters can be deleted
    assert await broker.job_state("alive") == "queued"
    assert await broker.enqueue(jobs("d")) == [True]  # the id is free again


async def test_list_dead_newest_first_with_paging(broker: Broker) -> None:
    ids = [f"d{i}" for i in range(5)]
    await broker.enqueue(jobs(*ids))
    for _ in ids:
        assert await broker.bury(await lease_one(broker), None, info(), 0.0)
        await asyncio.sleep(0.003)  # distinct death times: the order below is by time
    listed = [d.id for d in await broker.list_dead()]
    assert listed == list(reversed(ids))
    assert [d.id for d in await broker.list_dead(1, 2)] == ["d3", "d2"]
    assert await broker.list_dead(10, 5) == []
    assert [j.id for j in await broker.list_jobs("dead", 0, 2)] == ["d4", "d3"]


async def test_dead_jobs_are_not_delivered(broker: Broker) -> None:
    await broker.enqueue(jobs("d"))
    assert await broker.bury(await lease_one(broker), None, info(), 0.0)
    assert await broker.dequeue(Q, 5, 30.0, "w:") == []
    assert (await broker.recover_expired(1)).buried == []


async def test_sync_client_reads_a_buried_record(broker: Broker) -> None:
    """`broker.sync.get_record`: what JobHandle.result() reads to fill in JobFailed."""
    await broker.enqueue(jobs("sr"))
    assert await asyncio.to_thread(broker.sync.get_record, "sr") == await broker.get_record("sr")
    failed = record("sr", status="failed", attempts=4, error="E", dead_reason="failed 4 times")
    assert await broker.bury(await lease_one(broker), failed, info(), 1.0)
    assert await asyncio.to_thread(broker.sync.get_record, "sr") == failed
    assert await asyncio.to_thread(broker.sync.get_record, "nope") is None


async def test_replay_drops_the_dead_reason(broker: Broker) -> None:
    await broker.enqueue(jobs("dr"))
    failed = record("dr", status="failed", attempts=4, error="E", dead_reason="failed 4 times")
    assert await broker.bury(await lease_one(broker), failed, info(), 1.0)
    assert await broker.replay_dead("dr")
    assert "dead_reason" not in fields(await broker.get_record("dr"))
