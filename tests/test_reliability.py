"""Nothing lost: SIGKILLed workers, crashing jobs, stale acks, graceful drain.

Broker-generic tests run on both brokers (`both_brokers`): they read what ran
from the test app's sink and the broker's state through its public methods.
The frozen-Redis test is Redis-only."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import redis
from apps.core import app
from support import Backend, RedisServer, WorkerFactory, both_brokers, wait_for

from bananas import Bananas


def enqueue(name: str, payloads: list[dict[str, object]]) -> list[str]:
    app.configure(app.settings.__class__.load())
    return [h.id for h in app.enqueue_many([(name, p) for p in payloads])]


@both_brokers
def test_10k_jobs_two_workers(workers: WorkerFactory, target: Backend) -> None:
    sink, view = target.sink, target.view
    ids: list[str] = []
    for batch in range(10):
        ids += enqueue("record", [{"k": f"{batch}-{i}"} for i in range(1000)])
    w1 = workers.start("apps.core:app", "--concurrency", "20")
    w2 = workers.start("apps.core:app", "--concurrency", "20")
    wait_for(lambda: sink.hlen("test:runs") == 10_000, 90, interval=0.2, message="10k runs")
    # Each exactly once: nobody was killed.
    assert set(sink.hvals("test:runs")) == {"1"}, workers.repeat_causes()
    assert {r.status if r else None for r in view.results(ids)} == {"completed"}
    wait_for(lambda: view.count("running") == 0, 10, message="no leases left")
    assert view.count("queued", "record") == 0
    assert view.count("scheduled") == 0
    assert view.count("dead") == 0
    both = [w for w in (w1, w2) if w.events("job.completed")]
    assert len(both) == 2, "both workers took jobs"


@both_brokers
def test_sigkill_mid_job_loses_nothing(workers: WorkerFactory, target: Backend) -> None:
    sink, view = target.sink, target.view
    # The killed worker's jobs come back once their leases run out: a 3 s lease
    # (longer than the 2 s jobs: a late heartbeat under load hands none over) instead
    # of the 6 s default, which the test only sat out.
    env = {"LEASE_TIMEOUT": "3s"}
    victim = workers.start("apps.core:app", "--concurrency", "50", **env)
    enqueue("sleepy", [{"k": str(i), "seconds": 2.0} for i in range(50)])
    wait_for(lambda: sink.hlen("test:started") == 50, 20, message="50 jobs in flight")
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(10)
    assert sink.hlen("test:runs") == 0
    workers.start("apps.core:app", "--concurrency", "50", **env)
    wait_for(lambda: sink.hlen("test:runs") == 50, 20, interval=0.1, message="50 recovered jobs")
    assert time.monotonic() - killed_at < 15
    # Runs are counted inside the handler, just before the ack: wait for the acks.
    wait_for(lambda: view.count("running") == 0, 10, message="all acked")
    assert set(sink.hvals("test:runs")) == {"1"}, workers.repeat_causes()


@both_brokers
def test_job_killing_its_worker_is_dead_lettered_after_max_stalls(
    workers: WorkerFactory, target: Backend
) -> None:
    sink, view = target.sink, target.view
    env = {"LEASE_TIMEOUT": "1s", "MAX_STALLS": "3"}
    [job_id] = enqueue("suicide", [{"k": "s"}])
    deadline = time.monotonic() + 60
    current = workers.start(**env)
    while view.state(job_id) != "dead":
        assert time.monotonic() < deadline, "job never dead-lettered"
        if current.proc.poll() is not None:
            current = workers.start(**env)
        time.sleep(0.05)
    assert int(sink.hget("test:runs", "s") or 0) == 3
    assert "MAX_STALLS=3" in view.dead_info(job_id).reason
    result = view.result(job_id)
    assert result is not None and result.status == "failed"
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


@both_brokers
def test_sigterm_drains_running_jobs(workers: WorkerFactory, target: Backend) -> None:
    sink, view = target.sink, target.view
    w = workers.start("apps.core:app", "--concurrency", "20", SHUTDOWN_TIMEOUT="10s")
    enqueue("sleepy", [{"k": str(i), "seconds": 2.0} for i in range(20)])
    wait_for(lambda: sink.hlen("test:started") == 20, 20, message="20 jobs running")
    waiting = enqueue("sleepy", [{"k": f"late-{i}", "seconds": 0.1} for i in range(5)])
    # The slots are full, so the late jobs wait; SIGTERM must not start them.
    w.signal(signal.SIGTERM)
    assert w.wait(20) == 0
    assert sink.hlen("test:runs") == 20
    assert not any(k.startswith("late") for k in sink.hkeys("test:started"))
    assert sorted(view.queued("sleepy")) == sorted(waiting)
    drained = w.events("worker.drained")
    assert drained and drained[0]["finished_during_drain"] == 20


@both_brokers
def test_sigterm_short_timeout_puts_jobs_back_uncharged(
    workers: WorkerFactory, target: Backend
) -> None:
    sink, view = target.sink, target.view
    w = workers.start("apps.core:app", "--concurrency", "20", SHUTDOWN_TIMEOUT="1s")
    ids = enqueue("sleepy", [{"k": str(i), "seconds": 30.0} for i in range(20)])
    wait_for(lambda: sink.hlen("test:started") == 20, 20, message="20 jobs running")
    w.signal(signal.SIGTERM)
    assert w.wait(15) == 0
    assert view.count("running") == 0
    assert sorted(view.queued("sleepy")) == sorted(ids)
    for job_id in ids:
        assert view.record(job_id)["attempts"] == 0
    assert w.events("worker.drained")[0]["put_back"] == 20


@both_brokers
def test_drain_ends_even_when_a_handler_swallows_cancellation(
    workers: WorkerFactory, target: Backend
) -> None:
    sink, view = target.sink, target.view
    w = workers.start("apps.core:app", SHUTDOWN_TIMEOUT="1s")
    [job_id] = enqueue("stubborn", [{"k": "s"}])
    wait_for(lambda: sink.hlen("test:started") == 1, 20, message="job running")
    w.signal(signal.SIGTERM)
    assert w.wait(30) == 0  # SHUTDOWN_TIMEOUT, then 5 s for cancelled jobs to end
    assert sink.hget("test:cancelled", "s") is not None  # it was asked to stop
    assert view.count("running") == 0
    assert view.queued("stubborn") == [job_id]
    assert view.record(job_id)["attempts"] == 0
    drained = w.events("worker.drained")[0]
    assert drained["abandoned"] == 1 and drained["put_back"] == 1


@both_brokers
def test_second_signal_forces_exit(workers: WorkerFactory, target: Backend) -> None:
    sink, view = target.sink, target.view
    w = workers.start("apps.core:app", SHUTDOWN_TIMEOUT="60s")
    enqueue("sleepy", [{"k": "a", "seconds": 30.0}])
    wait_for(lambda: sink.hlen("test:started") == 1, 20, message="job running")
    w.signal(signal.SIGTERM)
    wait_for(lambda: w.events("worker.draining"), 10, message="draining")
    w.signal(signal.SIGINT)
    assert w.wait(10) == 1
    assert view.count("running") == 1  # comes back by lease expiry


@both_brokers
def test_failing_job_dead_lettered_with_traceback_then_replayed(
    workers: WorkerFactory, target: Backend
) -> None:
    sink, view = target.sink, target.view
    workers.start()
    [job_id] = enqueue("broken_until_fixed", [{"k": "b"}])
    wait_for(lambda: view.state(job_id) == "dead", 20, message="dead letter")
    assert int(sink.hget("test:runs", "b") or 0) == 3  # first run + max_retries=2
    info = view.dead_info(job_id)
    assert "max_retries=2" in info.reason
    assert "Traceback" in info.traceback and "ValueError" in info.traceback
    record = view.record(job_id)
    assert record["status"] == "failed" and record["attempts"] == 3

    sink.set("test:fixed", "1")
    out = workers.cli("dlq", "replay", job_id)
    assert out.returncode == 0, out.stderr
    wait_for(
        lambda: (found := view.result(job_id)) is not None and found.status == "completed",
        20,
        message="replayed job completes",
    )
    assert view.state(job_id) != "dead"


@both_brokers
def test_timeouts_async_and_process(workers: WorkerFactory, target: Backend) -> None:
    sink, view = target.sink, target.view
    workers.start()
    [a, p] = enqueue("hang_async", [{"k": "h"}]) + enqueue("hang_process", [{"k": "p"}])
    wait_for(lambda: view.state(a) == "dead", 30, message="async timeout")
    wait_for(lambda: view.state(p) == "dead", 30, message="process timeout")
    assert int(sink.hget("test:runs", "h") or 0) == 2  # run, timed out, retried, timed out
    assert "timed out after 0.5s" in view.dead_info(a).error
    assert "process killed" in view.dead_info(p).error
    # The worker still runs jobs afterwards, process ones included.
    assert app.enqueue("cpu", n=10).result(timeout=30) == sum(i * i for i in range(10))
