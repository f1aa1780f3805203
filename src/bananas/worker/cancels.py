"""Stopping the jobs someone cancelled (docs/control.md).

`cancel(job_id)` on a running job leaves a request on the broker (Redis: a
field in the partition's `cancels` hash; SQLite: a row). Every CHECK_S
while this worker holds leases it asks which of its jobs have one; while
nobody cancels that is one EXISTS per partition holding its jobs (Redis)
or one read (SQLite): nothing per job. The lease heartbeat (every
LEASE_TIMEOUT / 3, 2 s by default) is too slow to carry it: a cancel is to
stop a job within about a second.

A cancelled job is stopped by its kind: an async handler's task is
cancelled, a process handler's child is killed (executors.py), a thread
handler sees `current_job().cancelled` (its `check_cancelled()` raises
JobCancelled); a job still in the prefetch buffer never starts. Each then
settles as cancelled (runner.py: final, not retried).
"""

from __future__ import annotations

import asyncio
import time

from ..brokers.base import Broker, Delivery
from ..errors import BrokerError, InvalidRecord
from ..job import decode_record
from ..logs import EventLog
from ..loops import PeriodicTasks
from .fetcher import Fetcher
from .runner import JobRunner

CHECK_S = 0.5


class CancelWatch:
    def __init__(
        self,
        broker: Broker,
        log: EventLog,
        fetcher: Fetcher,
        runner: JobRunner,
        period: float = CHECK_S,
    ) -> None:
        self.broker = broker
        self.log = log
        self.fetcher = fetcher
        self.runner = runner
        self.period = period
        self._loops = PeriodicTasks(self._on_error)
        self._settles: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._loops.add("cancels", self.period, self.check, at_once=False)

    async def stop(self) -> None:
        await self._loops.stop()
        if self._settles:
            await asyncio.gather(*self._settles, return_exceptions=True)

    def _on_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, BrokerError):
            self.log.warning("cancel_check.failed", error=str(exc))
        else:  # a bug here must not end the checks
            self.log.error("cancel_check.crash", error=f"{type(exc).__name__}: {exc}")

    async def check(self) -> None:
        leased = self.fetcher.leased
        held = [d.id for d in leased.values() if not d.settling and not d.cancel_requested]
        if not held:
            return
        for job_id in await self.broker.cancel_requests(held):
            delivery = leased.get(job_id)
            if delivery is None or delivery.settling or delivery.cancel_requested:
                continue
            delivery.cancel_requested = True
            self.log.info("job.cancel_requested", job_id=job_id, started=delivery.started)
            unstarted = self.fetcher.cancel(delivery, self._stops_by_task(delivery))
            if unstarted is not None:
                task = asyncio.create_task(self._settle_unstarted(unstarted))
                self._settles.add(task)
                task.add_done_callback(self._settles.discard)

    def _stops_by_task(self, delivery: Delivery) -> bool:
        """Whether the job is stopped by cancelling its task (async and
        process handlers) rather than by the flag it polls (thread handlers).
        Read only for a cancelled job: nothing per job otherwise."""
        try:
            name = decode_record(delivery.raw).name
        except InvalidRecord:
            return True
        definition = self.runner.handlers.get(name)
        return definition is None or definition.executor != "thread"

    async def _settle_unstarted(self, delivery: Delivery) -> None:
        """A job cancelled in the prefetch buffer: settled, never started."""
        try:
            record = decode_record(delivery.raw, expected_id=delivery.id)
        except InvalidRecord:
            record = None
        attempts = record.attempts if record is not None else 0
        await self.runner.cancelled(delivery, record, attempts, time.perf_counter())
