"""Chaos scenarios 3 and 4: Redis killed and restarted from its AOF; Redis
unreachable for 15 s. Each test runs its own redis-server (appendonly yes,
appendfsync everysec) so the faults do not touch other tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.chaos import app
from support import RedisServer, WorkerFactory, free_port, wait_for
from test_observe import get

from bananas import Bananas, BrokerUnavailable
from bananas.config import Settings
from chaos.analysis import RunLog
from chaos.conftest import scale


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    yield server
    server.stop()


class Producer(threading.Thread):
    """Enqueues `total` jobs at `rate`/s; remembers which enqueues were acknowledged.
    Through an app of its own (the specs from apps.chaos' definitions): one that
    outlived a failed test must not enqueue into the next test's broker through
    the shared apps.chaos.app."""

    def __init__(self, url: str, total: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.total, self.rate = url, total, rate
        self.app = Bananas(settings=Settings.load(env={"REDIS_URL": url}))
        self.acked: dict[str, float] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        start = time.monotonic()
        try:
            for i in range(self.total):
                time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
                k = f"p{i}"
                try:
                    self.app.enqueue_many([app.spec("work", k=k, ms=5)])  # its max_retries
                except BrokerUnavailable as exc:
                    self.errors.append(str(exc))
                    continue
                self.acked[k] = time.time()
        finally:
            self.app.close()


def test_redis_killed_and_restarted_from_aof(
    aof_redis: RedisServer, workers: WorkerFactory, chaos_report: dict[str, object]
) -> None:
    workers.redis_url = aof_redis.url
    env = {
        "REDIS_URL": aof_redis.url,
        "TEST_REDIS_URL": aof_redis.url,
        "LOG_LEVEL": "warning",
        "LEASE_TIMEOUT": "3s",
    }
    pool = [workers.start("apps.chaos:app", "--concurrency", "20", **env) for _ in range(2)]
    producer = Producer(aof_redis.url, scale(6000, 3000), 300)
    producer.start()
    wait_for(lambda: len(producer.acked) > 1000, 30, message="1,000 enqueued")
    aof_redis.stop(sig=9)
    crashed_at = time.time()
    aof_redis.start()
    producer.join(60)
    r = redis.Redis.from_url(aof_redis.url, decode_responses=True)
    acked = list(producer.acked)
    wait_for(
        lambda: sum(1 for v in r.hmget("test:runs", acked) if v) >= len(acked) - 300,
        60,
        interval=0.2,
        message="workers reconnected and caught up",
    )
    wait_for(
        lambda: r.zcard("bananas:active") == 0 and r.llen("bananas:ready:normal:work") == 0,
        30,
        message="queues drained",
    )
    log = RunLog.read(r, acked)
    lost = log.lost
    late = [k for k in lost if producer.acked[k] < crashed_at - 1.0]
    chaos_report.update(
        enqueued=len(acked),
        refused_during_crash=len(producer.errors),
        lost=len(lost),
        lost_older_than_1s=len(late),
        duplicates=len(log.duplicated),
    )
    assert late == [], "only enqueues acked in the last second before the crash may be lost"
    assert all(w.proc.poll() is None for w in pool), "a worker died"
    r.close()


def test_redis_unreachable_for_15s(
    aof_redis: RedisServer, workers: WorkerFactory, chaos_report: dict[str, object]
) -> None:
    workers.redis_url = aof_redis.url
    port = free_port()
    env = {"REDIS_URL": aof_redis.url, "TEST_REDIS_URL": aof_redis.url, "LOG_LEVEL": "warning"}
    w = workers.start("apps.chaos:app", "--concurrency", "20", HEALTH_PORT=str(port), **env)
    app.configure(Settings.load(env={"REDIS_URL": aof_redis.url}))
    # A backlog that is still queued when Redis goes away.
    before = [f"b{i}" for i in range(3000)]
    for i in range(0, 3000, 500):
        app.enqueue_many([app.spec("work", k=k, ms=20) for k in before[i : i + 500]])
    wait_for(lambda: get(port, "/readyz")[0] == 200, 10, message="ready")
    aof_redis.stop()
    down_at = time.monotonic()
    wait_for(lambda: get(port, "/readyz")[0] == 503, 15, message="not ready while down")
    with pytest.raises(BrokerUnavailable, match="Redis unreachable"):
        app.enqueue("work", k="during", ms=1)
    refused_in = time.monotonic() - down_at
    wait_for(lambda: time.monotonic() - down_at >= 15, 20, interval=0.2, message="15 s outage")
    assert w.proc.poll() is None
    aof_redis.start()
    wait_for(lambda: get(port, "/readyz")[0] == 200, 30, message="ready again")
    back_in = time.monotonic() - down_at - 15
    r = redis.Redis.from_url(aof_redis.url, decode_responses=True)
    wait_for(lambda: r.hlen("test:runs") == 3000, 60, interval=0.2, message="backlog done")
    log = RunLog.read(r, before)
    chaos_report.update(
        backlog=3000,
        lost=len(log.lost),
        duplicates=len(log.duplicated),
        enqueue_refused_after_s=round(refused_in, 2),
        ready_again_after_restart_s=round(back_in, 2),
    )
    assert log.lost == []
    r.close()
