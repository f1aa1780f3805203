"""Enqueue and dequeue: FIFO, priorities, routing by job type, batches,
idempotent ids, delayed jobs, idle waits."""

from __future__ import annotations

import asyncio
import time

from bananas.brokers import Broker
from bananas.brokers.base import NewJob, foreign_routing

from .conftest import Brokers
from .kit import Q, drain_ids, fields, job, jobs, record, take, until

ALL = [("high", "t"), ("normal", "t"), ("low", "t")]


async def test_fifo_within_a_queue(broker: Broker) -> None:
    assert await broker.enqueue(jobs("a", "b", "c")) == [True, True, True]
    await broker.enqueue(jobs("d", "e"))
    assert await drain_ids(broker) == ["a", "b", "c", "d", "e"]


async def test_priorities_in_the_order_given(broker: Broker) -> None:
    await broker.enqueue(
        [
            job("l1", priority="low"),
            job("n1"),
            job("h1", priority="high"),
            job("l2", priority="low"),
        ]
    )
    await broker.enqueue([job("h2", priority="high"), job("n2")])
    assert await drain_ids(broker, ALL) == ["h1", "h2", "n1", "n2", "l1", "l2"]


async def test_queue_order_is_the_callers(broker: Broker) -> None:
    await broker.enqueue([job("h", priority="high"), job("l", priority="low")])
    assert await take(broker, 1, [("low", "t"), ("high", "t")]) == ["l"]


async def test_batch_dequeue_spans_queues_in_order(broker: Broker) -> None:
    await broker.enqueue([job("h1", priority="high"), job("n1"), job("n2"), job("n3")])
    got = await broker.dequeue(ALL, 3, 30.0, "w:1:")
    assert [d.id for d in got] == ["h1", "n1", "n2"]
    assert len({d.token for d in got}) == 3
    assert all(d.token.startswith("w:1:") for d in got)
    assert await take(broker, 10, ALL) == ["n3"]
    assert await broker.dequeue(ALL, 10, 30.0, f"w{time.monotonic_ns()}:") == []


async def test_delivery_carries_the_stored_record(broker: Broker) -> None:
    new = job("a")
    await broker.enqueue([new])
    assert await broker.get_record("a") == new.record
    [delivery] = await broker.dequeue(Q, 1, 30.0, f"w{time.monotonic_ns()}:")
    assert delivery.raw == new.record


async def test_routing_by_job_type(broker: Broker) -> None:
    await broker.enqueue([job("a1", name="a"), job("b1", name="b"), job("a2", name="a")])
    assert await drain_ids(broker, [("normal", "a")]) == ["a1", "a2"]
    # No worker asked for type b: it stays queued, visible, never handed out.
    assert await broker.count_jobs("queued", job_type="b") == 1
    assert await broker.job_state("b1") == "queued"
    assert await drain_ids(broker, [("normal", "b")]) == ["b1"]


async def test_idempotent_enqueue_by_id(broker: Broker) -> None:
    first = job("same")
    second = NewJob("same", "t", "high", record("same", priority="high", description="2nd"))
    assert await broker.enqueue([first, second]) == [True, False]
    assert await broker.enqueue([second]) == [False]
    assert await broker.get_record("same") == first.record
    assert await broker.count_jobs("queued") == 1
    [d] = await broker.dequeue(ALL, 5, 30.0, f"w{time.monotonic_ns()}:")
    assert await broker.enqueue([first]) == [False]  # still no-op while running
    assert await broker.complete(d, first.record, None, 1.0)
    assert await broker.enqueue([first]) == [False]  # and after completion
    assert await broker.count_jobs("queued") == 0


async def test_big_batch_is_written_whole_and_in_order(broker: Broker) -> None:
    ids = [f"j{i:04d}" for i in range(1200)]  # more than one internal chunk
    assert await broker.enqueue(jobs(*ids)) == [True] * 1200
    assert await broker.count_jobs("queued") == 1200
    got = await broker.dequeue(Q, 1000, 30.0, f"w{time.monotonic_ns()}:")
    assert [d.id for d in got] == ids[:1000]
    assert await take(broker, 500) == ids[1000:]


