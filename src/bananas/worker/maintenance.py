"""Broker upkeep a worker (or a scheduler-only process) runs beside its jobs:
the scheduler loop, which moves due delayed / back-off jobs to ready and
fires cron and periodic schedules, and the lease recoverer, which returns a
dead worker's jobs.

It lives with the worker's other parts because the `bananas scheduler`
command is a worker in scheduler-only mode: the same runtime, with no job
types and this part switched on.

Moving and recovering are single atomic scripts on the broker, and a firing's
job id is derived from (job type, firing time) with an idempotent enqueue, so
any number of these loops may run at once (HA): a due job is moved once, an
expired lease recovered once, a cron firing enqueued once.

Firings are judged by the broker's clock (`server_time`, read once per tick),
so schedulers on hosts whose clocks disagree still agree on which firings are
due. They are looked for from the previous check to now. A scheduler starting
fresh looks back one interval only: firings that fell while no scheduler ran
at all are skipped, as cron does, rather than fired late in a burst.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..brokers.base import Broker
from ..errors import BrokerError, BrokerRefusesWrites
from ..logs import EventLog
from ..loops import PeriodicTasks
from ..observe.stats import WorkerStats
from ..schedules import Schedule
from ..vocabulary import DeadReason

if TYPE_CHECKING:
    from ..app import Bananas


@dataclass(frozen=True, slots=True)
class MaintenanceParams:
    broker: Broker
    log: EventLog
    stats: WorkerStats  # moved / fired / recovered are counted here
    app: Bananas  # builds the firings' jobs (ids, records)
    schedule: bool  # run the scheduler loop (ENABLE_SCHEDULER)
    recover: bool  # run the lease recoverer
    scheduler_interval: float
    lease_timeout: float
    max_stalls: int


class Maintenance:
    """Periodic broker upkeep: start() / stop(), errors logged, loops continue."""

    def __init__(self, params: MaintenanceParams) -> None:
        self.p = params
        # The broker-clock time firings were looked for up to; None until the
        # first tick reads the broker's clock.
        self._checked_until: float | None = None
        self._paused: set[str] = set()  # loops whose last write Redis refused
        self._loops = PeriodicTasks(self._on_error)

    def start(self) -> None:
        if self.p.schedule:
            self._loops.add("scheduler", self.p.scheduler_interval, self._move_due)
        if self.p.recover:
            # Recovery latency follows the lease, not the job timeout.
            period = max(0.1, min(1.0, self.p.lease_timeout / 4))
            self._loops.add("recoverer", period, self._recover)

    async def stop(self) -> None:
        await self._loops.stop()

    def _on_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, BrokerRefusesWrites):  # once, not every tick of the refusal
            if name not in self._paused:
                self._paused.add(name)
                self.p.log.warning("maintenance.paused", loop=name, error=str(exc))
        elif isinstance(exc, BrokerError):
            self.p.log.warning("maintenance.error", loop=name, error=str(exc))
        else:  # a bug here must not stop the loop
            self.p.log.error("maintenance.crash", loop=name, error=f"{type(exc).__name__}: {exc}")

    async def _move_due(self) -> None:
        schedules = self.p.app.schedules
        if schedules:
            await self._fire_schedules(schedules)
        moved = await self.p.broker.move_due()
        self._paused.discard("scheduler")
        self.p.stats.moved += moved
        if moved:
            self.p.log.debug("scheduler.moved", count=moved)

    async def _fire_schedules(self, schedules: Mapping[str, Schedule]) -> None:
        now = await self.p.broker.server_time()  # once per tick, for every schedule
        since = self._checked_until
        if since is None:
            since = now - self.p.scheduler_interval
        app = self.p.app
        specs = []
        for schedule in schedules.values():
            for fired_at in schedule.firings(since, now):
                options = {"_job_id": schedule.firing_id(fired_at)}
                if schedule.priority:
                    options["_priority"] = schedule.priority
                specs.append(app.spec(schedule.name, dict(schedule.payload), **options))
        if specs:
            jobs = app.build_jobs(specs)
            created = await self.p.broker.enqueue(jobs)
            for job, new in zip(jobs, created, strict=True):
                if new:
                    self.p.stats.fired += 1
                    self.p.log.info("schedule.fired", job_id=job.id, job_type=job.name)
        # Only advanced once the enqueue went through: a broker outage is retried.
        self._checked_until = now

    async def _recover(self) -> None:
        max_stalls = self.p.max_stalls
        report = await self.p.broker.recover_expired(max_stalls)
        self._paused.discard("recoverer")
        for job_id in report.recovered:
            self.p.stats.recovered += 1
            self.p.log.warning(
                "job.recovered",
                job_id=job_id,
                detail="lease expired (worker lost); job is ready again",
            )
        for job_id in report.buried:
            self.p.log.error(
                "job.dead_lettered", job_id=job_id, reason=DeadReason.stalled(max_stalls)
            )
