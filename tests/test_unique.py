"""Unique jobs, end to end (docs/control.md): many threads in two processes
enqueueing one key create one job, and a unique job that kills its worker
until it is dead-lettered (MAX_STALLS) leaves its key free. The broker-level
paths (complete, bury, recover, delete, replay, TTL) are in
tests/conformance/test_unique.py, on every broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from apps.unique import app
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas.config import Settings

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"

# One process: 8 threads enqueue one key 100 times each, released together;
# prints the ids the handles name and how many said they were duplicates.
_RACE = """
import json, threading
from bananas.config import Settings
from apps.unique import app
app.configure(Settings.load())
gate = threading.Barrier(8)
seen, dups, lock = set(), [0], threading.Lock()
def run():
    gate.wait()
    for _ in range(100):
        h = app.enqueue("once", k="the-one")
        with lock:
            seen.add(h.id)
            dups[0] += h.duplicate
threads = [threading.Thread(target=run) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"ids": sorted(seen), "duplicates": dups[0]}))
"""


@both_brokers
def test_8_threads_x_100_enqueues_of_one_key_in_2_processes_make_1_job(
    target: Backend, workers: WorkerFactory
) -> None:
    env = workers.env()
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(SRC)])
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    ids = {i for out in outs for i in out["ids"]}
    assert len(ids) == 1, ids  # every handle names the one job
    assert sum(out["duplicates"] for out in outs) == 1599  # all but the first said so
    [job_id] = ids
    assert target.view.count("queued", "once") == 1
    assert target.view.state(job_id) == "queued"
    workers.start("apps.unique:app", "--concurrency", "4")
    wait_for(lambda: target.view.state(job_id) == "completed", 20, message="the one job ran")
    assert target.sink.hgetall("test:unique:runs") == {"the-one": "1"}


@both_brokers
def test_a_unique_job_killing_its_worker_until_dead_lettered_frees_its_key(
    target: Backend, workers: WorkerFactory
) -> None:
    app.configure(Settings.load())
    handle = app.enqueue("hang", k="crash")
    assert not handle.duplicate
    env = {"MAX_STALLS": "2", "LEASE_TIMEOUT": "1s", "LOG_LEVEL": "warning"}
    for stall in range(1, 3):
        worker = workers.start("apps.unique:app", **env)
        wait_for(
            lambda n=stall: len(target.sink.lrange("test:unique:started")) >= n,
            30,
            message=f"run {stall} started",
        )
        assert app.enqueue("hang", k="crash").duplicate  # running: the key is held
        worker.signal(signal.SIGKILL)
        worker.wait(10)
    # Nobody runs it now; a scheduler buries it at its second stall.
    workers.start_scheduler("apps.unique:app", **env)
    wait_for(lambda: target.view.state(handle.id) == "dead", 30, message="the burial")
    assert "MAX_STALLS=2" in target.view.dead_info(handle.id).reason
    again = app.enqueue("hang", k="crash")
    assert not again.duplicate and again.id != handle.id
    assert target.view.state(again.id) == "queued"


@both_brokers
def test_dlq_delete_and_replay_of_a_unique_job(target: Backend, workers: WorkerFactory) -> None:
    app.configure(Settings.load())
    first = app.enqueue("fails", k="x")
    worker = workers.start("apps.unique:app")
    wait_for(lambda: target.view.state(first.id) == "dead", 20, message="the dead letter")
    worker.stop()
    newer = app.enqueue("fails", k="x")  # the dead letter freed the key
    assert not newer.duplicate
    # The newer job holds the key: replaying the first is refused, named.
    refused = workers.cli("dlq", "replay", first.id)
    assert refused.returncode == 1
    assert newer.id in refused.stderr and "unique key" in refused.stderr
    assert target.view.state(first.id) == "dead"
    # Deleting the first leaves the newer job's key alone.
    assert workers.cli("dlq", "delete", first.id).returncode == 0
    dup = app.enqueue("fails", k="x")
    assert dup.duplicate and dup.id == newer.id
    # The newer one dies too; its replay takes the key again.
    worker = workers.start("apps.unique:app")
    wait_for(lambda: target.view.state(newer.id) == "dead", 20, message="the second death")
    worker.stop()
    assert workers.cli("dlq", "replay", newer.id).returncode == 0
    assert target.view.state(newer.id) == "queued"
    again = app.enqueue("fails", k="x")
    assert again.duplicate and again.id == newer.id


def test_the_key_is_free_once_unique_for_passes(target: Backend) -> None:
    app.configure(Settings.load())
    first = app.enqueue("once", k="ttl", _unique_for="1s")
    assert app.enqueue("once", k="ttl", _unique_for="1s").id == first.id
    fresh = wait_for(
        lambda: (h := app.enqueue("once", k="ttl", _unique_for="1s")).id != first.id and h,
        10,
        message="the key's expiry",
    )
    assert not fresh.duplicate
    assert target.view.count("queued", "once") == 2


def test_the_test_mode_keeps_unique_keys_as_a_broker_does(bananas_test_mode: Any) -> None:
    from bananas import Bananas

    local = Bananas()

    @local.job(unique_for="1m")
    def sync_account(account: int) -> int:
        return account

    jobs = bananas_test_mode(local)
    first = sync_account.enqueue(account=7)
    dup = sync_account.enqueue(account=7)
    assert dup.duplicate and dup.id == first.id and not first.duplicate
    assert not sync_account.enqueue(account=8).duplicate
    jobs.drain()
    assert first.result() == 7
    assert not sync_account.enqueue(account=7).duplicate  # completed: the key is free


def test_jobs_without_a_key_leave_no_unique_state_and_holders_leave_none_behind(
    r: Any,
) -> None:
    """Redis: plain jobs never create the held hash (the final transitions'
    one EXISTS finds nothing); unique jobs finished leave neither locks nor
    held entries."""
    from bananas import Bananas

    local = Bananas()

    @local.job(name="u", unique_for="1m")
    def u(i: int) -> None: ...

    @local.job(name="p")
    def p(i: int) -> None: ...

    local.configure(Settings.load())
    local.enqueue_many([local.spec("p", i=i) for i in range(20)])
    assert not r.exists("bananas:unique-held") and not r.keys("bananas:unique:*")
    handles = local.enqueue_many([local.spec("u", i=i) for i in range(20)])
    assert not any(h.duplicate for h in handles)
    assert r.hlen("bananas:unique-held") == 20 and len(r.keys("bananas:unique:*")) == 20

    async def settle_all() -> None:
        broker = local.async_broker()
        calls = 0
        for queue in (("normal", "p"), ("normal", "u")):
            while got := await broker.dequeue([queue], 50, 30.0, f"t:{(calls := calls + 1)}:"):
                for d in got:
                    assert await broker.complete(d, d.raw or b"", None, 1.0)
        await local.aclose()

    asyncio.run(settle_all())
    assert r.zcard("bananas:completed") == 40
    assert not r.exists("bananas:unique-held") and not r.keys("bananas:unique:*")


def test_a_unique_job_is_placed_in_its_key_partition_on_a_cluster() -> None:
    """Redis Cluster: the id is drawn so that partition_of(id) is the key's
    partition (the record's id follows); a job sent again keeps its id."""
    from bananas import Bananas
    from bananas.brokers.redis.partitions import partition_of
    from bananas.brokers.redis.unique_place import key_partition, place

    local = Bananas(settings=Settings())
    jobs = local.build_jobs(
        [local.spec("t", {"i": i}, _unique_for="1m") for i in range(50)]
        + [local.spec("t", {"i": 0})]
    )
    plain_id = jobs[-1].id
    place(jobs, 16)
    for job in jobs[:-1]:
        assert job.unique is not None
        assert partition_of(job.id, 16) == key_partition(job.unique, 16)
        assert json.loads(job.record)["id"] == job.id
    assert jobs[-1].id == plain_id  # no key: untouched
    before = [job.id for job in jobs]
    place(jobs, 16)
    assert [job.id for job in jobs] == before


def test_a_due_unique_job_buried_as_unroutable_frees_its_key(r: Any) -> None:
    """Redis: a scheduled unique job whose record is gone when it falls due
    is dead-lettered by move_due, which frees its key too."""
    from bananas import Bananas

    local = Bananas()

    @local.job(name="later", unique_for="1m")
    def later(i: int) -> None: ...

    local.configure(Settings.load())
    held = later.enqueue(i=1, _delay="50ms")
    r.delete(f"bananas:job:{held.id}")  # lost (say, deleted by hand)

    async def move() -> None:
        broker = local.async_broker()
        deadline = time.monotonic() + 10
        while not await broker.move_due():
            assert time.monotonic() < deadline, "never due"
            await asyncio.sleep(0.02)
        assert await broker.job_state(held.id) == "dead"
        await local.aclose()

    asyncio.run(move())
    assert not later.enqueue(i=1).duplicate
