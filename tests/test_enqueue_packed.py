"""The one-job enqueue call packed from cached parts (brokers/redis/enqueue_packed.py)
is byte for byte the generic call (enqueue_call + pack_command)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import redis
from support import RedisServer

from bananas import Bananas, JobSpec
from bananas.brokers.base import NewJob
from bananas.brokers.redis import RedisBroker
from bananas.brokers.redis.connection import pack_command
from bananas.brokers.redis.enqueue_packed import MAX_QUEUES, PackedEnqueue
from bananas.brokers.redis.sync import enqueue_call
from bananas.config import Settings
from bananas.errors import BrokerRefusesWrites
from bananas.job import new_job_id
from bananas.keys import Keys

CLIENT = Bananas(settings=Settings())  # encodes records as enqueue does, no broker

SPECS = [
    JobSpec("noop", {}, "normal"),
    JobSpec("noop", {"x": 1}, "high", job_id="given-id"),
    JobSpec("send_é", {"to": "ü"}, "low", job_id="idé-1"),
    JobSpec("noop", {}, "normal", delay=2.5),
    JobSpec("noop", {}, "normal", delay=3),
    JobSpec("noop", {}, "normal", at=1_900_000_000.25),
    JobSpec("noop", {}, "normal", at=1_900_000_000.0, delay=5.0),
    JobSpec("a:b", {}, "high", route="emails"),
    JobSpec("noop", {}, "low", route="emails", delay=1.0, description="d"),
]


@pytest.mark.parametrize("prefix", ["bananas", "app:{p3}"])
@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_the_packed_call_is_the_generic_one(prefix: str, spec: JobSpec) -> None:
    keys = Keys(prefix)
    packer = PackedEnqueue(keys)
    for _ in range(2):  # the queue's parts built, then reused
        (new,) = CLIENT.build_jobs([spec])
        c = enqueue_call(keys, [new])
        generic = pack_command(("EVALSHA", c.script.sha, len(c.keys), *c.keys, *c.args))
        assert packer.pack(new) == generic


def test_the_queue_cache_is_bounded() -> None:
    packer = PackedEnqueue(Keys())
    for i in range(MAX_QUEUES + 10):
        packer.pack(CLIENT.build_jobs([JobSpec(f"t{i}", {}, "normal")])[0])
    assert len(packer._queues) <= MAX_QUEUES


# -- the single-call path on a real Redis (brokers/redis/sync.py _enqueue_one) --------


def one(i: int, name: str = "t", **kw: Any) -> NewJob:
    (new,) = CLIENT.build_jobs([JobSpec(name, {"i": i}, "normal", job_id=f"{name}-{i}", **kw)])
    return new


def test_one_job_is_written_as_a_batch_of_one_would_be(redis_url: str, r: redis.Redis) -> None:
    b = RedisBroker(redis_url)
    first = one(1)
    assert b.sync.enqueue([first]) == [True]
    assert b.sync.enqueue([one(1)]) == [False]  # idempotent by id
    assert b.sync.enqueue([one(2, delay=30.0)]) == [True]
    assert r.lrange("bananas:ready:normal:t", 0, -1) == ["t-1"]
    assert r.get("bananas:job:t-1") == first.record.decode()
    assert r.zrange("bananas:marker:normal:t", 0, -1) == ["1"]
    assert r.smembers("bananas:queues") == {"normal:t"}
    assert "normal:t" in r.hkeys("bananas:nonempty")
    assert r.zscore("bananas:queue:scheduled", "t-2") is not None
    b.sync.close()


def test_a_flushed_script_cache_is_reloaded_for_one_job(redis_url: str, r: redis.Redis) -> None:
    b = RedisBroker(redis_url)
    assert b.sync.enqueue([one(1)]) == [True]
    r.script_flush()
    assert b.sync.enqueue([one(2)]) == [True]
    assert r.lrange("bananas:ready:normal:t", 0, -1) == ["t-2", "t-1"]
    b.sync.close()


def test_a_held_connection_killed_is_replaced_and_the_job_written_once(
    redis_url: str, r: redis.Redis
) -> None:
    b = RedisBroker(redis_url)
    assert b.sync.enqueue([one(1)]) == [True]
    held = b.sync._local.conn
    assert r.client_kill_filter(_type="normal", skipme=True) >= 1  # the held one too
    assert b.sync.enqueue([one(2)]) == [True]  # redone on a pooled connection
    assert b.sync._local.conn is None
    assert b.sync.enqueue([one(3)]) == [True]
    assert b.sync._local.conn not in (None, held)
    assert r.lrange("bananas:ready:normal:t", 0, -1) == ["t-3", "t-2", "t-1"]
    b.sync.close()


def test_one_job_refused_at_maxmemory_writes_nothing(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        r = redis.Redis.from_url(server.url)
        b = RedisBroker(server.url)
        assert b.sync.enqueue([one(1)]) == [True]
        r.config_set("maxmemory", 1)
        with pytest.raises(BrokerRefusesWrites):
            b.sync.enqueue([one(2)])
        r.config_set("maxmemory", 0)
        assert not r.exists("bananas:job:t-2")
        assert r.lrange("bananas:ready:normal:t", 0, -1) == [b"t-1"]
        assert b.sync.enqueue([one(2)]) == [True]
        b.sync.close()
    finally:
        server.stop()


def test_a_forked_child_draws_ids_of_its_own() -> None:
    """Single ids come from a per-thread stock (job.py): a child forked with
    the stock filled must not hand out the parent's next ids."""
    new_job_id()  # fills this thread's stock
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then exit at once
        os.write(write, ",".join(new_job_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode().split(",")
    os.waitpid(pid, 0)
    ours = [new_job_id() for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(ours)
