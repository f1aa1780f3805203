"""Redis-only broker behaviour: its own keys, script loading and batching,
the script headers, the server clock. What every broker must do is in
tests/conformance/ (run against Redis and SQLite)."""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import redis

from bananas import Bananas, JobSpec
from bananas.brokers.base import NewJob
from bananas.brokers.redis import (
    RedisBroker,
    script_loader,
    scripts,
    slots,
    upkeep_scripts,
    workflow_scripts,
)
from bananas.config import Settings
from bananas.errors import BrokerError, BrokerUnavailable
from bananas.loops import PeriodicTasks
from bananas.vocabulary import WorkerInfo

Q = [("normal", "t")]


CLIENT = Bananas(settings=Settings())  # encodes records as enqueue does, no broker


def job(i: int) -> NewJob:
    return CLIENT.build_jobs([JobSpec("t", {}, "normal", job_id=f"j{i}")])[0]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_settling_a_recovered_job_clears_its_stall_count(redis_url: str, r: redis.Redis) -> None:
    """The lease / stall bookkeeping in Redis' own keys (conformance checks
    the behaviour; this checks nothing is left behind)."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1)])
        [first] = await b.dequeue(Q, 1, 0.2, f"w1{time.monotonic_ns()}:")
        await asyncio.sleep(0.3)
        assert (await b.recover_expired(max_stalls=3)).recovered == ["j1"]
        assert r.hget("bananas:stalls", "j1") == "1"
        [second] = await b.dequeue(Q, 1, 10, f"w2{time.monotonic_ns()}:")
        assert not await b.complete(first, b"{}", b"1", 1.0)
        assert await b.complete(second, b'{"id":"j1"}', b"2", 1.0)
        await b.close()

    run(main())
    assert r.hget("bananas:result:j1", "result") == "2"
    assert r.hget("bananas:stalls", "j1") is None
    assert r.zcard("bananas:active") == 0 and r.hlen("bananas:leases") == 0


def test_a_dequeue_sent_again_gets_the_same_jobs(redis_url: str, r: redis.Redis) -> None:
    """A dequeue whose reply was lost is sent again with its token prefix: it
    is answered with the jobs the first one leased (those still leased with
    its tokens), not with more jobs leased to nobody."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(i) for i in range(5)])
        first = await b.dequeue(Q, 2, 30, "w:7:")
        again = await b.dequeue(Q, 2, 30, "w:7:")
        assert [(d.id, d.token, d.raw) for d in again] == [(d.id, d.token, d.raw) for d in first]
        assert await b.complete(first[0], b"{}", None, 1.0)
        assert [d.id for d in await b.dequeue(Q, 2, 30, "w:7:")] == [first[1].id]
        assert [d.id for d in await b.dequeue(Q, 2, 30, "w:8:")] == ["j2", "j3"]
        await b.close()

    run(main())
    assert r.zcard("bananas:active") == 3
    assert r.pttl("bananas:dequeued:w") > 0  # kept for a lease, no longer


def test_scripts_reload_after_script_flush(redis_url: str, r: redis.Redis) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1)])
        r.script_flush()
        assert len(await b.dequeue(Q, 1, 5, f"w{time.monotonic_ns()}:")) == 1
        await b.close()

    run(main())


def test_scripts_reload_after_script_flush_for_merged_acks_and_sync_enqueue(
    redis_url: str, r: redis.Redis
) -> None:
    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(i) for i in range(5)])
        got = await b.dequeue(Q, 5, 30, f"w{time.monotonic_ns()}:")
        r.script_flush()
        done = await asyncio.gather(*(b.complete(d, b"{}", None, 1.0) for d in got))
        assert done == [True] * 5
        await b.close()

    run(main())
    assert r.zcard("bananas:active") == 0 and r.hlen("bananas:leases") == 0
    r.script_flush()
    b = RedisBroker(redis_url)
    assert b.sync.enqueue([job(i) for i in range(10, 1210)]) == [True] * 1200
    run(b.close())


