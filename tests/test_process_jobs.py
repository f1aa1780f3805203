"""Process jobs whose outcome breaks the pool: an exception the worker cannot
unpickle keeps its real error and disturbs no other job; a crashed process
fails its own job only, jobs running beside it are put back with the crash as
the reason, and jobs still queued in the pool run once in the next pool."""

from __future__ import annotations

import os

import pytest
from support import Backend, WorkerFactory, wait_for

from bananas import Bananas
from bananas.config import Settings

pytestmark = pytest.mark.timeout(120)


def _runs(target: Backend, k: str) -> int:
    return int(target.sink.hget("test:runs", k) or 0)


def test_an_unpicklable_exception_keeps_its_error_and_harms_no_one(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    worker = workers.start("apps.execs:app", "--concurrency", "2")
    innocent = app.enqueue("innocent", {"k": "innocent", "seconds": 2.0})
    wait_for(lambda: _runs(target, "innocent") == 1, 30, message="the innocent job started")
    bad = app.enqueue("raise_keyed", {"k": "bad"})
    assert innocent.result(timeout=30) == "innocent"
    wait_for(lambda: target.view.state(bad.id) == "dead", 30, message="the bad job dead")
    info = target.view.dead_info(bad.id)
    assert info.error == "KeyedError: bad: the real error", info.error
    assert "raise KeyedError(k, " in info.traceback, info.traceback
    assert "cannot be pickled back to the worker" in info.traceback
    assert (_runs(target, "innocent"), _runs(target, "bad")) == (1, 1)
    assert not worker.events("job.requeued"), workers.repeat_causes()
    after = app.enqueue("innocent", {"k": "after", "seconds": 0.0})
    assert after.result(timeout=30) == "after"  # the same pool still runs jobs


def test_a_crash_fails_its_own_job_and_puts_the_others_back_with_the_crash(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    # The pool has min(concurrency, cores) processes: 2 run, the third waits in it.
    worker = workers.start("apps.execs:app", "--concurrency", "3", WORKER_PREFETCH="0")
    running = app.enqueue("innocent", {"k": "running", "seconds": 3.0})
    wait_for(lambda: _runs(target, "running") == 1, 30, message="the innocent job started")
    crash = app.enqueue("exit_process", {"k": "crash", "code": 3, "after": 1.5})
    wait_for(lambda: _runs(target, "crash") == 1, 30, message="the crashing job started")
    queued = app.enqueue("innocent", {"k": "queued", "seconds": 0.0})
    wait_for(lambda: target.view.state(crash.id) == "dead", 30, message="the crashed job dead")
    assert target.view.dead_info(crash.id).error.startswith(
        "BananasError: the job's process died (exit code 3"
    ), target.view.dead_info(crash.id).error
    assert running.result(timeout=30) == "running"
    assert queued.result(timeout=30) == "queued"
    reasons = {e["job_id"]: e["reason"] for e in worker.events("job.requeued")}
    assert list(reasons) == [running.id], reasons  # the queued one never left the worker
    assert "another job's process died" in reasons[running.id]
    assert "exit code 3" in reasons[running.id] and "timeout" not in reasons[running.id]
    # The running one was killed with the pool and had to run again; the queued one ran once.
    assert (_runs(target, "running"), _runs(target, "queued"), _runs(target, "crash")) == (2, 1, 1)


def test_a_job_waiting_in_a_busy_pool_is_not_charged_the_wait(
    workers: WorkerFactory, target: Backend
) -> None:
    app = Bananas(settings=Settings.load())
    # The pool has one process per core: one job more than that waits in it for
    # a process, then runs 0.7 s of its 1 s timeout (1.4 s after it was handed over).
    n = (os.cpu_count() or 1) + 1
    worker = workers.start("apps.execs:app", "--concurrency", str(n), WORKER_PREFETCH="0")
    warm = app.enqueue("innocent", {"k": "warm", "seconds": 0.0})
    assert warm.result(timeout=30) == "warm"  # the pool's processes are started
    jobs = app.enqueue_many([("timed_process", {"k": f"t{i}", "seconds": 0.7}) for i in range(n)])
    assert [h.result(timeout=30) for h in jobs] == [f"t{i}" for i in range(n)]
    assert [_runs(target, f"t{i}") for i in range(n)] == [1] * n
    assert not worker.events("job.requeued"), workers.repeat_causes()
