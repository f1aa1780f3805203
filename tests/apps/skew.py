"""Handlers for the clock-skew test: every time they record is the Redis
server's clock (TIME), never the process's own, since the processes running
them may have clocks shifted on purpose (faketime)."""

from __future__ import annotations

import asyncio
import os

from bananas import Bananas, current_job

from .core import r

app = Bananas()
PID = str(os.getpid())


def redis_now() -> float:
    seconds, micros = r().time()
    return float(seconds) + micros / 1_000_000


@app.job(max_retries=5)
async def hold(k: str, seconds: float) -> None:
    """Runs longer than the lease: only heartbeats keep it. Each start is
    logged as "pid@redis_time;", so a second start names who ran it."""
    r().append(f"test:start:{k}", f"{PID}@{redis_now():.3f};")
    await asyncio.sleep(seconds)
    r().hincrby("test:runs", k, 1)


@app.job(priority="high")  # ahead of the holds: a free slot runs it at once
def due_stamp(k: str) -> None:
    """A delayed job: when it started, by the Redis clock."""
    r().hset("test:due_ran_at", k, repr(redis_now()))


@app.cron("* * * * * */2", priority="high")  # every 2 s (the sixth field is seconds)
def tick() -> None:
    job = current_job()
    assert job is not None
    r().hset("test:tick_ran_at", job.id, repr(redis_now()))
