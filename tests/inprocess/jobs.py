"""Handlers for the in-process tier. They run in the test's own interpreter
(async and thread executors), so they record into `LEDGER`, a locked
in-memory ledger the tests read directly; process-executor handlers run in a
spawned child and report through their return value only."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter, defaultdict
from typing import Any

from bananas import Bananas, current_job


class Ledger:
    """What ran, when, and in which order; shared by the loop and job threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.starts: defaultdict[str, list[float]] = defaultdict(list)  # monotonic
            self.started_unix: dict[str, float] = {}
            self.runs: Counter[str] = Counter()  # finished without raising
            self.cancelled: Counter[str] = Counter()
            self.order: list[str] = []  # keys in the order they started

    def start(self, k: str) -> int:
        """Note an attempt of k starting; returns its attempt number (1-based)."""
        with self.lock:
            self.starts[k].append(time.monotonic())
            self.started_unix.setdefault(k, time.time())
            self.order.append(k)
            return len(self.starts[k])

    def ran(self, k: str) -> None:
        with self.lock:
            self.runs[k] += 1

    def cancel(self, k: str) -> None:
        with self.lock:
            self.cancelled[k] += 1

    def attempts(self, k: str) -> int:
        with self.lock:
            return len(self.starts[k])


LEDGER = Ledger()
app = Bananas()


@app.job()
async def note(k: str) -> str:
    LEDGER.start(k)
    LEDGER.ran(k)
    return k


@app.job()
def note_thread(k: str) -> str:
    LEDGER.start(k)
    LEDGER.ran(k)
    return k


@app.job()
async def nap(k: str, seconds: float) -> str:
    LEDGER.start(k)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        LEDGER.cancel(k)
        raise
    LEDGER.ran(k)
    return k


@app.job()
async def add(a: int, b: int) -> int:
    return a + b


@app.job()
def in_thread(k: str) -> dict[str, Any]:
    """Thread executor: reports its thread and the job context it sees."""
    LEDGER.start(k)
    job = current_job()
    return {
        "thread": threading.current_thread().name,
        "job_id": job.id if job else None,
        "attempt": job.attempt if job else None,
    }


@app.job(executor="process")
def in_process(n: int) -> dict[str, int]:
    return {"pid": os.getpid(), "sum": sum(i * i for i in range(n))}


@app.job(max_retries=3)
def flaky(k: str, failures: int) -> int:
    attempt = LEDGER.start(k)
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} of {k} fails on purpose")
    LEDGER.ran(k)
    return attempt


@app.job(max_retries=2)
async def always_fails(k: str) -> None:
    LEDGER.start(k)
    raise ValueError(f"{k} fails on purpose")


@app.job(timeout="200ms", max_retries=1)
async def hang_async(k: str) -> None:
    LEDGER.start(k)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        LEDGER.cancel(k)
        raise


@app.job(timeout="200ms", max_retries=0)
def hang_thread(k: str) -> None:
    """Overruns its timeout; Python cannot stop the thread, which ends by itself."""
    LEDGER.start(k)
    time.sleep(1.0)


@app.job(executor="process", timeout="500ms", max_retries=0)
def hang_process(k: str) -> None:
    time.sleep(3600)


@app.job()
async def unserializable() -> Any:
    return {1, 2, 3}


@app.job(executor="process", max_retries=0)
def crash_process() -> None:
    """Dies as an OOM kill or a segfault would take the pool's process."""
    os._exit(3)
