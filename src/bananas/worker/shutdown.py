"""Bounded stop steps: each step of a worker's stop may take SHUTDOWN_STEP
seconds; a stuck one is logged (with the await it is stuck in) and left
behind, because the process exits either way."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from typing import Any, TypeVar

from ..logs import EventLog

T = TypeVar("T")
# Seconds each stop step that waits on Redis may take: under the 5 s read
# timeout, because a frozen Redis makes one command take 4 x 5 s with retries.
SHUTDOWN_STEP = 3.0


def awaiting(task: asyncio.Future[Any]) -> str:
    """Where a task is suspended: its await chain, outermost first, as
    "file:function:line > ...", so a stuck step names the call it waits on.
    A coroutine awaiting another task (or a gather of several) is followed
    into it, through the future the task waits on (`_fut_waiter`): the
    await chain itself ends at that future's iterator."""
    where: list[str] = []
    future: Any = task
    while future is not None and len(where) < 20:
        runner = _running(future)
        node: Any = getattr(runner, "get_coro", lambda: None)()
        if node is None:
            where.append(type(future).__name__)
            break
        while node is not None and len(where) < 20:
            frame = getattr(node, "cr_frame", None) or getattr(node, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                where.append(
                    f"{os.path.basename(code.co_filename)}:{code.co_name}:{frame.f_lineno}"
                )
            node = getattr(node, "cr_await", None) or getattr(node, "gi_yieldfrom", None)
        future = getattr(runner, "_fut_waiter", None)
    return " > ".join(where)


def _running(future: asyncio.Future[Any]) -> Any:
    """The task behind a future: itself, or for asyncio.gather's future (a
    step made of several stops) the first of its children still running."""
    children = getattr(future, "_children", None)
    if children:
        return next((c for c in children if not c.done()), children[0])
    return future


async def bounded(log: EventLog, step: str, awaitable: Awaitable[T]) -> T | None:
    """Await one step of the stop, at most SHUTDOWN_STEP seconds: a Redis
    that stopped answering (or a bug) must not keep a drained process alive."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_STEP)
    if not done:
        log.error(
            "worker.shutdown_stuck",
            step=step,
            waited_s=SHUTDOWN_STEP,
            waiting_in=awaiting(task),
            detail="left behind; leased jobs it held come back when their lease expires",
        )
        task.cancel()
        return None
    try:
        return task.result()
    except Exception as exc:  # clean-up must not turn a drained exit into a crash
        log.warning("worker.shutdown_error", step=step, error=f"{type(exc).__name__}: {exc}")
        return None
