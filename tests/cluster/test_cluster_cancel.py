"""Cancel on Redis Cluster with real worker processes: running jobs spread
over every partition, held by two workers, each stopped within 2 s of
`cancel()` whichever worker and partition it is on; a queued one never runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from apps.sink import open_sink
from support import WorkerFactory, wait_for
from topology import Cluster

from bananas import Bananas, CancelOutcome
from bananas.brokers.redis.partitions import partition_of
from bananas.config import Settings

pytestmark = pytest.mark.timeout(180)


def test_running_jobs_on_every_partition_stop_within_2s(
    redis_cluster: Cluster, tmp_path: Path
) -> None:
    redis_cluster.flushall()
    sink_url = f"sqlite:///{tmp_path}/sink.db"
    sink = open_sink(sink_url)
    factory = WorkerFactory(redis_cluster.url, tmp_path, sink_url=sink_url)
    app = Bananas(settings=Settings(broker_url=redis_cluster.url))
    try:
        for _ in range(2):
            # No prefetch: a worker leases only what it starts (8 slots, 6 jobs).
            factory.start("apps.cancels:app", "--concurrency", "4", WORKER_PREFETCH="0")
        handles = [app.enqueue("long_async", {"k": f"j{i}"}) for i in range(6)]
        assert len({partition_of(h.id, 3) for h in handles}) > 1
        wait_for(
            lambda: all(sink.hget("test:runs", f"j{i}") for i in range(6)), 30, message="started"
        )
        asked = time.monotonic()
        assert [h.cancel() for h in handles] == [CancelOutcome.REQUESTED] * 6
        for h in handles:
            wait_for(lambda h=h: h.info() is not None, 10, message="settled")
            info = h.info()
            assert info is not None and info.status == "cancelled"
        took = time.monotonic() - asked
        print(f"cluster: 6 running jobs cancelled in {took:.3f}s")
        assert took < 2.0
        assert sum(len(w.events("job.cancelled")) for w in factory.started) == 6
        queued = app.enqueue("quick", {"k": "queued"}, _delay=0.5)
        assert queued.cancel() == CancelOutcome.CANCELLED
        late = app.enqueue("quick", {"k": "late"}, _delay=1.0)
        assert late.result(timeout=30) == "late"
        assert not sink.hget("test:runs", "queued")
        assert all(int(sink.hget("test:runs", f"j{i}") or 0) == 1 for i in range(6))
    finally:
        factory.stop_all()
        app.close()
        sink.close()
