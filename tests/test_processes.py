"""`bananas worker --processes N`: one command, N worker processes."""

from __future__ import annotations

import os
import signal

import redis
from apps.core import app
from support import WorkerFactory, wait_for

from bananas.config import Settings


def test_processes_share_the_work_and_drain(workers: WorkerFactory, r: redis.Redis) -> None:
    parent = workers.start("apps.core:app", "--processes", "2", "--concurrency", "4", wait=False)
    wait_for(lambda: len(parent.events("worker.started")) == 2, 20, message="2 children")
    app.configure(Settings.load())
    app.enqueue_many([app.spec("which_pid", k=str(i)) for i in range(400)])
    wait_for(lambda: r.hlen("test:pid") == 400, 30, message="400 jobs")
    pids = set(r.hvals("test:pid"))
    assert len(pids) == 2 and str(parent.pid) not in pids
    parent.signal(signal.SIGTERM)
    assert parent.wait(30) == 0
    assert len(parent.events("worker.drained")) == 2


def test_processes_stop_on_bad_configuration(workers: WorkerFactory) -> None:
    parent = workers.start(
        "apps.core:app", "--processes", "2", wait=False, WORKER_JOB_TYPES="no_such_type"
    )
    assert parent.wait(30) == 2
    assert "no_such_type" in parent.output()


def test_crashed_child_is_restarted(workers: WorkerFactory, r: redis.Redis) -> None:
    parent = workers.start("apps.core:app", "--processes", "2", wait=False)
    wait_for(lambda: len(parent.events("worker.started")) == 2, 20, message="2 children")
    first = {e["pid"] for e in parent.events("worker.started")}
    victim = sorted(first)[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(parent.events("worker.started")) == 3, 20, message="a replacement")
    app.configure(Settings.load())
    assert app.enqueue("add", a=1, b=2).result(timeout=10) == 3
    parent.signal(signal.SIGTERM)
    assert parent.wait(30) == 0
