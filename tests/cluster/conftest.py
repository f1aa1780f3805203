"""`bed`: a fresh 3-primary/3-replica Redis Cluster per test (for tests that
kill or reshard nodes); `shared_bed`: the session's cluster (`redis_cluster`),
flushed, for tests that only read and write. Both come with workers on the
cluster and the run-log sink on the standalone Redis of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from support import RedisServer, WorkerFactory
from topology import Cluster

from cluster.bed import Bed


def _bed(
    cluster: Cluster, server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Bed]:
    if not server.running:
        server.start()
    sink = redis.Redis.from_url(server.url, decode_responses=True)
    sink.flushall()
    monkeypatch.setenv("REDIS_URL", cluster.url)
    monkeypatch.delenv("BANANAS_BROKER_URL", raising=False)
    monkeypatch.setenv("TEST_REDIS_URL", server.url)
    monkeypatch.setenv("TEST_SINK_URL", server.url)
    workers = WorkerFactory(cluster.url, tmp_path, sink_url=server.url)
    chosen = Bed(cluster, sink, workers, server.url)
    try:
        yield chosen
    finally:
        workers.stop_all()
        chosen.close()
        sink.close()


@pytest.fixture
def bed(
    cluster_factory: Callable[..., Cluster],
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    yield from _bed(cluster_factory(), redis_server, tmp_path, monkeypatch)


@pytest.fixture
def shared_bed(
    redis_cluster: Cluster,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Bed]:
    redis_cluster.flushall()
    yield from _bed(redis_cluster, redis_server, tmp_path, monkeypatch)
