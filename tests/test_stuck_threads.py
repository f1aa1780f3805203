"""Thread handlers that never return: a job is timed out only for time it ran
(never while it waited for a thread), and a worker whose every job thread is
stuck says so in /livez (for a restart) and in /metrics."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from support import Backend, WorkerFactory, free_port, wait_for

from bananas import Bananas
from bananas.config import Settings

pytestmark = pytest.mark.timeout(120)


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            body = resp.read().decode()
            return resp.status, (json.loads(body) if path != "/metrics" else body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode())


def test_twelve_stuck_threads_at_concurrency_5(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    port = free_port()
    worker = workers.start(
        "apps.execs:app", "--concurrency", "5", HEALTH_PORT=str(port), SHUTDOWN_TIMEOUT="1s"
    )
    stuck = app.enqueue_many([("stuck", {"k": f"stuck-{i}"}) for i in range(12)])
    later = app.enqueue_many([("quick_thread", {"k": f"thread-{i}"}) for i in range(20)])
    later += app.enqueue_many([("quick_async", {"k": f"async-{i}"}) for i in range(20)])
    view = target.view
    keys = {h.id: k for h, k in zip(stuck + later, _keys(), strict=True)}
    view = target.view
    # 10 threads (2 x concurrency) take 10 stuck jobs; each times out 1 s after it started.
    wait_for(lambda: view.count("dead") >= 10, 20, message="10 stuck jobs timed out")
    _, body = wait_for(
        lambda: (s := _get(port, "/livez"))[0] == 503 and s, 10, message="/livez 503"
    )
    assert any("all 10 job threads are stuck" in p for p in body["problems"]), body
    _, metrics = _get(port, "/metrics")
    assert "bananas_job_threads_stuck 10.0" in metrics
    assert "bananas_job_threads 10.0" in metrics
    fleet = wait_for(
        lambda: (
            (e := json.loads(workers.cli("status", "--json").stdout)["workers"])
            and e[0]["threads_stuck"] == 10
            and e
        ),
        10,
        message="status --json: 10 threads stuck",
    )
    assert fleet[0]["state"] == "running"
    assert "(10 job threads stuck in timed-out handlers)" in workers.cli("status").stdout
    # Three timeouts later, nothing waiting for a thread has been timed out.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert view.count("dead") == 10, view.count("dead")
        time.sleep(0.1)
    started = {k for k, n in target.sink.hgetall("test:runs").items() if int(n) > 0}
    dead = {keys[h.id] for h in stuck + later if view.state(h.id) == "dead"}
    assert len(dead) == 10 and dead <= started, (dead, started)
    assert all(k.startswith("stuck-") for k in dead), dead
    assert len([k for k in started if k.startswith("stuck-")]) == 10  # 2 never got a thread
    for h in stuck + later:
        if keys[h.id] in dead:
            assert "timed out after 1s (thread left running" in view.dead_info(h.id).error
    assert len(worker.events("job.dead_lettered")) == 10


def _keys() -> list[str]:
    return [f"stuck-{i}" for i in range(12)] + [
        f"{kind}-{i}" for kind in ("thread", "async") for i in range(20)
    ]


def test_the_timeout_starts_when_the_thread_starts(workers: WorkerFactory, target: Backend) -> None:
    app = Bananas(settings=Settings.load())
    # One slot, two threads: two slow jobs time out after 1 s each and keep both
    # threads for 4 s; the quick job then waits ~2 s for a thread, more than its 1 s.
    workers.start("apps.execs:app", "--concurrency", "1", WORKER_PREFETCH="0")
    slow = app.enqueue_many([("slow_thread", {"k": f"slow-{i}", "seconds": 4.0}) for i in range(2)])
    wait_for(lambda: target.sink.hget("test:runs", "slow-1"), 20, message="both slow jobs started")
    quick = app.enqueue("quick_thread", {"k": "quick"})
    assert quick.result(timeout=20) == "quick"
    for h in slow:
        wait_for(lambda h=h: target.view.state(h.id) == "dead", 10, message="slow job timed out")