def test_a_call_that_cannot_be_sent_fails_alone_and_the_broker_goes_on(redis_url: str) -> None:
    """No caller may wait forever, and one bad call does not fail the others
    pipelined with it."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(1), job(2)])
        bad = b._call("extend", ["bananas:active", "bananas:leases"], [object()])
        good = b.dequeue(Q, 1, 30, f"w{time.monotonic_ns()}:")
        outcomes = await asyncio.wait_for(
            asyncio.gather(bad, good, return_exceptions=True), timeout=10
        )
        assert isinstance(outcomes[0], BrokerError), outcomes
        assert [d.id for d in outcomes[1]] == ["j1"]
        [d] = await asyncio.wait_for(b.dequeue(Q, 1, 30, f"w{time.monotonic_ns()}:"), timeout=10)
        assert d.id == "j2"
        await b.close()

    run(main())


def test_one_bad_ack_in_a_merged_batch_fails_alone(redis_url: str, r: redis.Redis) -> None:
    """A job whose result key holds a foreign value cannot be acked; the acks
    sharing its script call still are, and its lease stays for recovery."""

    async def main() -> None:
        b = RedisBroker(redis_url)
        await b.enqueue([job(i) for i in range(1, 4)])
        got = await b.dequeue(Q, 3, 30, f"w{time.monotonic_ns()}:")
        r.set("bananas:result:j2", "not a hash")
        outcomes = await asyncio.gather(
            *(b.complete(d, b"{}", None, 1.0) for d in got), return_exceptions=True
        )
        assert outcomes[0] is True and outcomes[2] is True, outcomes
        assert isinstance(outcomes[1], BrokerError) and "WRONGTYPE" in str(outcomes[1])
        await b.close()

    run(main())
    assert r.zrange("bananas:active", 0, -1) == ["j2"]
    assert r.hget("bananas:result:j1", "status") == "completed"
    assert r.hget("bananas:result:j3", "status") == "completed"


def test_periodic_loops_on_redis_stop_even_when_a_cancel_is_swallowed(redis_url: str) -> None:
    """redis-py (with our retry policy and health checks) can swallow a cancel
    that lands mid-command and return normally; a loop cancelled once then ran
    on and the worker's stop waited for it forever (seen as a worker hanging
    after worker.drained). 200 loops of pings, each stopped at a random point
    of a command: every stop must end."""

    async def main() -> None:
        broker = RedisBroker(redis_url)
        errors: list[Exception] = []
        try:
            for i in range(200):
                loops = PeriodicTasks(lambda name, exc: errors.append(exc))
                loops.add("ping", 0.0, broker.ping)
                for _ in range(1 + i % 7):
                    await asyncio.sleep(0)
                await asyncio.wait_for(loops.stop(), 5)
        finally:
            await broker.close()
        assert errors == []

    asyncio.run(main())


# -- script headers vs their wrappers ------------------------------------------------
_FIXED = re.compile(r"^-- (KEYS|ARGV)\[(\d+)\]\s+(\w+)")
_GROUP = re.compile(r"^-- (KEYS|ARGV)\[\d*\.\.\] per (\w+): ([\w, ]+)$")


def _header(name: str) -> dict[str, list[tuple[str, str | list[str]]]]:
    """KEYS / ARGV of a script's header, in order: (name, "fixed") or
    (group, [its names])."""
    sides: dict[str, list[tuple[str, str | list[str]]]] = {"KEYS": [], "ARGV": []}
    for line in script_loader.read_source(f"{name}.lua").splitlines():
        if line.startswith("#!lua"):
            continue  # the script flags line
        if not line.startswith("--"):
            break  # the header is the opening comment block
        if fixed := _FIXED.match(line):
            side, index, entry = fixed.groups()
            assert int(index) == len(sides[side]) + 1, f"{name}.lua: {side}[{index}] out of order"
            sides[side].append((entry, "fixed"))
        elif group := _GROUP.match(line):
            side, label, names = group.groups()
            sides[side].append((label, [n.strip() for n in names.split(",")]))
    return sides


def _group_names(header: dict[str, list[tuple[str, str | list[str]]]], group: str) -> list[str]:
    names: list[str] = []
    for side in ("KEYS", "ARGV"):
        for label, kind in header[side]:
            if label == group and isinstance(kind, list):
                names += kind
    return names


SCRIPT_FILES = sorted(
    p.stem
    for p in Path(scripts.__file__).parent.parent.joinpath("lua").glob("*.lua")
    if not p.stem.startswith("_")
)
WRAPPER_MODULES = (scripts, upkeep_scripts, slots, workflow_scripts)


def wrapper_of(name: str) -> Any:
    """The one wrapper of a script, in whichever wrapper module holds it."""
    found = [getattr(m, name) for m in WRAPPER_MODULES if callable(getattr(m, name, None))]
    assert len(found) == 1, f"{name}: {len(found)} wrappers"
    return found[0]


def test_every_script_has_a_wrapper() -> None:
    assert sorted(script_loader.SCRIPT_NAMES) == SCRIPT_FILES
    for name in SCRIPT_FILES:
        wrapper_of(name)
        source = script_loader.read_source(f"{name}.lua")
        assert "Returns:" in source, f"{name}.lua names no Returns"


def test_every_script_declares_its_flags() -> None:
    """A `#!lua` first line makes Redis 7 refuse a script whole at maxmemory
    (no flags: the first memory-growing write fails, later ones go through);
    `allow-oom` only where the script does not grow memory (or frees it)."""
    allow_oom = {"delete_dead", "extend", "heartbeat", "prune_workers", "requeue"}
    allow_oom |= {"slot_extend", "slot_release"}  # a hold's heartbeat and give-back
    for name in SCRIPT_FILES:
        first = script_loader.load(name).source.splitlines()[0]
        assert first == ("#!lua flags=allow-oom" if name in allow_oom else "#!lua"), name


@pytest.mark.parametrize("name", SCRIPT_FILES)
def test_wrapper_passes_exactly_the_keys_and_argv_of_the_header(name: str) -> None:
    """Call each wrapper with every parameter set to its own name (each group
    to two items of its member names) and compare the KEYS and ARGV it builds
    with the header's, name for name, in order."""
    header = _header(name)
    wrapper = wrapper_of(name)
    kwargs: dict[str, Any] = {}
    for param in inspect.signature(wrapper).parameters.values():
        if "Prefixes" in str(param.annotation):
            prefixes = upkeep_scripts.Prefixes
            kwargs[param.name] = prefixes(*(f.name for f in fields(prefixes)))
        elif members := _group_names(header, param.name):
            kwargs[param.name] = [tuple(f"{m}#{i}" for m in members) for i in range(2)]
        else:
            kwargs[param.name] = param.name
    call = wrapper(**kwargs)
    for side, built in (("KEYS", call.keys), ("ARGV", call.args)):
        expected: list[Any] = []
        for label, kind in header[side]:
            if isinstance(kind, list):
                expected += [f"{m}#{i}" for i in range(2) for m in kind]
            else:
                expected.append(label)
        assert [str(x) for x in built] == expected, f"{name}.lua {side}"


