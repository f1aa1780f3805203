"""`bed`: a fresh 3-primary/3-replica Redis Cluster per test (these tests
kill and reshard nodes), workers on it, and the run-log sink on the
standalone Redis of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support import RedisServer, WorkerFactory
from topology import Cluster

from cluster.bed import Bed


@pytest.fixture
def bed(
    cluster_factory: Callable[..., Cluster],
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    if not redis_server.running:
        redis_server.start()
    sink = redis.Redis.from_url(redis_server.url, decode_responses=True)
    sink.flushall()
    cluster = cluster_factory()
    monkeypatch.setenv("REDIS_URL", cluster.url)
    monkeypatch.delenv("BANANAS_BROKER_URL", raising=False)
    monkeypatch.setenv("TEST_REDIS_URL", redis_server.url)
    monkeypatch.setenv("TEST_SINK_URL", redis_server.url)
    workers = WorkerFactory(cluster.url, tmp_path, sink_url=redis_server.url)
    chosen = Bed(cluster, sink, workers, redis_server.url)
    try:
        yield chosen
    finally:
        workers.stop_all()
        chosen.close()
        sink.close()
