"""The index of ready lists that may hold jobs (lua/_index.lua) and the
worker's copy of it (brokers/redis/ready_index.py): a dequeue names only the
lists that may hold jobs, and no job is left behind by a copy that lags."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis

from bananas import Bananas, JobSpec
from bananas.brokers.base import NewJob
from bananas.brokers.records import DeadInfo
from bananas.brokers.redis import RedisBroker, ready_index
from bananas.config import Settings

CLIENT = Bananas(settings=Settings())  # encodes records as enqueue does, no broker
TYPES = [f"t{i:03d}" for i in range(300)]
ORDER = [(p, name) for p in ("high", "normal", "low") for name in TYPES]


@pytest.fixture(autouse=True)
def no_periodic_full_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The once-a-second whole-order dequeue would add calls these tests count;
    the test of it sets its own period."""
    monkeypatch.setattr(ready_index, "FULL_EVERY", 3600.0)


def job(i: int, name: str = "t000", priority: str = "normal", **kw: Any) -> NewJob:
    spec = JobSpec(name, {}, priority, job_id=f"{name}-{priority}-{i}", **kw)
    return CLIENT.build_jobs([spec])[0]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def token() -> str:
    return f"w:{time.monotonic_ns()}:"


class Sent:
    """The ready lists each dequeue call named (the broker's own calls, seen)."""

    def __init__(self, broker: RedisBroker) -> None:
        self.calls: list[list[str]] = []
        inner = broker._run

        async def spy(call: Any) -> Any:
            if call.script.name == "dequeue":
                self.calls.append([k for k in call.keys if k.startswith("bananas:ready:")])
            return await inner(call)

        broker._run = spy  # type: ignore[method-assign]


def index(r: redis.Redis) -> set[str]:
    return {m for m in r.hkeys("bananas:nonempty") if m != "#"}


def uncovered(r: redis.Redis) -> list[str]:
    """Ready lists holding jobs that the index does not name (must be none)."""
    members = index(r)
    return [
        key
        for key in r.scan_iter("bananas:ready:*")
        if r.llen(key) and key.removeprefix("bananas:ready:") not in members
    ]


def test_a_dequeue_names_only_the_lists_that_hold_jobs(redis_url: str, r: redis.Redis) -> None:
    """300 types: after the first call the worker sends the one list with jobs,
    not 900 lists and 900 markers; emptied lists leave the index."""

    async def main() -> list[list[str]]:
        b = RedisBroker(redis_url)
        sent = Sent(b)
        await b.enqueue([job(i, "t150") for i in range(30)])
        got = []
        for _ in range(4):
            got += await b.dequeue(ORDER, 10, 30, token())
        assert sorted(d.id for d in got) == sorted(f"t150-normal-{i}" for i in range(30))
        await b.close()
        return sent.calls

    calls = run(main())
    assert len(calls[0]) == 900  # no copy yet: the whole order
    assert calls[1] == calls[2] == ["bananas:ready:normal:t150"]
    assert index(r) == set()  # popped empty by the third call
    assert calls[3] == []


def test_a_list_filled_since_the_copy_is_taken_by_the_same_call(
    redis_url: str, r: redis.Redis
) -> None:
    """The copy says only t000 may hold jobs; t000 is empty and t200 got a
    job since: the call that finds nothing sees the index moved and is sent
    again at once, so the job is taken now, not after a lease or a poll."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        other = RedisBroker(redis_url)
        await b.enqueue([job(0)])
        assert [d.id for d in await b.dequeue(ORDER, 5, 30, token())] == ["t000-normal-0"]
        await other.enqueue([job(1, "t200", "low")])
        assert [d.id for d in await b.dequeue(ORDER, 5, 30, token())] == ["t200-low-1"]
        await b.close()
        await other.close()

    run(main())


def test_a_higher_priority_job_waits_at_most_one_call(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        other = RedisBroker(redis_url)
        await b.enqueue([job(i, "t010", "low") for i in range(20)])
        await b.dequeue(ORDER, 1, 30, token())  # the copy: low:t010 only
        await other.enqueue([job(0, "t299", "high")])
        first = await b.dequeue(ORDER, 1, 30, token())
        second = await b.dequeue(ORDER, 1, 30, token())
        assert "t299-high-0" in [d.id for d in first + second]
        await b.close()
        await other.close()

    run(main())


def test_the_woken_list_is_named_whatever_the_copy_says(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        sent = Sent(b)
        other = RedisBroker(redis_url)
        await b.enqueue([job(0)])
        await b.dequeue(ORDER, 5, 30, token())
        assert await b.dequeue(ORDER, 5, 30, token()) == []
        r.delete(*[f"bananas:marker:{p}:{n}" for p, n in ORDER])
        await other.enqueue([job(1, "t123", "high")])
        assert await b.wait_for_jobs(ORDER, 5)
        sent.calls.clear()
        assert [d.id for d in await b.dequeue(ORDER, 5, 30, token())] == ["t123-high-1"]
        assert sent.calls == [["bananas:ready:high:t123"]]
        await b.close()
        await other.close()

    run(main())


def test_a_flushed_keyspace_starts_a_version_no_copy_matches(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(0)])
        await b.dequeue(ORDER, 5, 30, token())
        before = r.hget("bananas:nonempty", "#")
        r.flushall()
        await b.enqueue([job(1, "t001")])
        assert r.hget("bananas:nonempty", "#") != before
        assert [d.id for d in await b.dequeue(ORDER, 5, 30, token())] == ["t001-normal-1"]
        await b.close()

    run(main())


def test_every_path_that_makes_a_job_ready_names_its_list(redis_url: str, r: redis.Redis) -> None:
    """enqueue, due jobs, recovery (started and never started), requeue,
    replay and SDK records: each leaves its list in the index."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(0, "t001"), job(1, "t002", delay=0.05)])
        assert not uncovered(r) and index(r) == {"normal:t001"}
        r.delete("bananas:nonempty")  # from here on, each path must name its list

        await asyncio.sleep(0.1)
        await b.move_due()
        assert index(r) == {"normal:t002"}
        taken = await b.dequeue(ORDER, 5, 0.05, token(), start=1)
        assert len(taken) == 2

        r.delete("bananas:nonempty")
        await asyncio.sleep(0.1)
        assert sorted((await b.recover_expired(max_stalls=3)).recovered) == [
            "t001-normal-0",
            "t002-normal-1",
        ]
        assert index(r) == {"normal:t001", "normal:t002"}

        taken = await b.dequeue(ORDER, 5, 30, token())
        r.delete("bananas:nonempty")
        assert await b.requeue(taken) == 2
        assert index(r) == {"normal:t001", "normal:t002"}

        taken = await b.dequeue(ORDER, 5, 30, token())
        dead = [d for d in taken if d.id == "t001-normal-0"]
        assert await b.bury(dead[0], None, DeadInfo("failed", "boom"), 1.0)
        r.delete("bananas:nonempty")
        r.delete("bananas:ready:normal:t001", "bananas:ready:normal:t002")
        assert await b.replay_dead("t001-normal-0")
        assert index(r) == {"normal:t001"}

        r.delete("bananas:nonempty")
        await b.register_types(["t003"])
        r.set("bananas:job:sdk-1", json.dumps({"id": "sdk-1", "name": "t003", "payload": {}}))
        r.lpush("bananas:queue:high", "sdk-1")
        assert await b.pump_foreign("high", 1.0) == 1
        assert index(r) == {"high:t003"}
        await b.close()

    run(main())


