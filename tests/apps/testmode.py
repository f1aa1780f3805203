"""Handlers for tests/test_testing_mode.py: plain module-level functions, so
that the process executor's child can import them by name."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from bananas import Bananas, current_job

app = Bananas()
RUNS: list[tuple[str, Any]] = []  # (job type, what it saw), in run order
FAILURES: dict[str, int] = {}  # key -> how many more times `flaky` fails


@app.job
async def send_email(to: str, subject: str) -> dict[str, Any]:
    RUNS.append(("send_email", to))
    return {"sent": True, "to": to}


@app.job(max_retries=3)
def flaky(key: str) -> int:
    job = current_job()
    assert job is not None
    RUNS.append(("flaky", job.attempt))
    if FAILURES.get(key, 0) > 0:
        FAILURES[key] -= 1
        raise ConnectionError(f"{key}: try again")
    return job.attempt


@app.job(max_retries=1)
def always_fails(key: str) -> None:
    raise ValueError(f"{key} is broken")


@app.job
def bad_result() -> object:
    return {1, 2}  # a set: not JSON


@app.job
async def fan_out(count: int) -> int:
    """Enqueues `count` emails from inside a job (sync and async forms)."""
    for i in range(count):
        if i % 2:
            await send_email.enqueue_async(to=f"u{i}", subject="news")
        else:
            send_email.enqueue(to=f"u{i}", subject="news")
    return count


@app.job
async def which_loop() -> int:
    return id(asyncio.get_running_loop())


@app.job
def again(n: int) -> None:
    again.enqueue(n=n + 1)  # without end


@app.job(executor="process")
def report(report_id: int) -> dict[str, Any]:
    return {"report": report_id, "pid": os.getpid(), "thread": threading.current_thread().name}


@app.job(priority="low")
def note(text: str) -> str:
    RUNS.append(("note", text))
    return text


@app.job(executor="thread")
def long_task(steps: int) -> int:
    job = current_job()
    assert job is not None
    for i in range(1, steps + 1):
        job.set_progress(i / steps, f"step {i} of {steps}")
    return steps
