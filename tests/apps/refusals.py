"""Handlers for the broker-refusal tests (tests/chaos/test_redis_refusals.py).
Each run is counted in the sink, which the test keeps apart from the broker
under test (a Redis at maxmemory refuses the sink's writes too). A job waits
for the gate file (TEST_GATE) so the test can fill Redis while jobs run."""

from __future__ import annotations

import asyncio
import os

from bananas import Bananas

from .sink import sink

app = Bananas()


async def _gate() -> None:
    while not os.path.exists(os.environ["TEST_GATE"]):
        await asyncio.sleep(0.02)


@app.job()
async def gated(k: str) -> str:
    sink().incr("test:runs", k)
    await _gate()
    return k


@app.job(max_retries=0)
async def gated_fail(k: str) -> None:
    sink().incr("test:runs", k)
    await _gate()
    raise RuntimeError(f"{k} fails on purpose")


@app.job(max_retries=1)
async def gated_flaky(k: str) -> str:
    if sink().incr("test:runs", k) == 1:
        await _gate()
        raise RuntimeError(f"{k} fails once on purpose")
    return k
