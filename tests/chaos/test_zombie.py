"""A zombie worker: frozen (SIGSTOP) past its lease while others settle its
jobs, then resumed (SIGCONT). It must start none of the jobs it had
prefetched, and the outcomes it counts must be the ones the broker accepted."""

from __future__ import annotations

import signal
from typing import Any

import redis
from apps.chaos import app
from support import WorkerFactory, WorkerProcess, wait_for

from bananas.config import Settings

WORK, DOOMED = 60, 20
# What the runner or fetcher logs once it is done with a job it held.
DONE_WITH = {
    "job.completed",
    "job.dead_lettered",
    "job.retried",
    "job.dropped",
    "job.settle_failed",
}


def starts_by(r: redis.Redis, pid: int, keys: list[str]) -> int:
    return sum((r.get(f"test:start:{k}") or "").count(f"{pid}@") for k in keys)


def finished(worker: WorkerProcess, held: set[str]) -> bool:
    seen = set()
    for e in worker.events():
        name = e.get("event")
        if name in DONE_WITH or (name == "job.lease_lost" and "outcome" in e):
            seen.add(e.get("job_id"))
    return held <= seen


def stopped(worker: WorkerProcess) -> dict[str, Any]:
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    [event] = worker.events("worker.stopped")
    return event


def test_resumed_worker_starts_no_settled_job(workers: WorkerFactory, r: redis.Redis) -> None:
    app.configure(Settings.load())
    keys = [f"w{i}" for i in range(WORK)] + [f"d{i}" for i in range(DOOMED)]
    specs = [app.spec("work", k=k, ms=150) for k in keys[:WORK]]
    specs += [app.spec("doomed", k=k, ms=150) for k in keys[WORK:]]
    app.enqueue_many([specs[i] for i in sorted(range(len(specs)), key=lambda i: i % 4)])
    env = {"LEASE_TIMEOUT": "1s", "LOG_LEVEL": "info"}
    zombie = workers.start("apps.chaos:app", "--concurrency", "2", WORKER_PREFETCH="20", **env)
    wait_for(lambda: starts_by(r, zombie.pid, keys) >= 2, 20, message="the zombie runs jobs")
    zombie.signal(signal.SIGSTOP)
    zombie_id = zombie.events("worker.started")[0]["worker_id"]
    held = {
        job_id
        for job_id, lease in r.hgetall("bananas:leases").items()
        if lease.lstrip("~").startswith(f"{zombie_id}:")  # "~": leased, not started
    }
    before = starts_by(r, zombie.pid, keys)
    assert len(held) >= 10, held
    try:
        other = workers.start("apps.chaos:app", "--concurrency", "10", **env)
        wait_for(
            lambda: (
                r.zcard("bananas:dead") == DOOMED
                and r.zcard("bananas:active") == 0
                and r.hlen("test:runs") == WORK
            ),
            60,
            message="the other worker settled every job",
        )
    finally:
        zombie.signal(signal.SIGCONT)
    wait_for(lambda: finished(zombie, held), 30, message="the zombie let go of its jobs")
    assert starts_by(r, zombie.pid, keys) == before, "the zombie started settled jobs"
    totals = [stopped(zombie), stopped(other)]
    assert sum(e["jobs_completed"] for e in totals) == WORK, totals
    assert sum(e["jobs_failed"] for e in totals) == DOOMED, totals
    assert r.zcard("bananas:dead") == DOOMED
