"""Retries: a failed attempt goes to the scheduled set with its updated record
and comes back when due; attempts are counted per minute."""

from __future__ import annotations

import time

from bananas.brokers import Broker
from bananas.brokers.base import DeadInfo

from .kit import drain_ids, fields, jobs, lease_one, record, take, until


async def test_retry_schedules_the_next_attempt(broker: Broker) -> None:
    await broker.enqueue(jobs("r"))
    d = await lease_one(broker)
    due = time.time() + 0.5  # the broker's clock is this host's here
    updated = record("r", attempts=1, status="scheduled", error="boom")
    assert await broker.retry(d, updated, 0.5)
    assert await broker.job_state("r") == "scheduled"
    assert await broker.get_record("r") == updated
    [entry] = await broker.list_jobs("scheduled")
    assert entry.id == "r" and abs(entry.when_ms - due * 1000) < 50
    assert await take(broker) == []
    assert await broker.move_due() == 0  # not due yet
    assert await broker.get_result("r") is None  # a retry is not a result

    async def moved() -> int:
        return await broker.move_due()

    assert await until(moved, message="the retry to become due") == 1
    again = await lease_one(broker)
    assert again.id == "r" and again.raw == updated
    assert fields(again.raw)["attempts"] == 1


async def test_retried_job_returns_to_its_records_queue(broker: Broker) -> None:
    await broker.enqueue(jobs("r", name="mail", priority="high"))
    d = await lease_one(broker, queues=[("high", "mail")])
    assert await broker.retry(d, record("r", name="mail", priority="high"), -1.0)
    assert await broker.move_due() == 1
    assert await drain_ids(broker, [("high", "mail")]) == ["r"]


async def test_retry_goes_behind_waiting_jobs(broker: Broker) -> None:
    await broker.enqueue(jobs("r", "x"))
    d = await lease_one(broker)
    assert await broker.retry(d, record("r"), -1.0)
    await broker.enqueue(jobs("y"))
    assert await broker.move_due() == 1
    assert await drain_ids(broker) == ["x", "y", "r"]


async def test_throughput_counts_attempts_per_minute(broker: Broker) -> None:
    await broker.enqueue(jobs("ok1", "ok2", "fail", "dead"))
    ok1, ok2, fail, dead = [await lease_one(broker) for _ in range(4)]
    assert await broker.complete(ok1, record("ok1"), None, 1.0)
    assert await broker.complete(ok2, record("ok2"), b"1", 1.0)
    assert await broker.retry(fail, record("fail"), 60.0)
    assert await broker.bury(dead, None, DeadInfo("gave up", "boom"), 1.0)
    series = await broker.throughput(5)
    assert len(series) == 5
    now_minute = int(time.time() // 60)
    assert series[-1].minute in (now_minute, now_minute - 1)
    assert [s.minute for s in series] == list(range(series[0].minute, series[0].minute + 5))
    assert sum(s.completed for s in series) == 2
    assert sum(s.failed for s in series) == 2
    assert len(await broker.throughput()) == 60


async def test_throughput_is_zero_when_idle(broker: Broker) -> None:
    series = await broker.throughput(3)
    assert [(s.completed, s.failed) for s in series] == [(0, 0)] * 3
