"""Chaos: clocks that disagree. On one redis-server, beside a normal worker and
a normal scheduler, run a worker whose clock is 30 s behind and a scheduler
whose clock is 30 s ahead (libfaketime, preloaded into those processes only).

Every lease, due time and cron firing must be judged by one clock, the
broker's (Redis TIME), so that:
- no job runs twice: the lagging worker's leases must not look expired to the
  others (jobs run 2.5 s, longer than LEASE_TIMEOUT=1s: only heartbeats keep
  them), and the fast scheduler must not see everyone's leases as expired;
- no delayed job runs early: the fast scheduler must not move `_delay` jobs
  before they are due by the Redis clock;
- a cron job fires on time, not 30 s early.

Every time the handlers record is Redis TIME (apps/skew.py). The failure
message lists what broke: which jobs ran twice and on which process, how
early each delayed job and cron firing ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from apps.skew import app
from support import WorkerFactory, WorkerProcess

from bananas.config import Settings

pytestmark = pytest.mark.timeout(90)

FAKETIME_LIB = next(
    iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),  # named in the error
)
SKEW = 30.0
# 2.5 s each, on 2 x 4 slots: the first worker to wake takes four, the other
# one, and three slots stay free for the delayed jobs and cron firings.
HOLDS = [f"h{i}" for i in range(5)]
HOLD_SECONDS = 2.5
DELAYS = {f"d{i}": 3.0 + i for i in range(8)}  # 3 s .. 10 s
WINDOW = 14.0  # seconds of the run, by the Redis clock, from the enqueue
ENV = {
    "LEASE_TIMEOUT": "1s",
    "WORKER_PREFETCH": "0",
    "SCHEDULER_INTERVAL": "200ms",
    "SHUTDOWN_TIMEOUT": "2s",
    "MAX_STALLS": "1000",  # a stolen lease shows as a second run, not as a burial
}


def shifted(offset: str) -> dict[str, str]:
    """Environment for a process whose clocks (wall and monotonic) are shifted.
    The monotonic clock is shifted too: with FAKETIME_DONT_FAKE_MONOTONIC=1
    Python's time.sleep fails with EINVAL."""
    return {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": offset}


def child_clock_offset(offset: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", "import time; time.sleep(0.01); print(time.time())"],
        env={**os.environ, **shifted(offset)},
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return float(out.stdout) - time.time()


def redis_now(r: redis.Redis) -> float:
    seconds, micros = r.time()
    return float(seconds) + micros / 1_000_000


def test_skewed_worker_and_scheduler_keep_to_the_redis_clock(
    workers: WorkerFactory, r: redis.Redis
) -> None:
    assert FAKETIME_LIB.exists(), f"{FAKETIME_LIB} is missing: apt-get install faketime"
    for offset, expected in (("-30s", -SKEW), ("+30s", SKEW)):
        measured = child_clock_offset(offset)
        assert abs(measured - expected) < 3, (
            f"faketime did not shift a child's clock: FAKETIME={offset} gave {measured:+.1f}s"
        )

    normal = workers.start("apps.skew:app", "--concurrency", "4", "--no-scheduler", **ENV)
    lagging = workers.start(
        "apps.skew:app", "--concurrency", "4", "--no-scheduler", **ENV, **shifted("-30s")
    )
    scheduler = workers.start_scheduler("apps.skew:app", **ENV)
    fast = workers.start_scheduler("apps.skew:app", **ENV, **shifted("+30s"))
    roles = {
        normal.pid: "normal worker",
        lagging.pid: "worker 30 s behind",
        scheduler.pid: "normal scheduler",
        fast.pid: "scheduler 30 s ahead",
    }
    # The processes themselves run on the shifted clocks (their log stamps).
    now = time.time()
    for process, lo, hi in ((lagging, -SKEW - 25, -SKEW + 3), (fast, SKEW - 25, SKEW + 3)):
        stamp = process.events("worker.started")[0]["ts"] - now
        assert lo < stamp < hi, f"{roles[process.pid]} logs a clock {stamp:+.1f}s off"

    app.configure(Settings.load())
    t0 = redis_now(r)
    app.enqueue_many([app.spec("due_stamp", k=k, _delay=d) for k, d in DELAYS.items()])
    app.enqueue_many([app.spec("hold", k=k, seconds=HOLD_SECONDS) for k in HOLDS])

    deadline = time.monotonic() + WINDOW + 6
    while time.monotonic() < deadline:
        done = (
            redis_now(r) - t0 >= WINDOW
            and r.hlen("test:runs") == len(HOLDS)
            and r.hlen("test:due_ran_at") == len(DELAYS)
        )
        if done:
            break
        time.sleep(0.2)
    t1 = redis_now(r)
    stop_all([normal, lagging, scheduler, fast])

    problems = (
        duplicate_runs(r, t0, roles)
        + early_delayed(r, t0)
        + cron_timing(r, t0, t1)
        + lagging_took_jobs(r, lagging.pid)
    )
    assert not problems, "clock skew broke a promise:\n  " + "\n  ".join(problems)


def stop_all(processes: list[WorkerProcess]) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.stop()  # SIGKILL to its group, by pid


def starts(r: redis.Redis, k: str) -> list[tuple[int, float]]:
    raw = r.get(f"test:start:{k}") or ""
    out = []
    for item in filter(None, raw.split(";")):
        pid, at = item.split("@")
        out.append((int(pid), float(at)))
    return out


def duplicate_runs(r: redis.Redis, t0: float, roles: dict[int, str]) -> list[str]:
    problems = []
    never = [k for k in HOLDS if not starts(r, k)]
    if never:
        problems.append(f"jobs never started within the run: {never}")
    twice = {k: s for k in HOLDS if len(s := starts(r, k)) > 1}
    if twice:
        lines = [
            f"{k}: " + ", ".join(f"{roles.get(pid, pid)} at {at - t0:+.1f}s" for pid, at in s)
            for k, s in sorted(twice.items())
        ]
        problems.append(
            f"{len(twice)} of {len(HOLDS)} jobs ran more than once (a lease judged "
            "expired by a skewed clock):\n    " + "\n    ".join(lines)
        )
    return problems


def early_delayed(r: redis.Redis, t0: float) -> list[str]:
    ran = {k: float(v) for k, v in r.hgetall("test:due_ran_at").items()}
    problems = []
    early = []
    for k, delay in DELAYS.items():
        if k not in ran:
            problems.append(f"delayed job {k} (due at +{delay:g}s) never ran")
        elif ran[k] < t0 + delay:
            early.append(
                f"{k} due at +{delay:g}s ran at {ran[k] - t0:+.1f}s, "
                f"{t0 + delay - ran[k]:.1f}s early"
            )
    if early:
        problems.append(
            f"{len(early)} of {len(DELAYS)} delayed jobs ran before they were due by the "
            "Redis clock:\n    " + "\n    ".join(early)
        )
    return problems


def cron_timing(r: redis.Redis, t0: float, t1: float) -> list[str]:
    firings = {k: float(v) for k, v in r.hgetall("test:tick_ran_at").items()}
    fired_at = {k: int(k.rsplit(":", 1)[1]) / 1000 for k in firings}
    early = [
        f"firing due at {fired_at[k] - t0:+.1f}s ran at {ran - t0:+.1f}s, "
        f"{fired_at[k] - ran:.1f}s early"
        for k, ran in sorted(firings.items(), key=lambda kv: fired_at[kv[0]])
        if ran < fired_at[k] - 0.05
    ]
    problems = []
    if early:
        problems.append(
            f"{len(early)} of {len(firings)} cron firings ran before their time:\n    "
            + "\n    ".join(early)
        )
    # And the firings of the run happened, each soon after its time.
    inside = [k for k in firings if t0 + 1 < fired_at[k] <= t1 - 2]
    expected = int((t1 - 2 - (t0 + 1)) // 2)
    if len(inside) < expected - 1:
        problems.append(f"only {len(inside)} cron firings in the run, expected ~{expected}")
    late = [f"{fired_at[k] - t0:+.1f}s" for k in inside if firings[k] - fired_at[k] > 2.0]
    if late:
        problems.append(f"cron firings more than 2 s late: {late}")
    return problems


def lagging_took_jobs(r: redis.Redis, pid: int) -> list[str]:
    if any(p == pid for k in HOLDS for p, _ in starts(r, k)):
        return []
    return ["the lagging worker ran no job: the test did not exercise its leases"]
