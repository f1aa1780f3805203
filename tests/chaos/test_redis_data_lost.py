"""Redis lost its data: flushed, then restarted empty (no persistence). SDK
jobs of a type the running worker handles still run (the job types are
registered again with every heartbeat, and a keyspace found lost gives the
registrations a grace period), and the worker says once per loss that the
keyspace it knew is gone (`broker.data_lost`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support import RedisServer, WorkerFactory, wait_for
from test_wire_format import push


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def completed(r: redis.Redis, job_id: str) -> bool:
    status = r.hget(f"bananas:result:{job_id}", "status")
    assert status in (None, "completed"), r.hgetall(f"bananas:result:{job_id}")
    return status == "completed"


def test_sdk_jobs_of_live_types_run_after_redis_loses_its_data(
    server: RedisServer, tmp_path: Path
) -> None:
    workers = WorkerFactory(server.url, tmp_path, sink_url=f"sqlite:///{tmp_path}/sink.db")
    worker = workers.start("apps.core:app", REGISTRY_HEARTBEAT="1s")
    r = redis.Redis(port=server.port, decode_responses=True)
    try:
        wait_for(lambda: r.hexists("bananas:types", "add"), 10, message="add registered")
        first = push(r, "add", {"a": 1, "b": 2})
        wait_for(lambda: completed(r, first), 10, message="the SDK job before the loss")

        r.flushall()
        flushed = push(r, "add", {"a": 2, "b": 2})  # at once: before any heartbeat
        wait_for(lambda: completed(r, flushed), 15, message="the SDK job after the flush")
        wait_for(lambda: worker.events("broker.data_lost"), 10, message="broker.data_lost")

        server.stop()
        server.start()  # empty: no persistence
        r = redis.Redis(port=server.port, decode_responses=True)
        restarted = push(r, "add", {"a": 3, "b": 2})
        wait_for(lambda: completed(r, restarted), 20, message="the SDK job after the restart")
        wait_for(lambda: len(worker.events("broker.data_lost")) == 2, 10, message="2nd loss")
        assert r.zcard("bananas:dead") == 0
        lost = worker.events("broker.data_lost")
        assert len(lost) == 2, lost  # once per loss, not once per heartbeat
        assert {"keyspace_created_ms", "new_keyspace_created_ms"} <= set(lost[0])
    finally:
        worker.stop()
        r.close()
