"""Why a waited-for job did not finish: the end of the TimeoutError of
`handle.result(timeout)` / `wait()` and of `bananas enqueue --wait`.

A job of a type no live worker runs waits, queued, for one, so a wait on it
can only time out; saying so turns a bare timeout into the fix (start a
worker that registers the type, or check the broker). Read from the worker
registry (`Registry.list_workers`, both brokers) and only once a wait has
timed out: a wait that succeeds pays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .job import record_field

if TYPE_CHECKING:
    from .app import Bananas
    from .brokers.base import Broker

LOOKUP_BOUND = 2.0  # seconds: an explanation must not turn a timeout into a hang


async def why_unfinished(broker: Broker, job_id: str, expiry: float) -> str:
    """Empty when a live worker runs the job's type (or the broker cannot say),
    else ": <why nothing runs it>", to end a timeout message with."""
    try:
        async with asyncio.timeout(LOOKUP_BOUND):
            raw = await broker.get_record(job_id)
            if raw is None:
                return f": the broker ({broker.describe()}) has no job {job_id}"
            workers = await broker.list_workers(expiry)
    except Exception:  # the timeout is the error to report, not this lookup's
        return ""
    name = record_field(raw, "name")
    runners = [w for w in workers if w.kind != "scheduler"]
    route = record_field(raw, "routing_key") or "default"
    if any(name in w.job_types and route in (w.routes or ["default"]) for w in runners):
        return ""
    if route != "default" and any(name in w.job_types for w in runners):
        served = sorted({r for w in runners for r in (w.routes or ["default"])})
        return (
            f": no live worker serves route {route!r} (live workers serve "
            f"{', '.join(map(repr, served))}); it waits, queued, until one started with "
            f"WORKER_ROUTING_KEYS naming {route!r} runs"
        )
    if not runners:
        return (
            f": no live worker (none heard from within {expiry:g}s) runs job type {name!r}; "
            "it waits, queued, until one that registers it starts"
        )
    types = sorted({t for w in runners for t in w.job_types})
    return (
        f": no live worker runs job type {name!r} ({len(runners)} live worker(s) run "
        f"{', '.join(map(repr, types)) or 'nothing'}); it waits, queued, until one "
        "that registers it starts"
    )


def why_unfinished_sync(app: Bananas, job_id: str) -> str:
    """`why_unfinished` from plain code, on a broker of its own (the app's
    sync broker's asyncio side belongs to no loop), closed after."""

    async def lookup() -> str:
        broker = app.new_broker()
        try:
            return await why_unfinished(broker, job_id, app.settings.registry_expiry)
        finally:
            with contextlib.suppress(Exception):
                await broker.close()

    try:
        return _run(lookup)
    except Exception:
        return ""


def _run(work: Callable[[], Coroutine[Any, Any, str]]) -> str:
    """asyncio.run(work()), in a thread when the caller is inside a running
    loop (a sync `result()` called from async code, where asyncio.run refuses)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work())
    answer: list[str] = []
    thread = threading.Thread(target=lambda: answer.append(asyncio.run(work())), daemon=True)
    thread.start()
    thread.join(LOOKUP_BOUND + 1.0)
    return answer[0] if answer else ""


__all__ = ["why_unfinished", "why_unfinished_sync"]
