"""The scheduler loop: moves due delayed / back-off jobs to ready, fires cron
and periodic schedules; and the lease recoverer that returns a dead worker's jobs.

Moving and recovering are single atomic scripts on the broker, and a firing's
job id is derived from (job type, firing time) with an idempotent enqueue, so
any number of these loops may run at once (HA): a due job is moved once, an
expired lease recovered once, a cron firing enqueued once.

Firings are looked for from the previous check to now. A scheduler starting
fresh looks back one interval only: firings that fell while no scheduler ran
at all are skipped, as cron does, rather than fired late in a burst.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .brokers.base import Broker
from .config import Settings
from .errors import BrokerError
from .logs import EventLog
from .periodic import PeriodicTasks
from .worker.stats import WorkerStats

if TYPE_CHECKING:
    from .app import Bananas


class Maintenance:
    """Periodic broker upkeep: start() / stop(), errors logged, loops continue."""

    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        log: EventLog,
        stats: WorkerStats,
        *,
        app: Bananas,
        schedule: bool,
        recover: bool,
    ) -> None:
        self.app = app
        self.fired = 0
        self._checked_until = time.time() - settings.scheduler_interval
        self.broker = broker
        self.settings = settings
        self.log = log
        self.stats = stats
        self.schedule = schedule
        self.recover = recover
        self._loops = PeriodicTasks(self._on_error)
        self.moved = 0

    def start(self) -> None:
        if self.schedule:
            self._loops.add("scheduler", self.settings.scheduler_interval, self._move_due)
        if self.recover:
            # Recovery latency follows the lease, not the job timeout.
            period = max(0.1, min(1.0, self.settings.lease_timeout / 4))
            self._loops.add("recoverer", period, self._recover)

    async def stop(self) -> None:
        await self._loops.stop()

    def _on_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, BrokerError):
            self.log.warning("maintenance.error", loop=name, error=str(exc))
        else:  # a bug here must not stop the loop
            self.log.error("maintenance.crash", loop=name, error=f"{type(exc).__name__}: {exc}")

    async def _move_due(self) -> None:
        if self.app.schedules:
            await self._fire_schedules()
        moved = await self.broker.move_due()
        self.moved += moved
        if moved:
            self.log.debug("scheduler.moved", count=moved)

    async def _fire_schedules(self) -> None:
        now = time.time()
        specs = []
        for schedule in self.app.schedules.values():
            for fired_at in schedule.firings(self._checked_until, now):
                options = {"_job_id": schedule.firing_id(fired_at)}
                if schedule.priority:
                    options["_priority"] = schedule.priority
                specs.append(self.app.spec(schedule.name, dict(schedule.payload), **options))
        if specs:
            jobs = self.app.build_jobs(specs)
            created = await self.broker.enqueue(jobs)
            for job, new in zip(jobs, created, strict=True):
                if new:
                    self.fired += 1
                    self.log.info("schedule.fired", job_id=job.id, job_type=job.name)
        # Only advanced once the enqueue went through: a broker outage is retried.
        self._checked_until = now

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
