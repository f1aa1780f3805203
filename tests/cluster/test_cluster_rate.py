"""Rate limits on Redis Cluster with real worker processes: the type's
bucket lives in one partition (partition_of_key) while its jobs spread over
every partition; 300 jobs at 50/s over 2 workers take 6 s, as on one Redis,
with no attempt charged; two keys hold their limit each."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from apps.rates import app
from apps.sink import open_sink
from support import WorkerFactory, wait_for
from topology import Cluster

from bananas.brokers.redis.partitions import partition_of
from bananas.config import Settings

pytestmark = pytest.mark.timeout(180)


def _span(entries: list[str]) -> float:
    starts = sorted(float(e.split()[0]) for e in entries)
    return starts[-1] - starts[0]


def test_the_limit_holds_across_partitions_and_workers(
    redis_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_cluster.flushall()
    sink_url = f"sqlite:///{tmp_path}/sink.db"
    sink = open_sink(sink_url)
    monkeypatch.setenv("TEST_SINK_URL", sink_url)
    factory = WorkerFactory(redis_cluster.url, tmp_path, sink_url=sink_url)
    app.configure(Settings(broker_url=redis_cluster.url))
    try:
        for _ in range(2):
            factory.start("apps.rates:app", "--concurrency", "10")
        sent = time.monotonic()
        handles = app.enqueue_many([app.spec("limited", n=i) for i in range(300)])
        assert len({partition_of(h.id, 3) for h in handles}) == 3
        wait_for(lambda: sink.llen("test:rate:limited") == 300, 30, 0.05, "300 ran")
        took = time.monotonic() - sent
        span = _span(sink.lrange("test:rate:limited"))
        print(f"cluster: 300 at 50/s in {took:.2f}s (starts span {span:.2f}s)")
        assert 5.4 <= took <= 6.6 and 5.4 <= span <= 6.6, (took, span)
        for h in handles:
            wait_for(lambda h=h: h.info() is not None, 10, message="settled")
        records = [app.broker.sync.get_record(h.id) for h in handles]
        assert {json.loads(r or b"{}").get("attempts") for r in records} == {1}
        specs = [app.spec("keyed", n=i, key=k, _rate_key=k) for i in range(150) for k in "ab"]
        app.enqueue_many(specs)
        for key in "ab":
            name = f"test:rate:keyed:{key}"
            wait_for(lambda n=name: sink.llen(n) == 150, 30, 0.05, f"key {key}")
            span = _span(sink.lrange(name))
            print(f"cluster: key {key}: 150 at 50/s, starts span {span:.2f}s")
            assert 2.68 <= span <= 3.28, (key, span)
        assert not factory.repeat_causes()
    finally:
        factory.stop_all()
        app.close()
        sink.close()
