"""Handlers for the executor tests: big results, exceptions a parent cannot
unpickle, process jobs beside a crashing one, thread jobs that never return."""

from __future__ import annotations

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
