"""Handlers for the cancel tests (tests/test_cancel.py): one long job per
executor, each recording its runs in the sink, and a quick one."""

from __future__ import annotations

import asyncio
import time

from bananas import Bananas, current_job

from .sink import sink

app = Bananas()


def _ran(k: str) -> None:
    sink().incr("test:runs", k)


@app.job(max_retries=3)
async def long_async(k: str) -> str:
    _ran(k)
    await asyncio.sleep(60)
    sink().incr("test:finished", k)
    return k


@app.job(executor="thread", max_retries=3)
def polling_thread(k: str) -> str:
    _ran(k)
    job = current_job()
    assert job is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.check_cancelled()  # raises JobCancelled once the job is cancelled
        time.sleep(0.02)
    sink().incr("test:finished", k)
    return k


@app.job(executor="process", max_retries=3)
def long_process(k: str) -> str:
    _ran(k)
    time.sleep(60)
    sink().incr("test:finished", k)
    return k


@app.job(max_retries=3)
async def quick(k: str) -> str:
    _ran(k)
    return k
