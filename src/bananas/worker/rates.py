"""Rate-limit admission (docs/control.md, "Rate limits"): what a worker does
with the jobs a dequeue leased before it starts any of them, and with a
handler's RetryLater.

Only built when the app declares a rate limit: a worker without one never
calls anything here (no call, no decode on the hot path).

After each dequeue, the leased jobs of rate-limited types that do not hold
a slot yet are grouped by bucket (rates.bucket_id); each bucket reserves
their slots in one call (`rate_admit`: GCRA). A job whose slot is now starts
as usual (so does one whose slot is at most EARLY ahead); the others are
parked (`rate_park`): lease ended, scheduled at
their slot with attempts unchanged and the record marked as holding it
(`rate_reserved`: the attempts count), so when it is leased again it starts
without taking a second slot. Parking frees the worker's buffer at once, so
other job types keep flowing while one is throttled. The worker then wakes
its own parked jobs at their slot (`rate_wake`, one call per due batch)
instead of waiting for the scheduler's next tick; if it dies first, the
scheduler moves them (up to SCHEDULER_INTERVAL late). A throttled job thus
costs a constant number of broker calls: its share of one admission, one
park, one wake-up and one dequeue, however long it waits.

A slot reserved and then lost (a park that failed, a worker that died
between the two) is never given to another job: it can only lower the rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..brokers.base import Broker, Delivery, RateLimits
from ..errors import BrokerError, CancelRequested, RetryLater
from ..job import JobRecord, iso_from_unix
from ..logs import EventLog
from ..loops import until_stop
from ..rates import MAX_SNOOZES, RATE_KEY, RESERVED, SNOOZES, RateLimit, bucket_id

if TYPE_CHECKING:
    from ..definitions import JobDefinition
    from .runner import JobRunner

WAKE_SLACK = 0.002  # seconds: parked jobs due this close together are woken by one call
# A slot at most this far ahead counts as now: a batch leased together is not
# parked for fractions of a millisecond under a high limit. (GCRA's burst
# tolerance: over any window W, at most W x limit + 1 + EARLY x limit starts.)
EARLY = 0.010


class Admission:
    def __init__(
        self,
        broker: RateLimits,
        limits: Mapping[str, RateLimit],
        log: EventLog,
        stop: asyncio.Event,
    ) -> None:
        self.broker = broker
        self.limits = dict(limits)
        self.log = log
        self.stop = stop
        self._due: list[tuple[float, str]] = []  # (monotonic due, job id), a heap
        self._kick = asyncio.Event()
        self._waker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def admit(self, deliveries: list[Delivery]) -> list[Delivery]:
        """The jobs to start now; the others are parked (or let go)."""
        buckets: dict[str, tuple[RateLimit, list[tuple[Delivery, dict[str, Any]]]]] = {}
        now: list[Delivery] = []
        for delivery in deliveries:
            fields = _fields(delivery.raw)
            limit = None if fields is None else self.limits.get(fields.get("name"))  # type: ignore[arg-type]
            if fields is None or limit is None:
                now.append(delivery)  # unlimited, or a bad record the runner buries
                continue
            if fields.get(RESERVED) == (fields.get("attempts") or 0):
                now.append(delivery)  # its slot is now: it was parked until it
                continue
            key = fields.get(RATE_KEY)
            bucket = bucket_id(fields["name"], key if isinstance(key, str) else None)
            buckets.setdefault(bucket, (limit, []))[1].append((delivery, fields))
        if not buckets:
            return deliveries
        try:
            replies = await asyncio.gather(
                *(
                    self.broker.rate_admit(bucket, limit.interval, len(jobs))
                    for bucket, (limit, jobs) in buckets.items()
                )
            )
        except BrokerError as exc:
            # Not admitted: put back uncharged (a slot it may have reserved is lost).
            waiting = [d for _, jobs in buckets.values() for d, _ in jobs]
            self.log.warning("rate.admit_failed", error=str(exc), jobs=len(waiting))
            self._spawn(self._requeue(waiting))
            return now
        parks = []
        for (_, jobs), delays in zip(buckets.values(), replies, strict=True):
            for (delivery, fields), delay in zip(jobs, delays, strict=True):
                if delay <= EARLY:
                    now.append(delivery)
                else:
                    parks.append(self._park(delivery, fields, delay))
        if parks:
            started = await asyncio.gather(*parks)
            now += [d for d in started if d is not None]
        return now

    async def _park(
        self, delivery: Delivery, fields: dict[str, Any], delay: float
    ) -> Delivery | None:
        fields[RESERVED] = fields.get("attempts") or 0
        fields["status"] = "scheduled"
        fields["scheduled_for"] = iso_from_unix(time.time() + delay)
        record = JobRecord(fields).updated()
        try:
            parked = await self.broker.rate_park(delivery, record, delay, fields["name"])
        except CancelRequested:
            return delivery  # started: the cancel watch takes it out and settles it
        except BrokerError as exc:
            self.log.warning("rate.park_failed", job_id=delivery.id, error=str(exc))
            await self._requeue([delivery])
            return None
        if parked:
            self._wake_at(time.monotonic() + delay, delivery.id)
        return None

    async def _requeue(self, deliveries: list[Delivery]) -> None:
        with contextlib.suppress(BrokerError):
            if isinstance(self.broker, Broker):
                await self.broker.requeue(deliveries)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- waking parked jobs at their slot ---------------------------------
    def _wake_at(self, due: float, job_id: str) -> None:
        first = not self._due or due < self._due[0][0]
        heapq.heappush(self._due, (due, job_id))
        if self._waker is None or self._waker.done():
            self._waker = asyncio.create_task(self._wake_loop(), name="rate-wake")
        elif first:
            self._kick.set()

    async def _wake_loop(self) -> None:
        while self._due and not self.stop.is_set():
            wait = self._due[0][0] - time.monotonic()
            if wait > 0:
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    await until_stop(asyncio.wait_for(self._kick.wait(), wait), self.stop)
                continue
            limit = time.monotonic() + WAKE_SLACK
            ids = []
            while self._due and self._due[0][0] <= limit:
                ids.append(heapq.heappop(self._due)[1])
            try:
                await self.broker.rate_wake(ids)
            except BrokerError as exc:  # the scheduler moves them on its next tick
                self.log.warning("rate.wake_failed", error=str(exc), jobs=len(ids))

    async def close(self) -> None:
        tasks = [t for t in (self._waker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fields(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) and isinstance(fields.get("name"), str) else None


def admission_for(
    broker: Broker, handlers: Mapping[str, JobDefinition], log: EventLog, stop: asyncio.Event
) -> Admission | None:
    """The worker's admission when one of its job types has a rate limit."""
    limits = {n: d.rate_limit for n, d in handlers.items() if d.rate_limit is not None}
    if not limits or not isinstance(broker, RateLimits):
        return None
    return Admission(broker, limits, log, stop)


