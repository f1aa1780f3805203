"""`bananas worker --burst`: run until the queues this worker serves are empty,
then drain and exit 0 (like RQ's `--burst`), for CI pipelines and batch jobs.

Empty means, at one check, all of:
  - nothing is leased to this worker (buffered, running or settling) and no
    dequeue of its own is in flight;
  - no ready job on the queues it serves (its priorities x its job types; on
    Redis also no unrouted SDK job of its priorities);
  - when it runs the scheduler: no scheduled job of those queues is due
    within BURST_HORIZON seconds of the broker's clock (a delayed job or a
    retry due sooner is waited for and run; one due later is left for a
    later worker). A worker without the scheduler loop does not wait for
    scheduled jobs: nothing of its own would make them ready. Cron
    schedules never keep a burst worker alive.

The broker is read first and the worker's own state after the reply: a job
that was ready when the broker answered is by then either still ready
(counted), or leased by this worker (its dequeue is in flight or the job is
leased), or taken by another worker. So the check never exits past a job it
could have run, except one enqueued after the broker answered.

Checks run every BURST_POLL seconds and only in a burst worker; a normal
worker pays nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ..brokers.base import Broker
from ..errors import BrokerError
from ..keys import lane
from ..logs import EventLog
from ..loops import until_stop
from ..observe.stats import WorkerStats
from ..routes import DEFAULT_ROUTE
from .fetcher import Fetcher

BURST_HORIZON = 1.0  # seconds: a scheduled job due sooner keeps the worker alive
BURST_POLL = 0.2  # seconds between checks
_PAGE = 200  # scheduled jobs read per page, soonest due first


@dataclass(frozen=True, slots=True)
class BurstParams:
    broker: Broker
    log: EventLog
    stats: WorkerStats
    fetcher: Fetcher
    priorities: tuple[str, ...]
    types: tuple[str, ...]
    scheduled: bool  # this worker moves due jobs: wait for those due soon
    unrouted: bool  # this worker routes SDK jobs: wait for those of its priorities
    stop: asyncio.Event
    on_empty: Callable[[], None]  # begins the drain
    routes: tuple[str, ...] = (DEFAULT_ROUTE,)


class Burst:
    """A part (start / stop) that ends the worker once its queues are empty."""

    def __init__(self, params: BurstParams) -> None:
        self.p = params
        self._queues = {
            (lane(r, p), t) for r in params.routes for p in params.priorities for t in params.types
        }
        # Scheduled jobs are listed without their route: any route's count.
        self._due_queues = {(p, t) for p in params.priorities for t in params.types}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="burst")

    async def stop(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        p = self.p
        while not p.stop.is_set():
            try:
                if await self.empty():
                    p.log.lifecycle(
                        "worker.burst_done",
                        jobs_completed=p.stats.completed,
                        jobs_failed=p.stats.failed,
                        detail="the queues it serves are empty: draining, then exit 0",
                    )
                    p.on_empty()
                    return
            except BrokerError as exc:  # an outage is not emptiness: look again
                p.log.warning("burst.check_failed", error=str(exc))
            await until_stop(asyncio.sleep(BURST_POLL), p.stop)

    def _busy_here(self) -> bool:
        return bool(self.p.fetcher.leased) or self.p.fetcher.dequeuing

    async def empty(self) -> bool:
        if self._busy_here():
            return False  # no broker read while this worker has work
        stats = await self.p.broker.stats()
        if any(n for queue, n in stats.ready.items() if n and queue in self._queues):
            return False
        if self.p.unrouted and any(stats.unrouted.get(q, 0) for q in self.p.priorities):
            return False
        if self.p.unrouted and any(  # the Go scheduler's lists of the routes it serves
            n and r in self.p.routes and q in self.p.priorities
            for (r, q), n in stats.unrouted_routes.items()
        ):
            return False
        if self.p.scheduled and stats.scheduled and await self._due_soon():
            return False
        return not self._busy_here()  # read after the broker's reply (see above)

    async def _due_soon(self) -> bool:
        """A scheduled job of this worker's queues due within the horizon."""
        broker = self.p.broker
        limit = await broker.server_time() + BURST_HORIZON
        offset = 0
        while True:
            page = await broker.list_jobs("scheduled", offset, _PAGE)
            for job in page:
                if job.when_ms / 1000 > limit:
                    return False  # soonest first: the rest are later still
                if (job.priority, job.name) in self._due_queues:
                    return True
            if len(page) < _PAGE:
                return False
            offset += len(page)
