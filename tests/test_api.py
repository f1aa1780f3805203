"""The public API end to end: enqueue from this process, run in a real worker."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis
from apps.core import add, app, cpu, flaky, record, stamp
from support import WorkerFactory, wait_for

from bananas import Bananas, JobFailed, PayloadTooLarge
from bananas.errors import BananasError


@pytest.fixture(autouse=True)
def fresh_app(redis_url: str) -> None:
    app.configure(app.settings.__class__.load())


def test_sync_enqueue_and_result(workers: WorkerFactory) -> None:
    workers.start()
    assert add.enqueue(a=2, b=3).result(timeout=10) == 5
    assert record.enqueue(k="x").result(timeout=10) == "x"


def test_async_enqueue_and_wait(workers: WorkerFactory) -> None:
    workers.start()

    async def main() -> list[int]:
        handles = [await add.enqueue_async(a=i, b=1) for i in range(5)]
        values = [await h.wait(timeout=10) for h in handles]
        await app.aclose()
        return values

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


def test_process_executor(workers: WorkerFactory) -> None:
    workers.start()
    assert cpu.enqueue(n=1000).result(timeout=30) == sum(i * i for i in range(1000))


def test_enqueue_many_is_one_round_trip(r: redis.Redis) -> None:
    app.broker.sync.get_result("warm-up")  # the first connection probes permissions (acl.py)
    before = _evalsha_calls(r)
    handles = app.enqueue_many([add.spec(a=i, b=i) for i in range(300)])
    assert _evalsha_calls(r) - before == 1
    assert len({h.id for h in handles}) == 300
    assert r.llen("bananas:ready:normal:add") == 300


def _evalsha_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def test_threads_enqueueing_at_once_share_one_broker(r: redis.Redis) -> None:
    """A web process's threads all enqueue on a fresh app: one broker and one
    Redis client are built, and every call succeeds."""
    threads_app = Bananas()
    job = threads_app.job(name="add")(add.__wrapped__)
    start = threading.Barrier(16)
    brokers: list[object] = []
    ids: list[str] = []
    errors: list[BaseException] = []

    def client() -> None:
        start.wait(5)
        try:
            brokers.append(threads_app.broker)  # the first use, from 16 threads at once
            ids.append(job.enqueue(a=1, b=2).id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(set(ids)) == 16 and r.llen("bananas:ready:normal:add") == 16
    assert len({id(b) for b in brokers}) == 1
    threads_app.close()


def test_delay_and_priority_options(workers: WorkerFactory, r: redis.Redis) -> None:
    h = add.enqueue(a=1, b=1, _delay="1s", _priority="high")
    assert r.zscore("bananas:queue:scheduled", h.id) is not None
    record_json = r.get(f"bananas:job:{h.id}")
    assert '"priority":"high"' in record_json and '"status":"scheduled"' in record_json
    t0 = time.time()
    workers.start()
    assert h.result(timeout=10) == 2
    assert time.time() - t0 >= 0.5


def test_idempotent_job_id(r: redis.Redis) -> None:
    a = add.enqueue(a=1, b=1, _job_id="fixed-id")
    b = add.enqueue(a=9, b=9, _job_id="fixed-id")
    assert a.id == b.id == "fixed-id"
    assert r.llen("bananas:ready:normal:add") == 1


def test_payload_too_large_refused_at_enqueue(
    r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_PAYLOAD_BYTES", "1000")
    small = Bananas()
    with pytest.raises(PayloadTooLarge, match="MAX_PAYLOAD_BYTES=1000"):
        small.enqueue("add", {"a": "x" * 2000, "b": 1})
    assert r.dbsize() == 0


def test_payload_must_be_json(r: redis.Redis) -> None:
    with pytest.raises(BananasError, match="not JSON-serializable"):
        app.enqueue("add", {"a": object(), "b": 1})
    with pytest.raises(BananasError, match="unknown enqueue option"):
        add.enqueue(a=1, b=2, _dealy="1s")


def test_retry_then_success_counts_attempts(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start()
    h = flaky.enqueue(k="f", failures=2)
    assert h.result(timeout=20) == 3
    record_json = r.get(f"bananas:job:{h.id}")
    assert '"status":"completed"' in record_json and '"attempts":3' in record_json


def test_failed_job_raises(workers: WorkerFactory) -> None:
    workers.start(MAX_RETRIES="0")
    h = app.enqueue("broken_until_fixed", k="b", _max_retries=0)
    with pytest.raises(JobFailed, match="broken until"):
        h.result(timeout=20)


def test_idle_worker_picks_up_new_job_fast(workers: WorkerFactory, r: redis.Redis) -> None:
    """Blocking wait, no polling: an idle worker starts a new job in well under 50 ms."""
    workers.start()
    for i in range(20):
        time.sleep(0.05)  # let the worker go idle in its blocking wait
        stamp.enqueue(k=str(i), sent=time.time())
    wait_for(lambda: r.hlen("test:latency") == 20, 20, message="20 latency samples")
    delays = sorted(float(v) for v in r.hvals("test:latency"))
    assert delays[len(delays) // 2] < 0.05, delays
