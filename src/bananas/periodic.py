"""Background loops with one lifecycle: start with add(), end with stop().

Each loop runs its action every period; an exception is handed to the
owner's handler and the loop carries on (a periodic loop must not die of
one bad tick).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class PeriodicTasks:
    def __init__(self, on_error: Callable[[str, Exception], None]) -> None:
        self._on_error = on_error
        self._tasks: list[asyncio.Task[None]] = []

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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _loop(
        self, name: str, period: float, action: Callable[[], Awaitable[None]], at_once: bool
    ) -> None:
        if not at_once:
            await asyncio.sleep(period)
        while True:
            try:
                await action()
            except Exception as exc:
                self._on_error(name, exc)
            await asyncio.sleep(period)