def test_a_large_index_falls_back_to_the_whole_order(redis_url: str, r: redis.Redis) -> None:
    """More members than INDEX_LIMIT (600 lists hold jobs): the reply says
    'many' and the worker sends its whole order; once few enough lists hold
    jobs it names only those again. Every job is taken once."""

    async def main() -> list[list[str]]:
        b = RedisBroker(redis_url)
        sent = Sent(b)
        await b.enqueue([job(0, name, p) for p in ("normal", "low") for name in TYPES])
        got = []
        for _ in range(7):
            got += await b.dequeue(ORDER, 100, 30, token())
        assert sorted(d.id for d in got) == sorted(
            f"{name}-{p}-0" for p in ("normal", "low") for name in TYPES
        )
        await b.close()
        return sent.calls

    calls = run(main())
    assert [len(c) for c in calls] == [900, 900, 900, 900, 200, 100, 0]


def test_a_list_filled_without_the_index_is_found_within_the_period(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that does not keep the index (a Bananas from before it during a
    rolling upgrade, an operator's LPUSH) pushes onto a list the copy lacks:
    the periodic whole-order dequeue takes the job and names the list."""
    monkeypatch.setattr(ready_index, "FULL_EVERY", 0.3)

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(0)])
        assert [d.id for d in await b.dequeue(ORDER, 5, 30, token())] == ["t000-normal-0"]
        raw = [job(i, "t222", "low") for i in (1, 2)]
        for new in raw:
            r.set(f"bananas:job:{new.id}", new.record)
            r.lpush("bananas:ready:low:t222", new.id)
        deadline = time.monotonic() + 5
        got: list[str] = []
        while not got and time.monotonic() < deadline:
            got = [d.id for d in await b.dequeue(ORDER, 1, 30, token())]
            await asyncio.sleep(0.05)
        assert got == ["t222-low-1"]
        assert "low:t222" in index(r)  # left non-empty: named for every worker
        assert [d.id for d in await b.dequeue(ORDER, 1, 30, token())] == ["t222-low-2"]
        await b.close()

    run(main())


def calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def test_a_push_onto_a_list_holding_jobs_skips_the_queue_set_and_the_index(
    redis_url: str, r: redis.Redis
) -> None:
    """enqueue.lua names a list in the queue set and the index when its push
    finds it empty, and only then; a list a dequeue found empty (and dropped
    from the index) is named again by the next push."""
    b = RedisBroker(redis_url)
    b.sync.enqueue([job(0, "t")])
    before = {c: calls(r, c) for c in ("sadd", "hsetnx", "zadd", "lpush")}
    assert b.sync.enqueue([job(1, "t")]) == [True]
    assert b.sync.enqueue([job(2, "t"), job(3, "t")]) == [True, True]
    after = {c: calls(r, c) - n for c, n in before.items()}
    assert after == {"sadd": 0, "hsetnx": 0, "zadd": 2, "lpush": 2}

    async def drain() -> int:
        broker = RedisBroker(redis_url)
        taken = await broker.dequeue([("normal", "t")], 10, 30, token())
        assert await broker.dequeue([("normal", "t")], 10, 30, token()) == []
        await broker.close()
        return len(taken)

    assert run(drain()) == 4
    assert "normal:t" not in r.hkeys("bananas:nonempty")  # found empty
    assert b.sync.enqueue([job(4, "t")]) == [True]
    assert "normal:t" in r.hkeys("bananas:nonempty")
    b.sync.close()
