"""Handlers used by the tests. Side effects go to the test sink (`sink.py`:
the test Redis, or a SQLite file when the broker is SQLite) under `test:*`
names, so tests can see what ran, how often and when, on either broker."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import redis

from bananas import Bananas

from .sink import sink

app = Bananas()
_client: redis.Redis | None = None
_client_lock = threading.Lock()


def r() -> redis.Redis:
    """The raw test Redis, for the Redis-only chaos handlers (`chaos.py`)."""
    # Locked: thread-executor jobs start at once in a new worker. Two threads
    # creating clients side by side left one to be garbage-collected, and its
    # __del__ closed the connection pool under the other thread's pipeline; the
    # handler failed after its HINCRBY landed and the retry counted it twice.
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(os.environ["TEST_REDIS_URL"], decode_responses=True)
    return _client


def _ran(k: str) -> int:
    return sink().incr("test:runs", k)


@app.job()
def record(k: str) -> str:
    """Thread executor: count a run of key k."""
    _ran(k)
    return k


@app.job()
async def add(a: int, b: int) -> int:
    return a + b


@app.job()
async def sleepy(k: str, seconds: float) -> str:
    sink().hset("test:started", k, repr(time.time()))
    await asyncio.sleep(seconds)
    _ran(k)
    return k


@app.job()
async def stubborn(k: str) -> None:
    """A handler that swallows cancellation: a drain must still end."""
    sink().hset("test:started", k, repr(time.time()))
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            sink().incr("test:cancelled", k)


@app.job()
async def stamp(k: str, sent: float) -> float:
    """Record enqueue->start latency."""
    delay = time.time() - sent
    sink().hset("test:latency", k, repr(delay))
    return delay


@app.job(max_retries=3)
def flaky(k: str, failures: int) -> int:
    n = sink().incr("test:attempts", k)
    if n <= failures:
        raise RuntimeError(f"attempt {n} of {k} fails on purpose")
    return n


@app.job(max_retries=2)
def broken_until_fixed(k: str) -> str:
    _ran(k)
    if not sink().get("test:fixed"):
        raise ValueError(f"{k} is broken until test:fixed is set")
    return "fixed"


@app.job()
def suicide(k: str) -> None:
    """Kills its own worker process, as an OOM kill or a segfault would."""
    _ran(k)
    os.kill(os.getpid(), signal.SIGKILL)


@app.job(timeout="500ms", max_retries=1)
async def hang_async(k: str) -> None:
    _ran(k)
    await asyncio.sleep(3600)


@app.job(executor="process", timeout="1s", max_retries=0)
def hang_process(k: str) -> None:
    time.sleep(3600)


@app.job(executor="process")
def cpu(n: int) -> int:
    return sum(i * i for i in range(n))


@app.job()
async def unserializable() -> Any:
    return {1, 2, 3}


@app.job()
async def block_loop(seconds: float) -> None:
    """A badly written async handler: blocks the worker's event loop."""
    time.sleep(seconds)


def _ran_in_pool(k: str) -> str:
    sink().many(
        ("incr", "test:runs", k),
        ("hset", "test:pool", k, os.environ.get("GROUP_ID", "?")),
        ("rpush", "test:order", k),
    )
    return k


@app.job()
def cpu_task(k: str) -> str:
    return _ran_in_pool(k)


@app.job()
def io_task(k: str) -> str:
    return _ran_in_pool(k)


@app.job()
def misc_task(k: str) -> str:
    return _ran_in_pool(k)


@app.job()
async def fast(k: str) -> str:
    return _ran_in_pool(k)


@app.job()
def which_pid(k: str) -> int:
    sink().hset("test:pid", k, str(os.getpid()))
    time.sleep(0.01)
    return os.getpid()
