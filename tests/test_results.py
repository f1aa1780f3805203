"""MAX_RESULT_BYTES: a result over the limit is dead-lettered with the reason
and never written to the broker; one under it is stored as before."""

from __future__ import annotations

import pytest
import redis
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas import Bananas
from bananas.config import Settings
from bananas.errors import ConfigError


def test_a_50_mb_result_is_refused_not_stored(
    workers: WorkerFactory, target: Backend, r: redis.Redis
) -> None:
    app = Bananas(settings=Settings.load())
    before = int(r.info("memory")["used_memory"])
    worker = workers.start("apps.execs:app", "--concurrency", "2")
    big = app.enqueue("big_result", {"mb": 50})
    small = app.enqueue("small_result", {"k": "ok"})
    assert small.result(timeout=20) == "ok" * 10
    view = target.view
    wait_for(lambda: view.state(big.id) == "dead", 30, message="the big result dead-lettered")
    info = view.dead_info(big.id)
    assert info.reason.startswith("result is 50000002 bytes of JSON, over MAX_RESULT_BYTES=1048576")
    assert view.record(big.id)["status"] == "failed"
    stored = view.result(big.id)
    assert stored is None or not stored.result, "the big result was written"
    grew = int(r.info("memory")["used_memory"]) - before
    assert grew < 5_000_000, f"Redis grew {grew} bytes"
    assert r.hget("test:runs", "big-50") == "1"  # ran once: a too-big result is not retried
    assert [e["reason"] for e in worker.events("job.dead_lettered")] == [info.reason]


@both_brokers
def test_a_custom_limit_is_applied_and_validated(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    workers.start("apps.execs:app", MAX_RESULT_BYTES="100")
    assert len(app.enqueue("small_result", {"k": "abcdefgh"}).result(timeout=20)) == 80
    over = app.enqueue("small_result", {"k": "abcdefghij" * 2})
    view = target.view
    wait_for(lambda: view.state(over.id) == "dead", 20, message="dead-lettered")
    assert "over MAX_RESULT_BYTES=100" in view.dead_info(over.id).reason
    with pytest.raises(ConfigError, match="MAX_RESULT_BYTES"):
        Settings.load({"MAX_RESULT_BYTES": "10"})
