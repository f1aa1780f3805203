"""`bananas worker --processes N` when things go wrong: an app that cannot be
imported, a child killed by a signal. Real supervisor and worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
import redis
from apps.core import app
from support import WorkerFactory, wait_for

from bananas.config import Settings
from bananas.worker.supervisor import exit_status, pool_status


def test_unimportable_app_stops_every_process_with_exit_2(
    workers: WorkerFactory, tmp_path: Path
) -> None:
    (tmp_path / "syntaxapp.py").write_text("from bananas import Bananas\napp = Bananas(\n")
    env = workers.env()
    parent = workers.start(
        "syntaxapp:app", "-p", "2", wait=False, PYTHONPATH=f"{tmp_path}:{env['PYTHONPATH']}"
    )
    # Restarting would loop forever (every child fails the same way); within
    # the first restart's back-off the whole pool must be gone.
    assert parent.wait(20) == 2, parent.output()[-2000:]
    output = parent.output()
    assert "restarting" not in output and "Traceback" not in output, output[-2000:]
    assert f"{tmp_path}/syntaxapp.py:2" in output
    assert 1 <= len(output.strip().splitlines()) <= 2, output  # one line per child at most


def test_child_killed_by_a_signal_is_a_failure(workers: WorkerFactory, r: redis.Redis) -> None:
    parent = workers.start("apps.core:app", "--processes", "2", wait=False)
    wait_for(lambda: len(parent.events("worker.started")) == 2, 20, message="2 children")
    pids = [e["pid"] for e in parent.events("worker.started")]
    app.configure(Settings.load())
    app.enqueue("sleepy", k="long", seconds=60)
    wait_for(lambda: r.hexists("test:started", "long"), 10, message="the long job to start")
    parent.signal(signal.SIGTERM)
    # The child running the long job drains for SHUTDOWN_TIMEOUT (30 s): kill it there.
    wait_for(lambda: len(parent.events("worker.draining")) == 2, 10, message="both draining")
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert parent.wait(20) == 128 + signal.SIGKILL, parent.output()[-2000:]
    assert "was killed by SIGKILL while stopping" in parent.output()


@pytest.mark.parametrize(
    ("last", "status"),
    [
        ([0, 0], 0),
        ([0, -9], 137),  # a signal death reads as failure, not as max(0, -9) == 0
        ([-15, 1], 143),
        ([2, -15], 2),  # the sibling stopped after a configuration error
        ([1, 0], 1),
    ],
)
def test_pool_status(last: list[int], status: int) -> None:
    assert pool_status(last) == status
    assert exit_status(-signal.SIGTERM) == 143
