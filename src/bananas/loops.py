"""Loop helpers every background part of a process shares: periodic loops
with one lifecycle (`PeriodicTasks`), a cancel that really ends a task
(`cancel_until_done`), and an await that gives up on a stop (`until_stop`).

(Not `@app.periodic` schedules: those are in `schedules.py`.)

Each periodic loop runs its action every period; an exception is handed to
the owner's handler and the loop carries on (a periodic loop must not die of
one bad tick).

Stopping does not trust one `cancel()`: redis-py (8.1, with a retry policy
and health checks) can swallow a cancellation that lands mid-command and
return normally, so a loop cancelled once could run on and its stop wait
forever. Loops end on a flag, and `cancel_until_done` cancels again until
the tasks have really ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

RECANCEL_EVERY = 0.1  # seconds between cancels of a task that is still running


async def cancel_until_done(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again
    any that swallowed the cancellation and carried on."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_EVERY)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: an error on the way out is not logged as unhandled


async def until_stop(awaitable: Awaitable[Any], stop: asyncio.Event) -> None:
    """Await `awaitable`, abandoning it if `stop` is set first. Its error, if
    it finished with one, is raised; an error of an abandoned one is not."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.create_task(stop.wait())
    abandoned = False
    try:
        await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            # Cancelled again until it ends: a blocking Redis wait whose first
            # cancel redis-py swallowed would otherwise hold the stop for its
            # whole timeout (1-2 s of an idle fetch or routing wait).
            abandoned = True
            await cancel_until_done([task])
    if not abandoned and not task.cancelled():
        task.result()


class PeriodicTasks:
    """Named loops started with add() and ended together with stop()."""

    def __init__(self, on_error: Callable[[str, Exception], None]) -> None:
        self._on_error = on_error
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def add(
        self,
        name: str,
        period: float,
        action: Callable[[], Awaitable[None]],
        *,
        at_once: bool = True,
    ) -> None:
        self._tasks.append(
            asyncio.create_task(self._loop(name, period, action, at_once), name=name)
        )

    async def stop(self) -> None:
        self._stopping = True
        await cancel_until_done(self._tasks)
        self._tasks.clear()

    async def _loop(
        self, name: str, period: float, action: Callable[[], Awaitable[None]], at_once: bool
    ) -> None:
        if not at_once:
            await asyncio.sleep(period)
        while not self._stopping:
            try:
                await action()
            except Exception as exc:
                if self._stopping:
                    return  # the stop's cancel, surfacing as a library's error
                self._on_error(name, exc)
            if self._stopping:
                return  # the stop's cancel was swallowed inside the action
            await asyncio.sleep(period)
