"""Leases: tokens, heartbeats, stale outcomes refused, recovery of a lost
worker's jobs, stall counting and dead-lettering, requeue on drain."""

from __future__ import annotations

import asyncio
import time

from bananas.brokers import Broker
from bananas.brokers.base import DeadInfo, NewJob

from .conftest import Brokers
from .kit import Q, drain_ids, expire, fields, jobs, lease_one, record


async def test_dequeue_leases_the_job(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b"))
    before = time.time()
    d = await lease_one(broker, lease=30.0)
    assert d.id == "a"
    assert await broker.job_state("a") == "running"
    assert await broker.job_state("b") == "queued"
    assert (await broker.stats()).active == 1
    assert await broker.active_by_queue() == {("normal", "t"): 1}
    [running] = await broker.list_jobs("running")
    assert running.id == "a"
    assert (before + 29) * 1000 < running.when_ms < (time.time() + 31) * 1000


async def test_heartbeat_keeps_the_lease(broker: Broker) -> None:
    await broker.enqueue(jobs("a"))
    d = await lease_one(broker, lease=1.0)
    for _ in range(6):  # 1.2 s in all: longer than one lease
        await asyncio.sleep(0.2)
        assert await broker.extend_leases([(d.id, d.token)], 1.0) == []
        assert (await broker.recover_expired(3)).recovered == []
    assert await broker.complete(d, record("a"), None, 1.0)


async def test_expired_lease_comes_back_first(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b"))
    first = await lease_one(broker, lease=0.1)
    report = await expire(broker)
    assert report.recovered == ["a"] and report.buried == []
    assert await broker.job_state("a") == "queued"
    again = await lease_one(broker)
    assert again.id == "a"  # back at the head of its queue, before b
    assert again.token != first.token
    assert fields(again.raw)["attempts"] == 0  # a lost worker charges no attempt


async def test_stale_lease_outcomes_are_refused(broker: Broker) -> None:
    await broker.enqueue(jobs("a"))
    slow = await lease_one(broker, lease=0.1)
    await expire(broker)
    fresh = await lease_one(broker)
    assert await broker.extend_leases([(slow.id, slow.token)], 30.0) == ["a"]
    assert not await broker.complete(slow, record("a"), b"1", 1.0)
    assert not await broker.retry(slow, record("a"), 0.0)
    assert not await broker.bury(slow, None, DeadInfo("x", "x"), 1.0)
    assert await broker.requeue([slow]) == 0
    assert await broker.job_state("a") == "running"
    assert await broker.extend_leases([(fresh.id, fresh.token)], 30.0) == []
    assert await broker.complete(fresh, record("a"), b"2", 1.0)
    result = await broker.get_result("a")
    assert result is not None and result.value() == 2


async def test_extend_reports_leases_no_longer_held(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b"))
    a, b = await lease_one(broker), await lease_one(broker)
    assert await broker.complete(a, record("a"), None, 1.0)
    lost = await broker.extend_leases([(a.id, a.token), (b.id, b.token), ("ghost", "t")], 30.0)
    assert sorted(lost) == ["a", "ghost"]


async def test_extend_moves_the_deadline(broker: Broker) -> None:
    await broker.enqueue(jobs("a"))
    d = await lease_one(broker, lease=0.2)
    assert await broker.extend_leases([(d.id, d.token)], 60.0) == []
    await asyncio.sleep(0.4)
    assert (await broker.recover_expired(3)).recovered == []
    [running] = await broker.list_jobs("running")
    assert running.when_ms > (time.time() + 50) * 1000


async def test_recovery_is_bounded_per_call(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b", "c"))
    await broker.dequeue(Q, 3, 0.05, f"w{time.monotonic_ns()}:")
    await asyncio.sleep(0.2)
    first = await broker.recover_expired(3, limit=2)
    assert first.recovered == ["a", "b"]
    assert (await broker.recover_expired(3, limit=2)).recovered == ["c"]
    assert sorted(await drain_ids(broker)) == ["a", "b", "c"]


async def test_job_stalling_max_stalls_times_is_dead_lettered(broker: Broker) -> None:
    [new] = jobs("crash")
    await broker.enqueue([new])
    await lease_one(broker, lease=0.05)
    assert (await expire(broker, max_stalls=2)).recovered == ["crash"]
    await lease_one(broker, lease=0.05)
    report = await expire(broker, max_stalls=2)
    assert report.buried == ["crash"] and report.recovered == []
    assert await broker.job_state("crash") == "dead"
    info = await broker.get_dead_info("crash")
    assert info is not None and "MAX_STALLS=2" in info.reason and info.source == "broker"
    result = await broker.get_result("crash")
    assert result is not None and result.status == "failed" and "MAX_STALLS" in (result.error or "")
    # The record says what happened (it used to stay "pending", attempts 0);
    # everything else in it is kept, for inspection and replay.
    failed = fields(await broker.get_record("crash"))
    kept = fields(new.record)
    assert failed["status"] == "failed" and "MAX_STALLS=2" in failed["error"]
    assert failed["attempts"] == kept["attempts"] + 1
    assert {
        k: v for k, v in failed.items() if k not in ("status", "error", "attempts", "updated_at")
    } == {k: v for k, v in kept.items() if k not in ("status", "attempts", "updated_at")}


async def test_stalled_dead_letter_keeps_its_type_and_priority(broker: Broker) -> None:
    """`bananas dlq list` showed `?` and an empty name for jobs buried by MAX_STALLS."""
    await broker.enqueue(jobs("crash", name="mail", priority="high"))
    await lease_one(broker, lease=0.05, queues=[("high", "mail")])
    assert (await expire(broker, max_stalls=1)).buried == ["crash"]
    [letter] = await broker.list_dead()
    assert (letter.info.name, letter.info.priority) == ("mail", "high")
    assert letter.info.failed_at and "MAX_STALLS=1" in letter.info.error
    assert await broker.get_dead_info("crash") == letter.info
    rec = fields(letter.record)
    assert (rec["status"], rec["attempts"], rec["name"], rec["priority"]) == (
        "failed",
        1,
        "mail",
        "high",
    )
    assert "MAX_STALLS=1" in rec["error"]
    assert await broker.replay_dead("crash")  # the failed record replays as any other
    assert fields(await broker.get_record("crash"))["status"] == "pending"
    assert await drain_ids(broker, [("high", "mail")]) == ["crash"]


async def test_stalled_job_with_an_unreadable_record_keeps_it(broker: Broker) -> None:
    await broker.enqueue([NewJob("junk", "t", "normal", b"[1, 2]")])
    await lease_one(broker, lease=0.05)
    assert (await expire(broker, max_stalls=1)).buried == ["junk"]
    assert await broker.get_record("junk") == b"[1, 2]"
    info = await broker.get_dead_info("junk")
    assert info is not None and (info.name, info.priority) == ("t", "normal")


async def test_stall_count_survives_retries_and_resets_on_replay(broker: Broker) -> None:
    await broker.enqueue(jobs("s"))
    await lease_one(broker, lease=0.05)
    await expire(broker, max_stalls=2)  # stall 1 of 2
    d = await lease_one(broker)
    assert await broker.retry(d, record("s", attempts=1), -1.0)
    assert await broker.move_due() == 1
    await lease_one(broker, lease=0.05)
    assert (await expire(broker, max_stalls=2)).buried == ["s"]  # stall 2: counted across retry
    assert await broker.replay_dead("s")
    await lease_one(broker, lease=0.05)
    assert (await expire(broker, max_stalls=2)).recovered == ["s"]  # replay reset the count


async def test_requeue_puts_back_at_the_head_uncharged(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b", "c"))
    got = await broker.dequeue(Q, 2, 30.0, f"w{time.monotonic_ns()}:")
    assert await broker.requeue(got) == 2
    assert await broker.count_jobs("running") == 0
    order = await drain_ids(broker)
    assert order == ["b", "a", "c"]  # each put back at the head, in turn
    assert fields(await broker.get_record("a"))["attempts"] == 0


async def test_requeue_nothing(broker: Broker) -> None:
    assert await broker.requeue([]) == 0
    assert await broker.extend_leases([], 1.0) == []


async def test_concurrent_recoverers_recover_each_job_once(brokers: Brokers) -> None:
    worker = brokers.new()
    ids = [f"j{i:03d}" for i in range(60)]
    await worker.enqueue(jobs(*ids))
    await worker.dequeue(Q, 60, 0.05, f"w{time.monotonic_ns()}:")
    await asyncio.sleep(0.2)  # every lease has run out

    async def recoverer(broker: Broker) -> list[str]:
        got: list[str] = []
        while report := (await broker.recover_expired(3, limit=7)).recovered:
            got += report
        return got

    found = await asyncio.gather(*(recoverer(brokers.new()) for _ in range(3)))
    recovered = [i for ids_ in found for i in ids_]
    assert sorted(recovered) == ids  # each exactly once
    assert sorted(await drain_ids(worker)) == ids


async def test_concurrent_acks_settle_each_job_on_its_own(broker: Broker) -> None:
    """Acks sent in the same instant (a broker may settle them as one batch)
    each get their own answer: a stale one among them changes nothing else."""
    await broker.enqueue(jobs(*[f"j{i}" for i in range(12)]))
    first = await broker.dequeue(Q, 12, 0.1, f"w1{time.monotonic_ns()}:")
    assert len(first) == 12
    await expire(broker)  # every lease lapses; take 11 back under new tokens
    fresh = await broker.dequeue(Q, 11, 30.0, f"w2{time.monotonic_ns()}:")
    stale = next(d for d in first if d.id not in {f.id for f in fresh})
    stale_again = next(d for d in first if d.id == fresh[0].id)
    outcomes = await asyncio.gather(
        *(broker.complete(d, record(d.id), str(i).encode(), 1.0) for i, d in enumerate(fresh)),
        broker.complete(stale_again, record(stale_again.id), b"-1", 1.0),
    )
    assert outcomes == [True] * 11 + [False]
    for i, d in enumerate(fresh):
        result = await broker.get_result(d.id)
        assert result is not None and result.status == "completed" and result.value() == i
        assert await broker.job_state(d.id) == "completed"
    # the one job nobody re-leased is still queued, its old token refused
    assert await broker.job_state(stale.id) == "queued"
    assert not await broker.complete(stale, record(stale.id), None, 1.0)
    assert (await broker.stats()).active == 0


async def test_the_same_ack_twice_at_once_counts_once(broker: Broker) -> None:
    await broker.enqueue(jobs("a", "b"))
    a, b = await broker.dequeue(Q, 2, 30.0, f"w{time.monotonic_ns()}:")
    outcomes = await asyncio.gather(
        broker.complete(a, record("a"), b"1", 1.0),
        broker.complete(a, record("a"), b"2", 1.0),
        broker.complete(b, record("b"), None, 1.0),
    )
    # The second is the same lease's ack: answered done, applied once.
    assert outcomes == [True, True, True]
    result = await broker.get_result("a")
    assert result is not None and result.value() == 1
    stats = await broker.stats()
    assert stats.active == 0 and stats.completed == 2  # indexed once each


async def test_retried_ack_after_applied_ack_reports_success(broker: Broker) -> None:
    """An outcome sent again because its reply was lost finds its own earlier
    one applied (token-checked) and reports success, applied once."""
    await broker.enqueue(jobs("a", "b", "c"))
    a, b, c = await broker.dequeue(Q, 3, 30.0, f"w{time.monotonic_ns()}:")
    assert await broker.complete(a, record("a"), b"1", 1.0)
    assert await broker.complete(a, record("a"), b"1", 1.0)
    again = record("b", attempts=1)
    assert await broker.retry(b, again, 60.0)
    assert await broker.retry(b, again, 60.0)
    info = DeadInfo("boom", "boom")
    assert await broker.bury(c, None, info, 1.0)
    assert await broker.bury(c, None, info, 1.0)
    stats = await broker.stats()
    assert stats.completed == 1 and stats.scheduled == 1 and stats.dead == 1
    assert stats.active == 0
    # Another holder's token is still refused.
    impostor = type(a)(a.id, a.raw, a.token + "0")
    assert not await broker.complete(impostor, record("a"), b"2", 1.0)


async def test_stall_only_if_started(broker: Broker) -> None:
    """A lease that expires is charged a stall only if its job started: the
    first `start` of a dequeue, or one the heartbeat reported started."""
    await broker.enqueue(jobs("ran", "buffered"))
    got = await broker.dequeue(Q, 2, 0.05, f"w{time.monotonic_ns()}:", start=1)
    assert [d.id for d in got] == ["ran", "buffered"]
    report = await expire(broker, max_stalls=1)
    assert report.buried == ["ran"] and report.recovered == ["buffered"]
    assert await broker.job_state("buffered") == "queued"
    [late] = await broker.dequeue(Q, 1, 0.05, f"w{time.monotonic_ns()}:", start=0)
    assert await broker.extend_leases([(late.id, late.token)], 0.05, {late.id}) == []
    report = await expire(broker, max_stalls=1)
    assert report.buried == ["buffered"]