def test_enqueue_sync_from_plain_code(broker: Broker) -> None:
    assert broker.sync.enqueue(jobs("s1", "s2")) == [True, True]
    assert broker.sync.enqueue(jobs("s1")) == [False]

    async def check() -> None:
        assert await broker.count_jobs("queued") == 2
        assert await drain_ids(broker) == ["s1", "s2"]
        await broker.close()

    asyncio.run(check())


def test_big_sync_batch_is_written_whole(broker: Broker) -> None:
    ids = [f"s{i:04d}" for i in range(1200)]  # more than one internal chunk
    assert broker.sync.enqueue(jobs(*ids)) == [True] * 1200
    assert broker.sync.enqueue(jobs("s0000", "new")) == [False, True]

    async def check() -> None:
        assert await broker.count_jobs("queued") == 1201
        assert await take(broker, 1300) == [*ids, "new"]
        await broker.close()

    asyncio.run(check())


async def test_delayed_job_waits_for_move_due(broker: Broker) -> None:
    now = time.time()
    await broker.enqueue([job("later", due=now + 3600), job("past", due=now - 1)])
    assert await broker.job_state("later") == "scheduled"
    assert await broker.job_state("past") == "scheduled"  # until a scheduler moves it
    assert await take(broker, 5) == []
    assert await broker.move_due() == 1
    assert await broker.job_state("past") == "queued"
    assert await broker.job_state("later") == "scheduled"
    assert await take(broker, 5) == ["past"]
    assert await broker.move_due() == 0


async def test_a_relative_delay_counts_from_the_brokers_clock(broker: Broker) -> None:
    [soon] = jobs("soon")
    soon.delay = 0.3
    [later] = jobs("later")
    later.delay = 3600.0
    [at] = jobs("at")
    at.due, at.delay = time.time() - 1, 3600.0  # an absolute `due` wins over a delay
    started = await broker.server_time()
    assert await broker.enqueue([soon, later, at]) == [True, True, True]
    assert await broker.job_state("soon") == "scheduled"
    assert await broker.move_due() == 1  # only "at"
    [entry, _] = await broker.list_jobs("scheduled")
    assert entry.id == "soon" and abs(entry.when_ms / 1000 - (started + 0.3)) < 0.25

    async def due() -> int:
        return await broker.move_due()

    assert await until(due, message="the delayed job to become due") == 1
    assert await broker.server_time() - started >= 0.29
    assert sorted(await drain_ids(broker)) == ["at", "soon"]
    assert await broker.job_state("later") == "scheduled"


async def test_move_due_routes_by_record_in_due_order(broker: Broker) -> None:
    now = time.time()
    await broker.enqueue(
        [
            NewJob("b", "x", "low", record("b", name="x", priority="high"), now - 1),
            NewJob("a", "x", "low", record("a", name="x", priority="high"), now - 2),
            NewJob("c", "x", "low", record("c", name="x", priority="high"), now - 0.5),
        ]
    )
    assert await broker.move_due(limit=2) == 3  # loops until nothing is due
    assert await drain_ids(broker, [("high", "x")]) == ["a", "b", "c"]


async def test_move_due_buries_unroutable_records(broker: Broker) -> None:
    now = time.time()
    await broker.enqueue(
        [
            NewJob("junk", "t", "normal", b"not json", now - 1),
            NewJob("nameless", "t", "normal", b'{"id": "nameless", "payload": {}}', now - 1),
            NewJob("odd", "t", "normal", record("odd", priority="urgent"), now - 1),
        ]
    )
    assert await broker.move_due() == 3
    reasons = {d.id: d.info.reason for d in await broker.list_dead()}
    assert reasons["junk"] == "record is not a JSON object"
    assert "no job type" in reasons["nameless"]
    assert "unknown priority urgent" in reasons["odd"]
    for job_id in reasons:
        assert await broker.job_state(job_id) == "dead"
        result = await broker.get_result(job_id)
        assert result is not None and result.status == "failed"
    assert (await broker.get_dead_info("odd")).name == "t"  # type: ignore[union-attr]


