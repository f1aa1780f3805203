"""Handlers of the rate-limit acceptance tests (tests/test_rate.py): each
records when it started (this host's clock; every process is on it) and,
for the limited ones, its id (the test reads the record's slot)."""

from __future__ import annotations

import time

from bananas import Bananas, RetryLater, current_job

from .sink import sink

app = Bananas()


@app.job(rate_limit="50/s")
async def limited(n: int) -> None:
    sink().rpush("test:rate:limited", f"{time.time()} {current_job().id}")


@app.job(rate_limit="50/s")
async def keyed(n: int, key: str) -> None:
    sink().rpush(f"test:rate:keyed:{key}", f"{time.time()} {current_job().id}")


@app.job
async def free(n: int) -> None:
    sink().rpush("test:rate:free", f"{time.time()}")


@app.job(max_retries=0)
async def snoozy(n: int) -> None:
    """Asks to be run again 300 ms later the first time (an API said 429)."""
    runs = sink().incr("test:rate:snoozy", str(n))
    sink().rpush("test:rate:snoozy:at", f"{time.time()}")
    if runs == 1:
        raise RetryLater("300ms")


@app.job(max_retries=0)
async def always_snoozes(n: int) -> None:
    sink().incr("test:rate:always", str(n))
    raise RetryLater("1ms")
