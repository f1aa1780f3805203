"""Foreign-record routing: one loop per priority moves jobs other clients
(the SDKs) pushed onto the plain priority lists into Bananas' routed queues,
and one per (route served, priority) those the Go scheduler moved to a
route's list (bananas:route:{key}:queue:{priority}; `default` too: it puts
jobs without a routing key there). Each loop blocks on its list (BLMOVE onto
a hand-over list, then one script), so an idle loop costs a held connection,
no calls.

Started only when the broker has the `ForeignRouting` capability (Redis);
a broker without it gets no loop at all rather than one that sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ..brokers.base import ForeignRouting
from ..errors import BrokerError
from ..logs import EventLog
from ..loops import until_stop

ROUTE_WAIT = 2.0  # seconds one blocking pump waits for a foreign record


@dataclass(frozen=True, slots=True)
class RouterParams:
    router: ForeignRouting
    log: EventLog
    priorities: Sequence[str]
    stop: asyncio.Event  # the worker's stop flag: once set, no more routing
    routes: Sequence[str] = ("default",)  # WORKER_ROUTING_KEYS


class Router:
    def __init__(self, params: RouterParams) -> None:
        self.p = params
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        lists: list[tuple[str, str | None]] = [(p, None) for p in self.p.priorities]
        lists += [(p, r) for r in self.p.routes for p in self.p.priorities]
        self._tasks = [
            asyncio.create_task(self._loop(priority, route), name=f"route-{route}-{priority}")
            for priority, route in lists
        ]

    async def stop(self) -> None:
        """End the loops; a pump in flight is abandoned (routing is atomic per record)."""
        self.p.stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, priority: str, route: str | None) -> None:
        pause = 0.1
        stop = self.p.stop
        while not stop.is_set():
            try:
                await until_stop(self.p.router.pump_foreign(priority, ROUTE_WAIT, route), stop)
                pause = 0.1
            except BrokerError as exc:
                self.p.log.debug("route.error", priority=priority, route=route, error=str(exc))
                await until_stop(asyncio.sleep(pause), stop)
                pause = min(pause * 2, 5.0)