async def declare_limits(
    broker: Broker, handlers: Mapping[str, JobDefinition], types: tuple[str, ...]
) -> None:
    """Say which of this worker's job types are limited, and how (the views
    read it); a type whose limit was removed is cleared."""
    limits = {}
    for name in types:
        limit = handlers[name].rate_limit
        limits[name] = None if limit is None else limit.text
    await broker.declare_rate_limits(limits)


async def snooze(
    runner: JobRunner, delivery: Delivery, record: JobRecord, exc: RetryLater
) -> bool | None:
    """A handler raised RetryLater: schedule the job `exc.delay` from now
    with its attempts unchanged. None: settled (or refused); False: past
    MAX_SNOOZES, the caller charges it as a failed attempt; True: cancelled
    meanwhile, the caller settles it as cancelled."""
    snoozes = int(record.fields.get(SNOOZES) or 0)
    if snoozes >= MAX_SNOOZES:
        return False
    fields = record.fields
    fields.pop(RESERVED, None)  # the next run takes a new slot
    fields[SNOOZES] = snoozes + 1
    new_record = record.updated(
        status="scheduled", scheduled_for=iso_from_unix(time.time() + exc.delay)
    )
    broker = runner.broker

    async def park() -> bool:
        if isinstance(broker, RateLimits):
            return await broker.rate_park(delivery, new_record, exc.delay, None)
        return await broker.retry(delivery, new_record, exc.delay)  # testing mode's broker

    try:
        outcome = await runner._settle(delivery, park)
    except CancelRequested:
        return True
    runner.log.info(
        "job.retry_later",
        job_id=delivery.id,
        job_type=record.name,
        retry_in_s=round(exc.delay, 3),
        attempts=record.attempts,
        snoozes=snoozes + 1,
        outcome=outcome.value,
    )
    return None
