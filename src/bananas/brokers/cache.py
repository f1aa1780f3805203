"""Brokers cached per event loop, with one that serves plain (sync) code.

redis-py's asyncio connections belong to the loop that opened them, so a
library that is called from several loops (a test per loop, a web server's
thread pool running `asyncio.run`) keeps one broker per loop. Both
`Bananas` and the dashboard need exactly that; this is the one copy.

A loop's broker is closed on that loop, while it still runs: when the
cache's owner closes it, or else as the loop shuts down (`asyncio.run`
finalizes async generators before closing its loop, and each broker has
one parked for the purpose). Closed later, from another loop, a Redis
broker's sockets could no longer be closed cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any

from .base import Broker


class BrokerCache:
    """Lazily built brokers: `for_loop()` for the running loop, `shared()`
    for sync calls from any thread. `close_all()` closes every one of them
    (configure with new settings must not leave connections and threads of
    the old broker behind)."""

    def __init__(self, factory: Callable[[], Broker]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._shared: Broker | None = None
        self._per_loop: dict[asyncio.AbstractEventLoop, Broker] = {}
        self._done: weakref.WeakSet[Broker] = weakref.WeakSet()  # closed (or closing) once
        # Kept: the loop holds tasks and async generators weakly.
        self._pending: set[asyncio.Future[None]] = set()
        self._guards: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    def shared(self) -> Broker:
        """The broker of sync client calls (`broker.sync`), built once."""
        broker = self._shared
        if broker is None:
            # Locked: web threads enqueue at once on a fresh process; unlocked,
            # each would build a broker (scripts, pools) and all but one leak.
            with self._lock:
                broker = self._shared
                if broker is None:
                    broker = self._shared = self._factory()
        return broker

    def for_loop(self) -> Broker:
        """The broker of the running event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        broker = self._per_loop.get(loop)
        if broker is None:
            with self._lock:
                for gone in [lp for lp in self._per_loop if lp.is_closed()]:
                    del self._per_loop[gone]  # closed with its loop (see the opening)
                    self._guards.pop(gone, None)
                broker = self._per_loop[loop] = self._factory()
                guard = self._guards[loop] = self._closes_with_loop(broker)
            self._spawn(loop, guard.__anext__())
        return broker

    async def aclose_loop(self) -> None:
        """Close the running loop's broker (a lifespan shutdown)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            broker = self._per_loop.pop(loop, None)
        if broker is not None:
            await self._close(broker)
        await self._settled(loop)

    async def aclose(self) -> None:
        """Close every loop's broker from the running loop (`Bananas.aclose`)."""
        with self._lock:
            brokers, self._per_loop = list(self._per_loop.values()), {}
        for broker in brokers:
            await self._close(broker)
        await self._settled(asyncio.get_running_loop())

    def close_shared(self) -> None:
        """Close the sync broker (`Bananas.close`); call from plain code."""
        with self._lock:
            broker, self._shared = self._shared, None
        if broker is not None:
            asyncio.run(self._close(broker))

    def close_all(self) -> None:
        """Close every cached broker, from plain code or from a coroutine.

        A loop's broker is closed on its loop: scheduled when that loop is the
        caller's, awaited when it is another thread's; one whose loop has
        ended was closed as it ended. The sync broker is closed on a private
        loop."""
        with self._lock:
            shared, self._shared = self._shared, None
            per_loop, self._per_loop = dict(self._per_loop), {}
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, broker in per_loop.items():
            if loop is current:
                self._spawn(loop, self._close(broker))
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self._close(broker), loop)
                with contextlib.suppress(Exception):
                    future.result(5.0)
        if shared is not None:
            _run_to_end(lambda: self._close(shared))

    # -- internals ----------------------------------------------------------------
    async def _close(self, broker: Broker) -> None:
        if broker in self._done:
            return
        self._done.add(broker)
        await broker.close()

    async def _closes_with_loop(self, broker: Broker) -> AsyncGenerator[None, None]:
        """Parked at its yield on the broker's loop; the loop's shutdown
        (shutdown_asyncgens) resumes it into the finally, loop still running."""
        try:
            yield
        finally:
            await self._close(broker)

    def _spawn(self, loop: asyncio.AbstractEventLoop, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work, loop=loop)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settled(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for the closes scheduled on this loop."""
        await asyncio.gather(*[t for t in self._pending if t.get_loop() is loop])


def _run_to_end(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """asyncio.run(work()) from plain code, or from a thread of its own when
    the caller is inside a running loop (where asyncio.run refuses)."""

    def run() -> None:
        asyncio.run(work())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return
    thread = threading.Thread(target=run, name="bananas-broker-close")
    thread.start()
    thread.join(10.0)
