"""Handlers of the concurrency-limit acceptance tests (tests/test_concurrency.py).

Each limited handler counts itself in and out of a file (TEST_CONC_DIR, one
file per counter, under an flock): how many run at once, and the most
there ever were, measured by the jobs themselves, apart from any broker.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bananas import Bananas

app = Bananas()


def _path(name: str) -> Path:
    return Path(os.environ["TEST_CONC_DIR"]) / f"{name}.json"


@contextmanager
def _locked(name: str) -> Iterator[dict[str, Any]]:
    path = _path(name)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        state: dict[str, Any] = json.loads(text) if text else {"now": 0, "max": 0, "done": 0}
        yield state
        f.seek(0)
        f.truncate()
        f.write(json.dumps(state))
        f.flush()


def read(name: str) -> dict[str, Any]:
    """A counter as the jobs left it: now, max (at once), done, starts (unix s)."""
    path = _path(name)
    if not path.exists():
        return {"now": 0, "max": 0, "done": 0}
    with _locked(name) as state:
        return dict(state)


def forget_running(name: str) -> None:
    """A killed job never counted itself out: start again from none running."""
    with _locked(name) as state:
        state["now"] = state["max"] = 0


@contextmanager
def counted(name: str) -> Iterator[None]:
    with _locked(name) as state:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        state.setdefault("starts", []).append(time.time())
    try:
        yield
    finally:
        with _locked(name) as state:
            state["now"] -= 1
            state["done"] += 1


@app.job(concurrency=2)
async def capped(ms: int) -> None:
    import asyncio

    with counted("capped"):
        await asyncio.sleep(ms / 1000)


@app.job(concurrency=1)
def per_key(customer: str, ms: int) -> None:
    with counted(f"key-{customer}"), counted("per_key"):
        time.sleep(ms / 1000)


@app.job(concurrency=1)
def solo(hang: bool) -> None:
    """A hanging one hangs on its first attempt only (it is SIGKILLed)."""
    first = not _path("solo-hung").exists()
    with counted("solo"):
        if hang and first:
            _path("solo-hung").write_text(str(os.getpid()))
            time.sleep(3600)


@app.job
async def other(n: int) -> None:
    with _locked("other") as state:
        state["done"] += 1
        state["last"] = time.time()
