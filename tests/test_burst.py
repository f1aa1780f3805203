"""`bananas worker --burst`, real worker processes on both brokers: it runs
every job of its queues (a retry and a delayed job due within the horizon
included), then drains and exits 0; a job due later is left scheduled."""

from __future__ import annotations

import time

import pytest
from apps.core import app
from support import Backend, WorkerFactory, both_brokers, wait_for

from bananas.config import Settings
from bananas.worker.burst import BURST_HORIZON


@both_brokers
def test_burst_runs_every_job_then_exits_0(target: Backend, workers: WorkerFactory) -> None:
    app.configure(Settings.load())
    handles = [app.enqueue("record", k=f"r{i}") for i in range(30)]
    handles.append(app.enqueue("sleepy", k="slow", seconds=0.8))
    handles.append(app.enqueue("flaky", k="flaky", failures=2))  # 2 retries, 20 ms back-off
    high = app.enqueue("record", k="high", _priority="high")
    worker = workers.start("apps.core:app", "--burst", wait=False)
    # A job due 600 ms after the last one ends: the worker is idle by then,
    # with only that job ahead, due within the horizon; it must wait for it.
    started = float(wait_for(lambda: target.sink.hget("test:started", "slow"), 20, message="slow"))
    due_in = started + 0.8 + 0.6 - time.time()
    assert 0 < due_in < BURST_HORIZON + 0.8, due_in
    handles.append(app.enqueue("record", k="delayed", _delay=due_in))
    assert worker.wait(30) == 0, worker.output()[-3000:]
    for handle in [*handles, high]:
        assert target.view.state(handle.id) == "completed", (handle.id, worker.output()[-3000:])
    runs = target.sink.hgetall("test:runs")
    assert runs == {**{f"r{i}": "1" for i in range(30)}, "slow": "1", "delayed": "1", "high": "1"}
    assert target.sink.hget("test:attempts", "flaky") == "3"
    (done,) = worker.events("worker.burst_done")
    (drained,) = worker.events("worker.drained")
    assert done["jobs_completed"] == 34 and drained["put_back"] == 0, (done, drained)
    assert worker.events("worker.stopped")


@both_brokers
def test_burst_leaves_a_job_due_past_the_horizon(target: Backend, workers: WorkerFactory) -> None:
    app.configure(Settings.load())
    now = app.enqueue("record", k="now")
    later = app.enqueue("record", k="later", _delay=f"{BURST_HORIZON + 20:g}s")
    started = time.monotonic()
    worker = workers.start("apps.core:app", "--burst", wait=False)
    assert worker.wait(30) == 0, worker.output()[-3000:]
    # Well before the delay: it did not wait for the later job.
    assert time.monotonic() - started < 15
    assert target.view.state(now.id) == "completed"
    assert target.view.state(later.id) == "scheduled"
    assert target.sink.hgetall("test:runs") == {"now": "1"}


def test_burst_on_empty_queues_exits_at_once(workers: WorkerFactory) -> None:
    worker = workers.start("apps.core:app", "--burst")
    assert worker.wait(10) == 0, worker.output()[-3000:]
    assert worker.events("worker.burst_done")


def test_burst_waits_for_jobs_of_its_queues_only(target: Backend, workers: WorkerFactory) -> None:
    """A job-specialized burst worker ignores other types' queues; another
    worker's jobs keep it running only while they are its own."""
    app.configure(Settings.load())
    other = app.enqueue("add", a=1, b=2)  # not this worker's type: left alone
    mine = app.enqueue("sleepy", k="mine", seconds=0.5)
    worker = workers.start(
        "apps.core:app", "--burst", "--mode", "job-specialized", "--job-types", "sleepy", wait=False
    )
    assert worker.wait(30) == 0, worker.output()[-3000:]
    assert target.view.state(mine.id) == "completed"
    assert target.view.state(other.id) == "queued"


def test_burst_pool_of_two_processes_exits_0_without_restarts(
    target: Backend, workers: WorkerFactory
) -> None:
    app.configure(Settings.load())
    app.enqueue_many([app.spec("record", k=str(i)) for i in range(200)])
    pool = workers.start("apps.core:app", "--burst", "-p", "2", wait=False)
    assert pool.wait(40) == 0, pool.output()[-3000:]
    assert "restarting" not in pool.output()
    assert len(pool.events("worker.burst_done")) == 2
    wait_for(lambda: target.sink.hlen("test:runs") == 200, 5, message="200 jobs ran")
    assert set(target.sink.hvals("test:runs")) == {"1"}


@pytest.mark.parametrize("mode", ["scheduler-only"])
def test_burst_needs_a_worker_that_takes_jobs(workers: WorkerFactory, mode: str) -> None:
    done = workers.cli("worker", "--app", "apps.core:app", "--burst", "--mode", mode)
    assert done.returncode == 2
    assert "--burst needs a worker that takes jobs" in done.stderr
