"""The scheduler loop: moves due delayed / back-off jobs to ready, and the
lease recoverer that returns a dead worker's jobs.

Both are single atomic scripts on the broker, so any number of these loops
may run at once (HA): a due job is moved once, an expired lease recovered once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from .brokers.base import Broker
from .config import Settings
from .errors import BrokerError
from .logs import EventLog
from .worker.stats import WorkerStats


class Maintenance:
    """Periodic broker upkeep: start() / stop(), errors logged, loops continue."""

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        log: EventLog,
        stats: WorkerStats,
        *,
        schedule: bool,
        recover: bool,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.log = log
        self.stats = stats
        self.schedule = schedule
        self.recover = recover
        self._tasks: list[asyncio.Task[None]] = []
        self.moved = 0

    def start(self) -> None:
        if self.schedule:
            self._tasks.append(
                asyncio.create_task(
                    self._every(self.settings.scheduler_interval, self._move_due), name="scheduler"
                )
            )
        if self.recover:
            # Recovery latency follows the lease, not the job timeout.
            period = max(0.1, min(1.0, self.settings.lease_timeout / 4))
            self._tasks.append(
                asyncio.create_task(self._every(period, self._recover), name="recoverer")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _every(self, period: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
            except BrokerError as exc:
                self.log.warning("maintenance.error", error=str(exc))
            except Exception as exc:  # a bug here must not stop the loop
                self.log.error("maintenance.crash", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(period)

    async def _move_due(self) -> None:
        moved = await self.broker.move_due()
        self.moved += moved
        if moved:
            self.log.debug("scheduler.moved", count=moved)

    async def _recover(self) -> None:
        report = await self.broker.recover_expired(self.settings.max_stalls)
        for job_id in report.recovered:
            self.stats.recovered += 1
            self.log.warning(
                "job.recovered",
                job_id=job_id,
                detail="lease expired (worker lost); job is ready again",
            )
        for job_id in report.buried:
            self.log.error(
                "job.dead_lettered",
                job_id=job_id,
                reason=f"stalled {self.settings.max_stalls} times (MAX_STALLS)",
            )
