"""Handlers for the route tests: each run records the pool (TEST_POOL) of the
worker that ran it and the order jobs started in."""

from __future__ import annotations

import os

from bananas import Bananas

from .sink import sink

app = Bananas()


def _ran(k: str) -> str:
    s = sink()
    # Counted last: the tests wait on the count, then read the others.
    s.hset("test:pool", k, os.environ.get("TEST_POOL", "?"))
    s.rpush("test:order", k)
    s.incr("test:runs", k)
    return k


@app.job(route="gpu")
async def render(k: str) -> str:
    """On route gpu by its decorator."""
    return _ran(k)


@app.job()
async def work(k: str) -> str:
    """On the default route unless enqueued with _route."""
    return _ran(k)
