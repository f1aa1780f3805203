"""Nothing lost: SIGKILLed workers, crashing jobs, stale acks, graceful drain."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import redis
from apps.core import app
from support import RedisServer, WorkerFactory, wait_for

from bananas import Bananas


def enqueue(name: str, payloads: list[dict[str, object]]) -> list[str]:
    app.configure(app.settings.__class__.load())
    return [h.id for h in app.enqueue_many([(name, p) for p in payloads])]


def test_10k_jobs_two_workers(workers: WorkerFactory, r: redis.Redis) -> None:
    ids: list[str] = []
    for batch in range(10):
        ids += enqueue("record", [{"k": f"{batch}-{i}"} for i in range(1000)])
    w1 = workers.start("apps.core:app", "--concurrency", "20")
    w2 = workers.start("apps.core:app", "--concurrency", "20")
    wait_for(lambda: r.hlen("test:runs") == 10_000, 90, interval=0.2, message="10k runs")
    # Each exactly once: nobody was killed.
    assert set(r.hvals("test:runs")) == {"1"}, workers.repeat_causes()
    pipe = r.pipeline()
    for job_id in ids:
        pipe.hget(f"bananas:result:{job_id}", "status")
    assert set(pipe.execute()) == {"completed"}
    wait_for(lambda: r.zcard("bananas:active") == 0, 10, message="no leases left")
    assert r.llen("bananas:ready:normal:record") == 0
    assert r.zcard("bananas:queue:scheduled") == 0
    assert r.zcard("bananas:dead") == 0
    both = [w for w in (w1, w2) if w.events("job.completed")]
    assert len(both) == 2, "both workers took jobs"


def test_sigkill_mid_job_loses_nothing(workers: WorkerFactory, r: redis.Redis) -> None:
    victim = workers.start("apps.core:app", "--concurrency", "50")
    enqueue("sleepy", [{"k": str(i), "seconds": 2.0} for i in range(50)])
    wait_for(lambda: r.hlen("test:started") == 50, 20, message="50 jobs in flight")
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)
    assert r.hlen("test:runs") == 0
    workers.start("apps.core:app", "--concurrency", "50")
    wait_for(lambda: r.hlen("test:runs") == 50, 20, interval=0.1, message="50 recovered jobs")
    assert time.monotonic() - killed_at < 15
    # Runs are counted inside the handler, just before the ack: wait for the acks.
    wait_for(lambda: r.zcard("bananas:active") == 0, 10, message="all acked")
    assert set(r.hvals("test:runs")) == {"1"}, workers.repeat_causes()


def test_job_killing_its_worker_is_dead_lettered_after_max_stalls(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    env = {"LEASE_TIMEOUT": "1s", "MAX_STALLS": "3"}
    [job_id] = enqueue("suicide", [{"k": "s"}])
    deadline = time.monotonic() + 60
    current = workers.start(**env)
    while r.zscore("bananas:dead", job_id) is None:
        assert time.monotonic() < deadline, "job never dead-lettered"
        if current.proc.poll() is not None:
            current = workers.start(**env)
        time.sleep(0.05)
    assert int(r.hget("test:runs", "s")) == 3
    info = json.loads(r.hget("bananas:dead:info", job_id))
    assert "MAX_STALLS=3" in info["reason"]
    assert r.hget(f"bananas:result:{job_id}", "status") == "failed"
    assert current.proc.poll() is None, "the last worker is alive"


def test_sigterm_exits_when_redis_stops_answering(
    workers: WorkerFactory, r: redis.Redis, tmp_path: Path
) -> None:
    """Redis frozen (SIGSTOP: connections open, no replies) under a running job,
    then SIGTERM: putting the job back can never be answered. The stop gives that
    step up after its bound, names it in the log, and exits 0 instead of hanging
    until Redis comes back; the job keeps its lease and is not lost."""
    (tmp_path / "frozen").mkdir()
    frozen = RedisServer(tmp_path / "frozen")
    frozen.start()
    try:
        w = workers.start(
            "apps.core:app", "--concurrency", "1", REDIS_URL=frozen.url, SHUTDOWN_TIMEOUT="1s"
        )
        Bananas(frozen.url).enqueue("sleepy", {"k": "held", "seconds": 30.0})
        wait_for(lambda: r.hexists("test:started", "held"), 10, message="the job running")
        assert frozen.proc is not None
        frozen.proc.send_signal(signal.SIGSTOP)
        w.signal(signal.SIGTERM)
        assert w.wait(45) == 0
        frozen.proc.send_signal(signal.SIGCONT)
        stuck = w.events("worker.shutdown_stuck")
        assert "requeue" in {e["step"] for e in stuck}, stuck
        assert all("redis" in e["waiting_in"] or "batch" in e["waiting_in"] for e in stuck), stuck
        assert w.events("worker.stopped")
        held = redis.Redis.from_url(frozen.url, decode_responses=True)
        # Still leased: recovery brings it back when the lease expires.
        assert held.zcard("bananas:active") == 1
        held.close()
    finally:
        if frozen.proc is not None:
            frozen.proc.send_signal(signal.SIGCONT)
        frozen.stop()


def test_sigterm_drains_running_jobs(workers: WorkerFactory, r: redis.Redis) -> None:
    w = workers.start("apps.core:app", "--concurrency", "20", SHUTDOWN_TIMEOUT="10s")
    enqueue("sleepy", [{"k": str(i), "seconds": 2.0} for i in range(20)])
    wait_for(lambda: r.hlen("test:started") == 20, 20, message="20 jobs running")
    waiting = enqueue("sleepy", [{"k": f"late-{i}", "seconds": 0.1} for i in range(5)])
    # The slots are full, so the late jobs wait; SIGTERM must not start them.
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0
    assert r.hlen("test:runs") == 20
    assert not any(k.startswith("late") for k in r.hkeys("test:started"))
    assert r.llen("bananas:ready:normal:sleepy") == len(waiting)
    drained = w.events("worker.drained")
    assert drained and drained[0]["finished_during_drain"] == 20


def test_sigterm_short_timeout_puts_jobs_back_uncharged(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    w = workers.start("apps.core:app", "--concurrency", "20", SHUTDOWN_TIMEOUT="1s")
    ids = enqueue("sleepy", [{"k": str(i), "seconds": 30.0} for i in range(20)])
    wait_for(lambda: r.hlen("test:started") == 20, 20, message="20 jobs running")
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0
    assert r.zcard("bananas:active") == 0
    assert sorted(r.lrange("bananas:ready:normal:sleepy", 0, -1)) == sorted(ids)
    for job_id in ids:
        assert json.loads(r.get(f"bananas:job:{job_id}"))["attempts"] == 0
    assert w.events("worker.drained")[0]["put_back"] == 20


def test_drain_ends_even_when_a_handler_swallows_cancellation(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    w = workers.start("apps.core:app", SHUTDOWN_TIMEOUT="1s")
    [job_id] = enqueue("stubborn", [{"k": "s"}])
    wait_for(lambda: r.hlen("test:started") == 1, 20, message="job running")
    w.signal(signal.SIGTERM)
    assert w.wait(30) == 0  # SHUTDOWN_TIMEOUT, then 5 s for cancelled jobs to end
    assert r.hget("test:cancelled", "s") is not None  # it was asked to stop
    assert r.zcard("bananas:active") == 0
    assert r.lrange("bananas:ready:normal:stubborn", 0, -1) == [job_id]
    assert json.loads(r.get(f"bananas:job:{job_id}"))["attempts"] == 0
    drained = w.events("worker.drained")[0]
    assert drained["abandoned"] == 1 and drained["put_back"] == 1


def test_second_signal_forces_exit(workers: WorkerFactory, r: redis.Redis) -> None:
    w = workers.start("apps.core:app", SHUTDOWN_TIMEOUT="60s")
    enqueue("sleepy", [{"k": "a", "seconds": 30.0}])
    wait_for(lambda: r.hlen("test:started") == 1, 20, message="job running")
    w.signal(signal.SIGTERM)
    wait_for(lambda: w.events("worker.draining"), 10, message="draining")
    w.signal(signal.SIGINT)
    assert w.wait(10) == 1
    assert r.zcard("bananas:active") == 1  # comes back by lease expiry


def test_failing_job_dead_lettered_with_traceback_then_replayed(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    workers.start()
    [job_id] = enqueue("broken_until_fixed", [{"k": "b"}])
    wait_for(lambda: r.zscore("bananas:dead", job_id) is not None, 20, message="dead letter")
    assert int(r.hget("test:runs", "b")) == 3  # first run + max_retries=2
    info = json.loads(r.hget("bananas:dead:info", job_id))
    assert "max_retries=2" in info["reason"]
    assert "Traceback" in info["traceback"] and "ValueError" in info["traceback"]
    record = json.loads(r.get(f"bananas:job:{job_id}"))
    assert record["status"] == "failed" and record["attempts"] == 3

    r.set("test:fixed", "1")
    out = workers.cli("dlq", "replay", job_id)
    assert out.returncode == 0, out.stderr
    wait_for(
        lambda: r.hget(f"bananas:result:{job_id}", "status") == "completed",
        20,
        message="replayed job completes",
    )
    assert r.zscore("bananas:dead", job_id) is None


def test_timeouts_async_and_process(workers: WorkerFactory, r: redis.Redis) -> None:
    workers.start()
    [a, p] = enqueue("hang_async", [{"k": "h"}]) + enqueue("hang_process", [{"k": "p"}])
    wait_for(lambda: r.zscore("bananas:dead", a) is not None, 30, message="async timeout")
    wait_for(lambda: r.zscore("bananas:dead", p) is not None, 30, message="process timeout")
    assert int(r.hget("test:runs", "h")) == 2  # run, timed out, retried once, timed out
    assert "timed out after 0.5s" in json.loads(r.hget("bananas:dead:info", a))["error"]
    assert "process killed" in json.loads(r.hget("bananas:dead:info", p))["error"]
    # The worker still runs jobs afterwards, process ones included.
    assert app.enqueue("cpu", n=10).result(timeout=30) == sum(i * i for i in range(10))
