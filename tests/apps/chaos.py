"""Handlers for the chaos suite: every run is logged as "pid@unix_time;" under
test:log:{k}, so duplicates can be traced to the worker that was running them."""

from __future__ import annotations

import asyncio
import os
import time

from bananas import Bananas

from .core import r

app = Bananas()
PID = str(os.getpid())


def _log_run(k: str) -> None:
    pipe = r().pipeline(transaction=False)
    pipe.hincrby("test:runs", k, 1)
    pipe.append(f"test:log:{k}", f"{PID}@{time.time():.3f};")
    pipe.execute()


@app.job(max_retries=5)
async def work(k: str, ms: int) -> None:
    r().append(f"test:start:{k}", f"{PID}@{time.time():.3f};")
    await asyncio.sleep(ms / 1000)
    _log_run(k)


@app.job()
async def noop(k: str) -> None:
    return None


@app.job(timeout="300ms", max_retries=1)
async def stuck_async(k: str) -> None:
    _log_run(k)
    await asyncio.sleep(3600)


@app.job(executor="process", timeout="500ms", max_retries=1)
def stuck_process(k: str) -> None:
    time.sleep(3600)


@app.job(timeout="300ms", max_retries=0)
def stuck_thread(k: str) -> None:
    """Ignores its timeout: Python cannot stop a thread."""
    _log_run(k)
    time.sleep(30)


@app.job(timeout="60s")
def slow_thread(k: str) -> None:
    """Outlives the drain budget: the drain must not wait for it."""
    _log_run(k)
    time.sleep(30)


@app.job(max_retries=0)
async def doomed(k: str, ms: int) -> None:
    """Fails on its one attempt: dead-lettered by whoever runs it first."""
    r().append(f"test:start:{k}", f"{PID}@{time.time():.3f};")
    await asyncio.sleep(ms / 1000)
    raise RuntimeError("doomed")
