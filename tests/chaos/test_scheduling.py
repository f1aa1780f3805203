"""Chaos scenario 7: three schedulers, one SIGKILLed and restarted mid-run:
every delayed job and every cron firing still happens exactly once."""

from __future__ import annotations

import random
import signal
import time

import redis
from apps.sched import app
from support import WorkerFactory, wait_for

from bananas.config import Settings
from chaos.conftest import scale


def test_schedulers_killed_mid_run(
    workers: WorkerFactory, r: redis.Redis, chaos_report: dict[str, object]
) -> None:
    n = scale(10_000, 2_000)
    run_for = scale(30, 12)
    app.configure(Settings.load())
    rng = random.Random(5)
    for start in range(0, n, 1000):
        app.enqueue_many(
            [
                app.spec("record", k=f"d{i}", _delay=rng.uniform(0.2, run_for - 2))
                for i in range(start, start + 1000)
            ]
        )
    env = {"SCHEDULER_INTERVAL": "200ms", "LOG_LEVEL": "warning"}
    schedulers = [workers.start_scheduler("apps.sched:app", **env) for _ in range(3)]
    t0 = time.time()
    workers.start("apps.sched:app", "--concurrency", "50", "--no-scheduler", **env)
    kills = 0
    while time.time() - t0 < run_for:
        time.sleep(0.5)  # the fault schedule: one kill every ~4 s
        if time.time() - t0 > 4 * (kills + 1):
            victim = rng.randrange(3)
            schedulers[victim].signal(signal.SIGKILL)
            schedulers[victim].wait(10)
            schedulers[victim] = workers.start_scheduler("apps.sched:app", **env)
            kills += 1
    t1 = time.time()
    for s in schedulers:
        s.signal(signal.SIGTERM)
        assert s.wait(20) == 0
    wait_for(lambda: r.hlen("test:runs") == n, 30, interval=0.2, message="all delayed jobs")
    runs = r.hgetall("test:runs")
    firings = r.hgetall("test:firings")
    times = sorted(int(k.rsplit(":", 1)[1]) / 1000 for k in firings)
    inside = [t for t in times if t0 + 1 < t <= t1]
    chaos_report.update(
        delayed=n,
        delayed_duplicates=sum(v != "1" for v in runs.values()),
        firings=len(firings),
        firing_duplicates=sum(v != "1" for v in firings.values()),
        missed_seconds=round(t1 - t0 - 1) - len(inside),
        scheduler_kills=kills,
    )
    assert set(runs.values()) == {"1"}
    assert set(firings.values()) == {"1"}
    assert abs(len(inside) - (t1 - t0 - 1)) <= 1.5
    assert kills >= 2
