"""Handlers for the executor tests: big results, exceptions a parent cannot
unpickle, process jobs beside a crashing one, thread jobs that never return."""

from __future__ import annotations

import os
import threading
import time

from bananas import Bananas

from .sink import sink

app = Bananas()


@app.job()
async def big_result(mb: int) -> str:
    sink().incr("test:runs", f"big-{mb}")
    return "x" * (mb * 1_000_000)


@app.job()
async def small_result(k: str) -> str:
    return k * 10


class KeyedError(Exception):
    """Pickles as KeyedError(message) and so cannot be unpickled: the
    constructor takes two required arguments."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key


def _started(k: str) -> None:
    sink().many(("incr", "test:runs", k), ("hset", "test:pids", k, str(os.getpid())))


@app.job(executor="process", max_retries=0)
def raise_keyed(k: str) -> None:
    _started(k)
    raise KeyedError(k, "the real error")


@app.job(executor="process", max_retries=0)
def exit_process(k: str, code: int, after: float) -> None:
    _started(k)
    time.sleep(after)
    os._exit(code)


@app.job(executor="process", max_retries=0)
def innocent(k: str, seconds: float) -> str:
    """Runs in the pool beside a failing job."""
    _started(k)
    time.sleep(seconds)
    return k


_forever = threading.Event()  # never set: a stuck handler waits on it forever


@app.job(timeout="1s", max_retries=0)
def stuck(k: str) -> None:
    """A thread handler that never returns."""
    _started(k)
    _forever.wait()


@app.job(timeout="1s", max_retries=0)
def quick_thread(k: str) -> str:
    _started(k)
    return k


@app.job()
async def quick_async(k: str) -> str:
    _started(k)
    return k


@app.job(timeout="1s", max_retries=0)
def slow_thread(k: str, seconds: float) -> str:
    """Outlives its timeout, then returns (its thread is freed late)."""
    _started(k)
    time.sleep(seconds)
    return k


@app.job(executor="process", timeout="1s", max_retries=0)
def timed_process(k: str, seconds: float) -> str:
    _started(k)
    time.sleep(seconds)
    return k