async def test_wait_for_jobs_times_out_when_idle(broker: Broker) -> None:
    await broker.enqueue([job("elsewhere", name="other")])
    started = time.monotonic()
    assert await broker.wait_for_jobs(Q, 0.3) is False
    assert 0.25 <= time.monotonic() - started < 2.0


async def test_wait_for_jobs_returns_at_once_when_ready(broker: Broker) -> None:
    await broker.enqueue(jobs("a"))
    started = time.monotonic()
    assert await broker.wait_for_jobs(Q, 5.0) is True
    assert time.monotonic() - started < 0.5


async def test_wait_for_jobs_wakes_on_another_clients_enqueue(brokers: Brokers) -> None:
    waiter, client = brokers.new(), brokers.new()
    await client.ping()
    await waiter.ping()
    task = asyncio.create_task(waiter.wait_for_jobs([("high", "t"), *Q], 10.0))
    await asyncio.sleep(0.2)
    assert not task.done()
    sent = time.monotonic()
    await client.enqueue(jobs("wake"))
    assert await task is True
    assert time.monotonic() - sent < 0.25  # an idle worker picks a job up within ~100 ms
    assert await take(waiter) == ["wake"]


async def test_wait_for_jobs_is_cancellable(broker: Broker) -> None:
    task = asyncio.create_task(broker.wait_for_jobs(Q, 30.0))
    await asyncio.sleep(0.1)
    task.cancel()
    started = time.monotonic()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert done and task.cancelled()
    assert time.monotonic() - started < 2.0


async def test_pump_foreign_with_nothing_foreign(broker: Broker) -> None:
    router = foreign_routing(broker)
    if router is None:  # optional: SQLite receives no foreign records, a cluster refuses them
        assert broker.url.startswith("sqlite") or "+cluster://" in broker.url
        return
    started = time.monotonic()
    assert await router.pump_foreign("normal", 0.2) == 0
    assert time.monotonic() - started < 2.0


async def test_concurrent_clients_never_share_a_job(brokers: Brokers) -> None:
    ids = [f"j{i}" for i in range(300)]
    await brokers.new().enqueue(jobs(*ids))

    async def consume(broker: Broker) -> list[str]:
        got: list[str] = []
        while batch := await broker.dequeue(Q, 7, 30.0, f"{id(broker)}:{len(got)}:"):
            got += [d.id for d in batch]
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(*(consume(brokers.new()) for _ in range(3)))
    taken = [i for r in results for i in r]
    assert sorted(taken) == sorted(ids)  # every job once, none twice
    assert await brokers.new().count_jobs("running") == 300
    assert fields(await brokers.new().get_record("j7"))["id"] == "j7"


async def test_concurrent_schedulers_move_each_due_job_once(brokers: Brokers) -> None:
    now = time.time()
    ids = [f"due{i:03d}" for i in range(200)]
    await brokers.new().enqueue([job(i, due=now - 1) for i in ids])
    schedulers = [brokers.new() for _ in range(3)]
    moved = await asyncio.gather(*(s.move_due(limit=7) for s in schedulers))
    assert sum(moved) == 200
    taken = await drain_ids(brokers.new())
    assert sorted(taken) == ids  # each once: no job routed twice, none lost


async def test_mixed_batch_lands_in_each_queue_in_order(broker: Broker) -> None:
    """One enqueue call spanning several queues, delayed jobs and a repeated id."""
    batch = [
        job("h1", priority="high"),
        job("n1"),
        job("o1", name="other"),
        job("h2", priority="high"),
        job("later", due=time.time() + 3600),
        job("n2"),
        job("n1"),  # same id again in the same batch: kept once
    ]
    assert await broker.enqueue(batch) == [True] * 6 + [False]
    assert await drain_ids(broker, [("high", "t")]) == ["h1", "h2"]
    assert await drain_ids(broker, [("normal", "t")]) == ["n1", "n2"]
    assert await drain_ids(broker, [("normal", "other")]) == ["o1"]
    assert await broker.job_state("later") == "scheduled"
