"""The lease heartbeat: every lease_timeout / 3, extend the lease of every job
this worker holds (buffered, running or settling), so a long job or a slow
drain keeps its jobs; a lease the broker refuses to extend is reported once
as `job.lease_lost` (another worker may run the job).

Each answer also moves the jobs' `held_until` (send time + lease, monotonic):
a lease extended is surely ours until then, a lease lost is gone at once, so
the fetcher never starts a buffered job whose lease is gone (it drops it).

It runs until after the drain has put its jobs back: stopping it earlier
would let in-flight leases expire during the SHUTDOWN_TIMEOUT wait.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..brokers.base import Broker, Delivery
from ..errors import BrokerError
from ..logs import EventLog
from ..loops import PeriodicTasks
from ..observe.status import BrokerLink


@dataclass(frozen=True, slots=True)
class LeasesParams:
    broker: Broker
    log: EventLog
    link: BrokerLink
    lease_timeout: float
    # Every job this worker holds a lease on, by id (the fetcher's, read only).
    leased: Mapping[str, Delivery]


class Leases:
    def __init__(self, params: LeasesParams) -> None:
        self.p = params
        self._loops = PeriodicTasks(self._on_error)

    def start(self) -> None:
        self._loops.add("heartbeat", self.p.lease_timeout / 3, self._extend, at_once=False)

    async def stop(self) -> None:
        await self._loops.stop()

    def _on_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, BrokerError):
            self.p.link.down()
            self.p.log.warning("heartbeat.failed", error=str(exc))
        else:  # a bug here must not end the heartbeat: every lease would expire
            self.p.log.error("heartbeat.crash", error=f"{type(exc).__name__}: {exc}")

    async def _extend(self) -> None:
        held = list(self.p.leased.values())
        if not held:
            return
        sent = time.monotonic()
        lost = await self.p.broker.extend_leases(
            [(d.id, d.token) for d in held],
            self.p.lease_timeout,
            {d.id for d in held if d.started},  # started: a stall is charged if lost
        )
        self.p.link.up()
        held_until = sent + self.p.lease_timeout
        for delivery in held:
            delivery.held_until = max(delivery.held_until, held_until)
        for job_id in lost:
            gone = self.p.leased.get(job_id)
            if gone is None:
                continue
            gone.held_until = 0.0
            # A job acked while the heartbeat was in flight is not a lost lease,
            # and one never started is dropped by the fetcher, not run.
            if gone.started and not gone.settling:
                self.p.log.warning(
                    "job.lease_lost",
                    job_id=job_id,
                    detail="lease expired before the heartbeat; the job may run twice",
                )
