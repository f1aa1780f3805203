"""Concurrency limits on Redis Cluster with real worker processes: the
buckets live in their keys' partitions, the jobs in theirs (spread over
every partition), and the caps hold across 3 workers all the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from apps import concurrency as conc
from support import WorkerFactory, wait_for
from topology import Cluster

from bananas import Bananas
from bananas.brokers.redis.partitions import partition_of, partition_of_key
from bananas.concurrency import bucket_of
from bananas.config import Settings

pytestmark = pytest.mark.timeout(180)


def test_caps_hold_across_partitions(
    redis_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_cluster.flushall()
    counters = tmp_path / "counters"
    counters.mkdir()
    monkeypatch.setenv("TEST_CONC_DIR", str(counters))
    factory = WorkerFactory(redis_cluster.url, tmp_path, sink_url=f"sqlite:///{tmp_path}/s.db")
    app = Bananas(settings=Settings(broker_url=redis_cluster.url))
    try:
        for _ in range(3):
            factory.start(
                "apps.concurrency:app",
                TEST_CONC_DIR=str(counters),
                WORKER_CONCURRENCY="20",
                LEASE_TIMEOUT="2s",
            )
        capped = app.enqueue_many([app.spec("capped", {"ms": 150}) for _ in range(20)])
        keyed = app.enqueue_many(
            [
                app.spec("per_key", {"customer": c, "ms": 100}, _concurrency_key=c)
                for _ in range(4)
                for c in ("a", "b", "c", "d")
            ]
        )
        assert len({partition_of(h.id, 3) for h in capped}) == 3
        buckets = [bucket_of("per_key", c) for c in "abcd"]
        assert len({partition_of_key(b, 3) for b in buckets}) > 1  # several partitions
        wait_for(lambda: conc.read("capped")["done"] == 20, 60, message="20 capped jobs")
        wait_for(lambda: conc.read("per_key")["done"] == 16, 60, message="16 keyed jobs")
        assert conc.read("capped")["max"] == 2
        for c in "abcd":
            assert conc.read(f"key-{c}")["max"] == 1, c
        assert conc.read("per_key")["max"] >= 2
        assert all(h.result(timeout=10) is None for h in [*capped, *keyed])
    finally:
        factory.stop_all()
