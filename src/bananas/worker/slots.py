"""The worker's side of concurrency limits (docs/control.md): built only
when a job type this worker runs has `concurrency=N` (none: no gate, no
task, nothing per job).

After a dequeue, the leased jobs of limited types ask the broker for a
slot (`admit`, one call per bucket); a job without one is parked there as
a waiter (its lease given back, no attempt charged) and never reaches the
buffer, so the fetcher takes other work at once: nothing waits behind a
capped type. A job that ran gives its slot back as it settles (`release`,
batched in a task), and the broker resumes the oldest waiter onto it.

The gate's heartbeat (every lease / 3, only while it holds slots) extends
its holds, so a slot lives as long as its worker: a worker that dies
stops extending, and its slots come back when they expire, a lease
after its last heartbeat. A hold whose job left `leased` by a path without
a release (a dropped job, a drain) is released there too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from ..brokers.base import Broker, Delivery
from ..brokers.capabilities import ConcurrencyLimits, SlotJob, concurrency_limits
from ..concurrency import bucket_of
from ..definitions import JobDefinition
from ..errors import BrokerError, InvalidRecord
from ..job import decode_record
from ..keys import lane
from ..logs import EventLog
from ..loops import PeriodicTasks


class SlotGate:
    def __init__(
        self,
        broker: ConcurrencyLimits,
        limits: Mapping[str, int],
        lease_timeout: float,
        log: EventLog,
    ) -> None:
        self.broker = broker
        self.limits = dict(limits)
        self.lease = lease_timeout
        self.log = log
        # The fetcher's `leased` (set once it exists): every job leased here.
        self.leased: Mapping[str, Delivery] = {}
        self.held: dict[str, SlotJob] = {}  # by lease token
        self.parked = 0  # jobs this worker parked (they waited for a slot)
        self._pending: list[SlotJob] = []
        self._flusher: asyncio.Task[None] | None = None
        self._loops = PeriodicTasks(self._on_error)

    def slot_job(self, delivery: Delivery) -> SlotJob | None:
        """The job's bucket if its type is limited here; None for any other
        (an unreadable record too: the runner dead-letters it)."""
        try:
            rec = decode_record(delivery.raw, expected_id=delivery.id)
        except InvalidRecord:
            return None
        limit = self.limits.get(rec.name)
        if limit is None:
            return None
        key = rec.fields.get("concurrency_key")
        bucket = bucket_of(rec.name, key if isinstance(key, str) and key else None)
        return SlotJob(delivery, bucket, limit, f"{lane(rec.route, rec.priority)}:{rec.name}")

    async def admit(self, deliveries: list[Delivery]) -> list[Delivery]:
        """The jobs that may start: unlimited ones, and limited ones that got a slot."""
        asks = {d.token: job for d in deliveries if (job := self.slot_job(d)) is not None}
        if not asks:
            return deliveries
        try:
            flags = await self.broker.admit(list(asks.values()), self.lease)
        except BrokerError as exc:
            # Not known whether they hold slots: put back uncharged (a hold
            # taken expires unextended, within a lease).
            self.log.warning("slots.admit_failed", error=str(exc), put_back=len(asks))
            with contextlib.suppress(BrokerError):
                await self._requeue([job.delivery for job in asks.values()])
            return [d for d in deliveries if d.token not in asks]
        admitted = set()
        for job, ok in zip(asks.values(), flags, strict=True):
            if ok:
                self.held[job.delivery.token] = job
                admitted.add(job.delivery.token)
            else:
                self.parked += 1
        return [d for d in deliveries if d.token not in asks or d.token in admitted]

    async def _requeue(self, deliveries: list[Delivery]) -> None:
        if isinstance(self.broker, Broker):
            await self.broker.requeue(deliveries)

    def release(self, delivery: Delivery) -> None:
        """Give back the job's slot (it settled, or was put back); the broker
        resumes a waiter onto it. Batched: one call per bucket per loop turn."""
        job = self.held.pop(delivery.token, None)
        if job is None:
            return
        self._pending.append(job)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the releases of this loop turn go together
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.broker.release_slots(batch, self.lease)
            except BrokerError as exc:  # they expire unextended, within a lease
                self.log.warning("slots.release_failed", error=str(exc), jobs=len(batch))

    # -- the heartbeat ----------------------------------------------------------
    def start(self) -> None:
        self._loops.add("slots", self.lease / 3, self.heartbeat, at_once=False)

    def _on_error(self, name: str, exc: Exception) -> None:
        self.log.warning("slots.heartbeat_failed", error=f"{type(exc).__name__}: {exc}")

    async def heartbeat(self) -> None:
        for job in list(self.held.values()):
            if self.leased.get(job.delivery.id) is not job.delivery:
                self.release(job.delivery)  # left by a path without a release
        if not self.held:
            return
        holding = list(self.held.values())
        lost = set(await self.broker.extend_slots(holding, self.lease))
        for job in holding:
            if job.delivery.id in lost and self.held.pop(job.delivery.token, None) is not None:
                self.log.warning(
                    "job.slot_lost",
                    job_id=job.delivery.id,
                    detail="its slot expired before the heartbeat; the limit may be exceeded",
                )

    async def stop(self) -> None:
        """After the drain: every slot still held is given back."""
        await self._loops.stop()
        self._pending += self.held.values()
        self.held.clear()
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        if self._pending:
            await self._flush()


def slot_gate_for(
    broker: Broker,
    handlers: Mapping[str, JobDefinition],
    types: tuple[str, ...],
    lease_timeout: float,
    log: EventLog,
) -> SlotGate | None:
    """The gate, if a type this worker runs has a limit (else None: nothing to do)."""
    limits = {t: n for t in types if (n := handlers[t].concurrency) is not None}
    if not limits:
        return None
    slots = concurrency_limits(broker)
    if slots is None:
        log.warning(
            "slots.unsupported",
            job_types=sorted(limits),
            detail=f"{type(broker).__name__} has no concurrency limits: they are not enforced",
        )
        return None
    return SlotGate(slots, limits, lease_timeout, log)
