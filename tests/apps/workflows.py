"""Handlers for the workflow tests (tests/test_workflows.py): each run is
counted in the sink, so a test can tell a callback that ran once from one
that ran twice or never."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from bananas import Bananas

from .sink import sink

app = Bananas()


def _ran(name: str, k: str) -> None:
    sink().incr(f"test:{name}", k)


@app.job()
async def add(x: int, previous: int | None = None) -> int:
    """A chain step: its input plus x."""
    _ran("add", str(x))
    return (previous or 0) + x


@app.job()
async def square(i: int) -> int:
    return i * i


@app.job()
async def ident(i: int) -> int:
    return i


@app.job()
async def collect(results: list[Any], k: str = "cb") -> list[Any]:
    """A chord callback: counts its runs, returns what it received."""
    _ran("callback", k)
    return results


@app.job()
async def check_order(results: list[int], n: int) -> dict[str, Any]:
    """The 10,000-member chord's callback: says whether it got them all in order."""
    _ran("callback", "order")
    return {"n": len(results), "ordered": results == list(range(n))}


@app.job(max_retries=0)
async def boom(k: str) -> None:
    _ran("boom", k)
    raise ValueError(f"boom {k}")


@app.job()
async def slow(k: str, seconds: float) -> str:
    _ran("started", k)
    await asyncio.sleep(seconds)
    _ran("finished", k)
    return k


@app.job()
def suicide(k: str) -> None:
    """Kills its own worker process (an OOM kill): dead-lettered by MAX_STALLS."""
    _ran("suicide", k)
    os.kill(os.getpid(), signal.SIGKILL)


@app.job()
async def barrier(k: str, group_key: str, size: int) -> str:
    """Returns once `size` members of its group are all running: the last
    members of a chord finish at the same instant on different workers."""
    s = sink()
    s.incr("test:arrived", group_key)
    deadline = time.monotonic() + 20
    while int(s.hget("test:arrived", group_key) or 0) < size:
        assert time.monotonic() < deadline, "the other members never arrived"
        await asyncio.sleep(0.005)
    _ran("barrier", k)
    return k


@app.job()
async def die_after_return(k: str) -> str:
    """Its first run returns and kills its worker before the outcome is
    settled (the kill is the next thing the event loop runs); later runs
    just return."""
    first = sink().incr("test:die", k) == 1
    if first:
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGKILL)
    return k


@app.job(route="gpu")
async def render(k: str) -> str:
    _ran("pool", f"{k}:{os.environ.get('TEST_POOL', '?')}")
    return f"render:{k}"


@app.job()
async def upload(k: str, previous: Any = None) -> str:
    _ran("pool", f"{k}:{os.environ.get('TEST_POOL', '?')}")
    return f"upload:{k}:{previous}"