# -- one clock -----------------------------------------------------------------------
async def _until(probe: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await probe()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return value


def test_time_decisions_follow_the_redis_clock_not_the_hosts(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose clock is an hour off (fast, then slow) still agrees with
    Redis on every lease, due time, minute bucket and heartbeat."""
    real = time.time

    def skew(seconds: float) -> None:
        monkeypatch.setattr(time, "time", lambda: real() + seconds)

    async def main() -> None:
        b = RedisBroker(redis_url)
        try:
            await b.enqueue([job(1), job(2)])
            [d] = await b.dequeue(Q, 1, 30, f"w{time.monotonic_ns()}:")
            skew(3600)  # fast: by this clock every 30 s lease is long over
            assert abs(await b.server_time() - real()) < 5
            assert (await b.recover_expired(3)).recovered == []
            assert await b.extend_leases([(d.id, d.token)], 0.2) == []

            # ... and expires 0.2 s later by Redis' clock, not in an hour.
            async def recovered() -> list[str]:
                return (await b.recover_expired(3)).recovered

            assert await _until(recovered) == ["j1"]
            later = job(3)
            later.delay = 0.3
            await b.enqueue([later])
            assert await b.move_due() == 0  # not due, however late this host thinks it is
            skew(-3600)  # slow: by this clock nothing will be due for an hour
            assert await _until(b.move_due) == 1
            [first, second] = await b.dequeue(Q, 2, 30, f"w{time.monotonic_ns()}:")
            assert await b.retry(first, b'{"id":"j1"}', 0.2)
            assert await _until(b.move_due) == 1
            assert await b.complete(second, b"{}", None, 1.0)
            assert sum(t.completed for t in await b.throughput(2)) == 1
            assert sum(t.failed for t in await b.throughput(2)) == 1
            await b.heartbeat_worker(WorkerInfo(id="w"))
            [seen] = await b.list_workers(60)  # not pruned as an hour silent
            assert seen.last_seen is not None and abs(seen.last_seen - real()) < 5
        finally:
            await b.close()

    run(main())


def test_errors_are_wrapped_at_the_boundary() -> None:
    """redis-py and socket errors leave the broker as BrokerUnavailable /
    BrokerError, from the asyncio and the sync paths alike."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    b = RedisBroker(f"redis://127.0.0.1:{port}/0")

    async def main() -> None:
        with pytest.raises(BrokerUnavailable):
            await b.ping()
        with pytest.raises(BrokerUnavailable):
            await b.get_result("x")
        with pytest.raises(BrokerUnavailable):
            await b.enqueue([job(1)])
        await b.close()

    run(main())
    with pytest.raises(BrokerUnavailable):
        b.sync.enqueue([job(1)])
    with pytest.raises(BrokerUnavailable):
        b.sync.wait_result("x", 1.0)
    b.sync.close()


def test_a_wrong_type_key_is_a_broker_error(redis_url: str, r: redis.Redis) -> None:
    r.set("bananas:result:x", "not a hash")
    b = RedisBroker(redis_url)

    async def main() -> None:
        with pytest.raises(BrokerError, match="WRONGTYPE"):
            await b.get_result("x")
        await b.close()

    run(main())
    with pytest.raises(BrokerError, match="WRONGTYPE"):
        b.sync.get_result("x")
    b.sync.close()
