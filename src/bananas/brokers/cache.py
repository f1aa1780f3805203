"""Brokers cached per event loop, with one that serves plain (sync) code.

redis-py's asyncio connections belong to the loop that opened them, so a
library that is called from several loops (a test per loop, a web server's
thread pool running `asyncio.run`) keeps one broker per loop. Both
`Bananas` and the dashboard need exactly that; this is the one copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

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
        self._closing: set[asyncio.Future[None]] = set()  # kept: the loop holds tasks weakly

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
                gone = [lp for lp in self._per_loop if lp.is_closed()]
                stale = [self._per_loop.pop(lp) for lp in gone]
                broker = self._per_loop.setdefault(loop, self._factory())
            # A finished loop's broker still holds threads (SQLite) or sockets.
            for old in stale:
                self._close_later(loop, old)
        return broker

    def _close_later(self, loop: asyncio.AbstractEventLoop, broker: Broker) -> None:
        task = loop.create_task(_quietly_close(broker))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _closed(self) -> None:
        """Wait for the closes this loop has scheduled."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*[t for t in self._closing if t.get_loop() is loop])

    async def aclose_loop(self) -> None:
        """Close the running loop's broker (a lifespan shutdown)."""
        with self._lock:
            broker = self._per_loop.pop(asyncio.get_running_loop(), None)
        if broker is not None:
            await broker.close()
        await self._closed()

    async def aclose(self) -> None:
        """Close every loop's broker from the running loop (`Bananas.aclose`)."""
        with self._lock:
            brokers, self._per_loop = list(self._per_loop.values()), {}
        for broker in brokers:
            await broker.close()
        await self._closed()

    def close_shared(self) -> None:
        """Close the sync broker (`Bananas.close`); call from plain code."""
        with self._lock:
            broker, self._shared = self._shared, None
        if broker is not None:
            asyncio.run(broker.close())

    def close_all(self) -> None:
        """Close every cached broker, from plain code or from a coroutine.

        Each loop broker is closed on its own loop when that loop still runs
        (awaited when it is another thread's, scheduled when it is ours); a
        broker whose loop is gone is closed on a private loop, where what is
        left of its connections dies with the old loop anyway."""
        with self._lock:
            shared, self._shared = self._shared, None
            per_loop, self._per_loop = dict(self._per_loop), {}
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, broker in per_loop.items():
            if loop is current:
                self._close_later(loop, broker)
            elif loop.is_running():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(broker.close(), loop).result(5.0)
            else:
                _close_off_loop(broker)
        if shared is not None:
            _close_off_loop(shared)


async def _quietly_close(broker: Broker) -> None:
    # Closing what a finished loop left behind may fail on its dead
    # transports; those die with that loop anyway.
    with contextlib.suppress(Exception):
        await broker.close()


def _close_off_loop(broker: Broker) -> None:
    """Run `broker.close()` to the end on a private loop (in a thread when
    the caller is itself inside a running loop, where asyncio.run refuses)."""

    def run() -> None:
        with contextlib.suppress(Exception):
            asyncio.run(broker.close())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return
    thread = threading.Thread(target=run, name="bananas-broker-close")
    thread.start()
    thread.join(10.0)
