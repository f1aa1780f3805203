"""The fetcher: leases jobs into a prefetch buffer and starts them in free slots.

Slots: a job holds one while it executes, not while its ack is in flight, so
the next dequeue rides in the same pipeline as the acks. Prefetch: jobs are
leased ahead of a free slot (up to concurrency + prefetch), so a slot that
frees starts the next job at once while the refill rides with the acks.

Every leased job (buffered, executing or settling) is in `leased`, which the
lease heartbeat reads. The drain takes the buffer back with
`take_prefetched()`, waits on `running()`, and puts back what `cancelled`
and `unfinished()` hold.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..brokers.base import Broker, Delivery
from ..errors import BrokerError, BrokerRefusesWrites
from ..logs import EventLog
from ..loops import until_stop
from ..observe.stats import WorkerStats
from ..observe.status import BrokerLink
from .executors import Requeue
from .ordering import FetchOrders

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

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        if self.p.orders:
            self._loop = asyncio.create_task(self._fetch_loop(), name="fetch")

    async def stop(self) -> None:
        """Stop taking jobs. A dequeue in flight finishes (its jobs join the
        buffer, which the drain puts back); running jobs are left alone."""
        self.p.stop.set()
        if self._loop is not None:
            await asyncio.gather(self._loop, return_exceptions=True)

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
        pause = 0.1
        while not p.stop.is_set():
            self.last_fetch = time.monotonic()
            want = self._capacity - len(self._executing) - len(self._buffer)
            if want <= 0:
                self._slot_free.clear()
                await until_stop(self._slot_free.wait(), p.stop)
                continue
            order = next(orders)
            try:
                deliveries = await p.broker.dequeue(
                    order, want, p.lease_timeout, f"{p.token_prefix}:{next(self._seq)}:"
                )
                if p.link.refusing is not None and p.link.accepts():
                    p.log.info("broker.accepts_writes", detail="jobs are taken again")
                    self._fill_slots()
                if not deliveries:
                    await until_stop(p.broker.wait_for_jobs(order, IDLE_WAIT), p.stop)
                    continue
            except BrokerRefusesWrites as exc:  # a pause, not an outage: it answers
                if p.link.refuses(str(exc)):
                    p.log.warning("broker.refuses_writes", error=str(exc), detail=PAUSED)
                await until_stop(asyncio.sleep(1.0), p.stop)
                continue
            except BrokerError as exc:
                p.link.down()
                p.log.warning("broker.unreachable", error=str(exc), retry_in_s=pause)
                await until_stop(asyncio.sleep(pause), p.stop)
                pause = min(pause * 2, 5.0)
                continue
            p.link.up()
            pause = 0.1
            for delivery in deliveries:
                self.leased[delivery.id] = delivery  # leased: the heartbeat covers it
                self._buffer.append(delivery)
            self._fill_slots()

    def _fill_slots(self) -> None:
        """Start buffered jobs in the free slots: no round trip between jobs."""
        while self._buffer and len(self._executing) < self._concurrency:
            if self._stop.is_set() or self.p.link.refusing is not None:
                return  # stopping, or outcomes cannot be written: start nothing
            self._start(self._buffer.popleft())

    def release_slot(self, delivery: Delivery) -> None:
        """Free the job's slot (called as its outcome starts settling)."""
        if delivery.id in self._executing:
            self._executing.discard(delivery.id)
            self._fill_slots()
            self._slot_free.set()

    def _start(self, delivery: Delivery) -> None:
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
            self.release_slot(delivery)
            del self._tasks[delivery.id]
            del self.leased[delivery.id]
