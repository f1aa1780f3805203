"""The fetcher: leases jobs into a prefetch buffer and starts them in free slots.

Slots: a job holds one while it executes, not while its ack is in flight, so
the next dequeue rides in the same pipeline as the acks. Prefetch: jobs are
leased ahead of a free slot (up to concurrency + prefetch), so a slot that
frees starts the next job at once while the refill rides with the acks.

Every leased job (buffered, executing or settling) is in `leased`, which the
lease heartbeat reads. The drain takes the buffer back with
`take_prefetched()`, waits on `running()`, and puts back what `cancelled`
and `unfinished()` hold.

A buffered job starts only while its lease is surely still ours: its
`held_until` (the send time of the dequeue or of the last heartbeat that
extended it, plus the lease, on the monotonic clock, which keeps counting
while the process is frozen) is in the future and the heartbeat has not
reported it lost. Otherwise it is dropped (`job.dropped`) and released: a
worker resumed after SIGSTOP, or one whose loop stalled past the lease, must
not run jobs another worker has already settled.

Lost replies: a dequeue that fails is sent again with the same token prefix
(the next fetch, or once more at stop), and the broker answers a repeated
prefix with the jobs it leased then (Redis keeps each worker's last dequeue
for a lease), so a reply lost with the connection leaves no job leased to
nobody. Each dequeue says how many of its jobs start at once (the free
slots); the rest are leased as not started, and the heartbeat marks them
started when they start: the recoverer charges a stall only to a job that
started.

Idle: once a dequeue finds nothing, the next fetch is `wait_and_dequeue`,
which waits (IDLE_WAIT at most, a third of the lease if that is shorter)
and leases in one call (on Redis, one round trip: brokers/redis/wake.py).
stop() cancels it mid-wait; as it may have leased jobs by then, it stays
unanswered and is sent again at stop like a lost reply.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..brokers.base import Broker, Delivery, QueueRef
from ..errors import BrokerError, BrokerRefusesWrites
from ..logs import EventLog
from ..loops import RECANCEL_EVERY, until_stop
from ..observe.stats import WorkerStats
from ..observe.status import BrokerLink
from .executors import Requeue
from .ordering import FetchOrders
from .slots import SlotGate

PAUSED = "no job is taken or started until Redis accepts writes again"
IDLE_WAIT = 1.0  # seconds a blocking wait lasts before the loop looks again


@dataclass(frozen=True, slots=True)
class FetcherParams:
    broker: Broker
    log: EventLog
    stats: WorkerStats
    link: BrokerLink
    run: Callable[[Delivery], Awaitable[None]]  # runs one job to its settled outcome
    orders: FetchOrders  # the queue order of each fetch, made on demand
    concurrency: int
    prefetch: int
    lease_timeout: float
    token_prefix: str  # the worker id: lease tokens say whose they are
    stop: asyncio.Event  # the worker's stop flag: once set, no job is taken or started
    # An idle wait leases the job that ends it in the same call (one round
    # trip). False (--burst): wait, then dequeue, so that `dequeuing` is never
    # true while the fetcher only waits (the burst's emptiness check reads it).
    lease_on_wake: bool = True
    # Concurrency limits (worker/slots.py): None unless a type here has one.
    slots: SlotGate | None = None
    # Rate limits (worker/rates.py): the leased jobs to start now, the others
    # parked; None (no rate-limited type) costs nothing.
    admit: Callable[[list[Delivery]], Awaitable[list[Delivery]]] | None = None


class Fetcher:
    def __init__(self, params: FetcherParams) -> None:
        self.p = params
        self.leased: dict[str, Delivery] = {}
        self.cancelled: list[Delivery] = []  # cancelled mid-run: put back uncharged
        self.last_fetch = time.monotonic()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._executing: set[str] = set()
        self._buffer: collections.deque[Delivery] = collections.deque()
        self._capacity = params.concurrency + params.prefetch
        self._concurrency = params.concurrency  # read per job: one lookup, not two
        self._stop = params.stop
        self._slot_free = asyncio.Event()
        self._seq = itertools.count()
        self._loop: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()
        # A dequeue that failed: its token prefix and send time, sent again.
        self._unanswered: tuple[str, float] | None = None
        self._waiting = False  # the loop is in an idle wait (stop() cancels it)
        # A woken job's lease is dated from the wait's send (when the broker
        # ran the dequeue is not known here): a wait must leave most of it.
        self._idle_wait = min(IDLE_WAIT, params.lease_timeout / 3)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    @property
    def prefetched(self) -> int:
        """Jobs leased ahead of a free slot, not started (the broker counts them active)."""
        return len(self._buffer)

    @property
    def dequeuing(self) -> bool:
        """A dequeue is in flight (or failed and is to be sent again)."""
        return self._unanswered is not None

    def start(self) -> None:
        if self.p.orders:
            self._loop = asyncio.create_task(self._fetch_loop(), name="fetch")

    async def stop(self) -> None:
        """Stop taking jobs. A dequeue in flight finishes (its jobs join the
        buffer, which the drain puts back); running jobs are left alone."""
        self.p.stop.set()
        loop = self._loop
        while loop is not None and not loop.done():
            if self._waiting:  # again until it ends: a cancel may be swallowed (loops.py)
                loop.cancel()
            await asyncio.wait([loop], timeout=RECANCEL_EVERY)
        if loop is not None:
            await asyncio.gather(loop, return_exceptions=True)
        if self._unanswered is not None and self.p.orders:
            # Its jobs (if it was applied) join the buffer the drain puts back.
            with contextlib.suppress(BrokerError):
                # A repeated prefix is answered from the broker's record of the
                # call, whatever queues are named; count 0 leases nothing new.
                self._take(await self._dequeue(next(self.p.orders), 0))

    # -- the drain's view -------------------------------------------------
    def take_prefetched(self) -> list[Delivery]:
        """Empty the buffer: leased jobs that never started."""
        taken = list(self._buffer)
        self._buffer.clear()
        for delivery in taken:
            del self.leased[delivery.id]
        return taken

    def running(self) -> list[asyncio.Task[None]]:
        return list(self._tasks.values())

    def unfinished(self) -> list[Delivery]:
        """Jobs whose task is still alive (a handler that ignored its cancel)."""
        return [self.leased[job_id] for job_id, task in self._tasks.items() if not task.done()]

    # -- fetching -----------------------------------------------------------
    async def _fetch_loop(self) -> None:
        p = self.p
        orders = p.orders
        # A dropped connection is replaced by the next call: the first retry goes
        # at once, repeated failures back off (Redis down).
        pause = 0.0
        idle = False  # the last dequeue found nothing: the next one waits first
        while not p.stop.is_set():
            self.last_fetch = time.monotonic()
            want = self._capacity - len(self._executing) - len(self._buffer)
            if want <= 0:
                self._slot_free.clear()
                await until_stop(self._slot_free.wait(), p.stop)
                continue
            order = next(orders)
            try:
                if idle and not p.lease_on_wake:
                    await until_stop(p.broker.wait_for_jobs(order, IDLE_WAIT), p.stop)
                    idle = False
                    continue
                woken = idle
                if idle:  # one round trip from the wake-up to the leased jobs
                    deliveries = await self._wait_and_dequeue(order, want)
                else:
                    deliveries = await self._dequeue(order, want)
                if p.link.refusing is not None and p.link.accepts():
                    p.log.info("broker.accepts_writes", detail="jobs are taken again")
                    self._fill_slots()
                # A wake-up's dequeue named every list of the order: fewer jobs
                # than asked means they are empty now, so the next fetch waits
                # (a job pushed since left a marker: the wait returns at once).
                idle = not deliveries or (woken and len(deliveries) < want)
                if not deliveries:
                    continue
            except BrokerRefusesWrites as exc:  # a pause, not an outage: it answers
                idle = False
                if p.link.refuses(str(exc)):
                    p.log.warning("broker.refuses_writes", error=str(exc), detail=PAUSED)
                await until_stop(asyncio.sleep(1.0), p.stop)
                continue
            except BrokerError as exc:
                # Sent again at once without a wait: if the lost reply leased
                # jobs, the broker hands them back to the same token prefix.
                idle = False
                p.link.down()
                p.log.warning("broker.unreachable", error=str(exc), retry_in_s=pause)
                await until_stop(asyncio.sleep(pause), p.stop)
                pause = min(max(pause * 2, 0.05), 5.0)
                continue
            p.link.up()
            pause = 0.0
            if p.admit is not None:
                deliveries = await p.admit(deliveries)
            if p.slots is not None:  # limited types: only those with a slot start
                deliveries = await p.slots.admit(deliveries)
            self._take(deliveries)
            self._fill_slots()
            if woken:
                # The woken jobs start before the next dequeue is built, and
                # that dequeue then rides in the pipeline of their acks.
                await asyncio.sleep(0)

    async def _wait_and_dequeue(self, order: Sequence[QueueRef], want: int) -> list[Delivery]:
        """The idle fetch, awaited in the loop's own task (not through
        until_stop: a task per wait is one more loop turn between the reply
        and the job's start); stop() cancels it."""
        self._waiting = True
        try:
            return await self._dequeue(order, want, self._idle_wait)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or not self.p.stop.is_set():
                raise
            task.uncancel()  # our stop's cancel: the loop ends on the flag
            return []  # unanswered: stop() sends it again
        finally:
            self._waiting = False

    async def _dequeue(
        self, order: Sequence[QueueRef], want: int, wait: float = 0.0
    ) -> list[Delivery]:
        """One dequeue, after waiting up to `wait` seconds for a job; a failed
        or abandoned one is sent again with its token prefix."""
        p = self.p
        prefix, sent = self._unanswered or (f"{p.token_prefix}:{next(self._seq)}:", 0.0)
        sent = sent or time.monotonic()
        # The jobs that start at once are marked started; the rest wait in the buffer.
        start = max(0, self._concurrency - len(self._executing) - len(self._buffer))
        self._unanswered = (prefix, sent)
        if wait:
            deliveries = await p.broker.wait_and_dequeue(
                order, wait, want, p.lease_timeout, prefix, start
            )
        else:
            deliveries = await p.broker.dequeue(order, want, p.lease_timeout, prefix, start)
        self._unanswered = None
        held_until = sent + p.lease_timeout
        for delivery in deliveries:
            delivery.held_until = held_until
        return deliveries

    def _take(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            if delivery.id not in self.leased:
                self.leased[delivery.id] = delivery  # leased: the heartbeat covers it
                self._buffer.append(delivery)

    def _fill_slots(self) -> None:
        """Start buffered jobs in the free slots: no round trip between jobs."""
        if not self._buffer:
            return
        dropped: list[Delivery] = []
        now = time.monotonic()  # one clock read per call, not per job
        while self._buffer and len(self._executing) < self._concurrency:
            if self._stop.is_set() or self.p.link.refusing is not None:
                break  # stopping, or outcomes cannot be written: start nothing
            delivery = self._buffer.popleft()
            if delivery.held_until <= now:
                dropped.append(delivery)
                continue
            self._start(delivery)
        if dropped:
            self._drop(dropped)

    def _drop(self, deliveries: list[Delivery]) -> None:
        """Let go of buffered jobs whose lease is gone: never started, so never
        run; put back uncharged if the lease turns out to be ours still."""
        for delivery in deliveries:
            del self.leased[delivery.id]
            self.p.log.warning(
                "job.dropped",
                job_id=delivery.id,
                detail="lease expired before the job started (worker frozen or stalled); not run",
            )
        task = asyncio.create_task(self._release(deliveries))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, deliveries: list[Delivery]) -> None:
        with contextlib.suppress(BrokerError):
            await self.p.broker.requeue(deliveries)

    def cancel(self, delivery: Delivery, by_task: bool) -> Delivery | None:
        """Stop a job someone cancelled (worker/cancels.py; its
        `cancel_requested` is set). Running: its task is cancelled when
        `by_task` (async and process handlers; a thread handler polls the
        flag). Still in the buffer: taken out, never started, and returned
        for the caller to settle as cancelled."""
        if not delivery.started:
            try:
                self._buffer.remove(delivery)
            except ValueError:
                return None
            del self.leased[delivery.id]
            return delivery
        task = self._tasks.get(delivery.id)
        if by_task and task is not None and not delivery.settling:
            task.cancel()
        return None

    def release_slot(self, delivery: Delivery) -> None:
        """Free the job's slot (called as its outcome starts settling)."""
        if delivery.id in self._executing:
            self._executing.discard(delivery.id)
            self._fill_slots()
            self._slot_free.set()

    def _start(self, delivery: Delivery) -> None:
        delivery.started = True
        self._executing.add(delivery.id)
        self._tasks[delivery.id] = asyncio.create_task(self._job(delivery))

    async def _job(self, delivery: Delivery) -> None:
        p = self.p
        p.stats.begin(delivery.id)
        try:
            await p.run(delivery)
        except asyncio.CancelledError:
            self.cancelled.append(delivery)
        except Requeue as exc:
            p.log.info("job.requeued", job_id=delivery.id, reason=str(exc))
            with contextlib.suppress(BrokerError):
                await p.broker.requeue([delivery])
        except BrokerError as exc:
            p.log.error(
                "job.broker_error",
                job_id=delivery.id,
                error=str(exc),
                detail="the job comes back after its lease expires",
            )
        except Exception as exc:  # a bug in Bananas itself; never take the worker down
            p.log.error(
                "job.internal_error", job_id=delivery.id, error=f"{type(exc).__name__}: {exc}"
            )
        finally:
            p.stats.end(delivery.id)
            if p.slots is not None:
                p.slots.release(delivery)
            self.release_slot(delivery)
            del self._tasks[delivery.id]
            del self.leased[delivery.id]
