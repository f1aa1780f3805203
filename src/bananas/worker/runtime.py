"""The worker process: fetch loop, heartbeat, foreign-job routing, drain.

Shutdown order (SIGTERM/SIGINT): stop fetching and routing -> put prefetched
(never started) jobs back -> wait for in-flight jobs up to SHUTDOWN_TIMEOUT
(the heartbeat keeps their leases) ->
cancel what is left and put it back uncharged -> stop heartbeat and
maintenance -> log final figures -> exit 0. A second signal exits at once;
the leases then expire and the jobs come back on another worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ..app import Bananas
from ..brokers.base import Broker, Delivery, ForeignRouting, foreign_routing
from ..config import Settings
from ..errors import BrokerError
from ..logs import EventLog
from ..observe.metrics import BrokerSnapshot, WorkerMetrics
from ..observe.monitor import Monitor
from ..periodic import cancel_until_done
from ..scheduler import Maintenance
from .executors import Executors, Requeue
from .ordering import queue_orders
from .runner import JobRunner
from .stats import WorkerStats

if TYPE_CHECKING:
    from ..observe.health import HealthServer

IDLE_WAIT = 1.0  # seconds a blocking wait lasts before the loop looks again
FETCH_STALL = 15.0  # /livez fails when the fetch loop is this quiet with free slots
T = TypeVar("T")
# Seconds each stop step that waits on Redis may take: under the 5 s read
# timeout, because a frozen Redis makes one command take 4 x 5 s with retries.
SHUTDOWN_STEP = 3.0


def awaiting(task: asyncio.Future[Any]) -> str:
    """Where a task is suspended: its await chain, outermost first, as
    "file:function:line > ...", so a stuck step names the call it waits on."""
    where: list[str] = []
    node: Any = getattr(task, "get_coro", lambda: None)()
    while node is not None and len(where) < 20:
        frame = getattr(node, "cr_frame", None) or getattr(node, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            where.append(f"{os.path.basename(code.co_filename)}:{code.co_name}:{frame.f_lineno}")
        nxt = getattr(node, "cr_await", None) or getattr(node, "gi_yieldfrom", None)
        if nxt is None:
            where.append(type(node).__name__)
            break
        node = nxt
    return " > ".join(where)


class Worker:
    def __init__(
        self, app: Bananas, settings: Settings, log: EventLog, broker: Broker | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.log = log
        self.broker = broker or app.new_broker()
        self.pid = os.getpid()
        self.id = f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:6]}"
        self.concurrency = settings.concurrency
        self.stats = WorkerStats(concurrency=settings.concurrency)
        self.types = self._select_types()
        self.priorities = (
            ()
            if settings.mode == "scheduler-only"
            else (("high", "normal", "low") if settings.mode == "thin" else settings.priorities)
        )
        self._orders = queue_orders(
            self.priorities, self.types, settings.priority_policy, dict(settings.priority_weights)
        )
        self._order_cycle = itertools.cycle(self._orders) if self._orders else None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Slots: a job holds one while it executes, not while its ack is in
        # flight, so the next dequeue rides in the same pipeline as the acks.
        self._executing: set[str] = set()
        # Prefetch: jobs leased ahead of a free slot, so a slot that frees starts
        # the next job at once while the refill rides with the acks.
        self._buffer: collections.deque[Delivery] = collections.deque()
        self._capacity = settings.concurrency + settings.prefetch
        self._deliveries: dict[str, Delivery] = {}
        self._to_requeue: list[Delivery] = []
        self._slot_free = asyncio.Event()
        self._stop = asyncio.Event()
        self._seq = itertools.count()
        self.state = "starting"
        self.broker_ok = False
        self.executors = Executors(self.concurrency)
        self.runner = JobRunner(
            app.handlers,
            self.broker,
            settings,
            self.executors,
            log,
            self.stats,
            release_slot=self._release_slot,
        )
        self.maintenance = Maintenance(
            self.broker,
            settings,
            log,
            self.stats,
            app=app,
            schedule=settings.enable_scheduler,
            recover=True,
        )
        self._signals = 0
        self.drain_started: float | None = None
        self.drain_duration = 0.0
        self.last_fetch = time.monotonic()
        self.utilization = 0.0
        self.error_rate = 0.0
        self.snapshot = BrokerSnapshot()
        self.metrics = WorkerMetrics(self)
        self.monitor = Monitor(self)
        self.health: HealthServer | None = None

    def _select_types(self) -> tuple[str, ...]:
        if self.settings.mode == "scheduler-only":
            return ()
        if self.settings.job_types:
            return tuple(t for t in self.settings.job_types if t in self.app.handlers)
        return tuple(sorted(self.app.handlers))

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- lifecycle ----------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.log.context = {"worker_id": self.id}
        self._start_health()
        self.monitor.start()
        await self._connect()
        if self._stop.is_set():
            return await self._shutdown([], [])
        self.log.lifecycle(
            "worker.started",
            mode=self.settings.mode,
            group=self.settings.group_id,
            concurrency=self.concurrency,
            priorities=list(self.priorities),
            job_types=list(self.types),
            scheduler=self.settings.enable_scheduler,
            broker=self.broker.describe(),
            pid=self.pid,
            health_port=self.health.port if self.health else None,
        )
        await self._startup_checks()
        self.state = "running"
        background = [
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._flush_loop(), name="log-flush"),
        ]
        self.maintenance.start()
        fetchers: list[asyncio.Task[None]] = []
        if self.types:
            fetchers.append(asyncio.create_task(self._fetch_loop(), name="fetch"))
            router = foreign_routing(self.broker)
            if router is not None:
                fetchers += [
                    asyncio.create_task(self._foreign_loop(router, p), name=f"route-{p}")
                    for p in self.priorities
                ]
        await self._stop.wait()
        await self._drain(fetchers)
        return await self._shutdown(background, fetchers)

    async def _shutdown(
        self, background: list[asyncio.Task[None]], fetchers: list[asyncio.Task[None]]
    ) -> int:
        """Stop order: (fetchers already drained) heartbeat -> maintenance ->
        monitor (deregisters) -> executors -> broker -> health server.

        The jobs are settled or put back by now; what is left is clean-up, so
        each step gets SHUTDOWN_STEP seconds and a stuck one is logged (with
        where it waits) and left behind: the process exits either way."""
        await self._bounded("background", cancel_until_done(background))
        await self._bounded("maintenance", self.maintenance.stop())
        await self._bounded("monitor", self.monitor.stop())
        self.executors.shutdown()
        await self._bounded("broker", self.broker.close())
        if self.health is not None:
            self.health.stop()
        self.log.lifecycle(
            "worker.stopped",
            jobs_completed=self.stats.completed,
            jobs_failed=self.stats.failed,
            jobs_rejected=self.stats.rejected,
            uptime_s=round(time.time() - self.stats.started_at, 3),
        )
        self.log.flush()
        return 0

    async def _bounded(self, step: str, awaitable: Awaitable[T]) -> T | None:
        """Await one step of the stop, at most SHUTDOWN_STEP seconds: a Redis
        that stopped answering (or a bug) must not keep a drained process alive."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_STEP)
        if not done:
            self.log.error(
                "worker.shutdown_stuck",
                step=step,
                waited_s=SHUTDOWN_STEP,
                waiting_in=awaiting(task),
                detail="left behind; leased jobs it held come back when their lease expires",
            )
            task.cancel()
            return None
        try:
            return task.result()
        except Exception as exc:  # clean-up must not turn a drained exit into a crash
            self.log.warning(
                "worker.shutdown_error", step=step, error=f"{type(exc).__name__}: {exc}"
            )
            return None

    def request_stop(self) -> None:
        self._stop.set()

    def _start_health(self) -> None:
        if self.settings.health_port == 0:
            return
        # Imported only when serving: uvicorn and Starlette are a third of start-up.
        from ..observe.health import HealthServer

        server = HealthServer(self, self.settings.health_host, self.settings.health_port)
        error = server.start()
        if error is None:
            self.health = server
        else:
            self.log.error(
                "health.unavailable",
                error=error,
                detail="set HEALTH_PORT to a free port, or 0 to disable",
            )

    async def _startup_checks(self) -> None:
        try:
            warnings = await self.broker.durability_warnings()
        except BrokerError as exc:
            warnings = [f"could not read the broker's persistence settings: {exc}"]
        for warning in warnings:
            self.log.warning("broker.durability", detail=warning)

    # -- health -------------------------------------------------------------
    def liveness_problems(self) -> list[str]:
        now = time.monotonic()
        stall = self.settings.liveness_loop_stall
        problems = []
        lag = now - self.monitor.last_tick
        if lag > stall:
            problems.append(f"event loop blocked for {lag:.1f}s (LIVENESS_LOOP_STALL={stall:g}s)")
        idle = now - self.last_fetch
        if (
            self.state == "running"
            and self.types
            and self.in_flight < self.concurrency
            and idle > max(stall, FETCH_STALL)
        ):
            problems.append(f"fetch loop made no progress for {idle:.1f}s with free slots")
        return problems

    def readiness_problems(self) -> list[str]:
        problems = []
        if self.state != "running":
            problems.append(f"worker is {self.state}")
        if not self.broker_ok:
            problems.append("broker unreachable")
        if not self.types and self.settings.mode != "scheduler-only":
            problems.append("no job handlers registered")
        return problems

    def drain_status(self) -> dict[str, Any]:
        elapsed = None
        if self.drain_started is not None:
            elapsed = round(time.monotonic() - self.drain_started, 3)
        return {
            "state": self.state,
            "draining": self.state == "draining",
            "in_flight": self.in_flight,
            "drain_elapsed_s": elapsed,
            "shutdown_timeout_s": self.settings.shutdown_timeout,
        }

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals > 1:
            self.log.warning(
                "worker.forced_exit",
                signal=signal.Signals(sig).name,
                in_flight=self.in_flight,
                detail="jobs in flight come back after lease expiry",
            )
            self.log.flush()
            os._exit(1)
        self.log.lifecycle(
            "worker.draining",
            signal=signal.Signals(sig).name,
            in_flight=self.in_flight,
            shutdown_timeout_s=self.settings.shutdown_timeout,
        )
        if self.state in ("running", "starting"):
            self.state = "draining"
            self.drain_started = time.monotonic()
        self._stop.set()

    async def _connect(self) -> None:
        """Wait for the broker (with back-off) and register the job types."""
        pause = 0.1
        while not self._stop.is_set():
            try:
                await self.broker.ping()
                router = foreign_routing(self.broker)
                if router is not None:
                    await router.register_types(self.types)
                self.broker_ok = True
                return
            except BrokerError as exc:
                self.log.warning("broker.unreachable", error=str(exc), retry_in_s=pause)
                await self._until_stop(asyncio.sleep(pause))
                pause = min(pause * 2, 5.0)

    # -- fetching -----------------------------------------------------------
    async def _fetch_loop(self) -> None:
        assert self._order_cycle is not None
        lease = self.settings.lease_timeout
        pause = 0.1
        while not self._stop.is_set():
            self.last_fetch = time.monotonic()
            want = self._capacity - len(self._executing) - len(self._buffer)
            if want <= 0:
                self._slot_free.clear()
                await self._until_stop(self._slot_free.wait())
                continue
            order = next(self._order_cycle)
            try:
                deliveries = await self.broker.dequeue(
                    order, want, lease, f"{self.id}:{next(self._seq)}:"
                )
                if not deliveries:
                    await self._until_stop(self.broker.wait_for_jobs(order, IDLE_WAIT))
                    continue
            except BrokerError as exc:
                self.broker_ok = False
                self.log.warning("broker.unreachable", error=str(exc), retry_in_s=pause)
                await self._until_stop(asyncio.sleep(pause))
                pause = min(pause * 2, 5.0)
                continue
            self.broker_ok, pause = True, 0.1
            for delivery in deliveries:
                self._deliveries[delivery.id] = delivery  # leased: the heartbeat covers it
                self._buffer.append(delivery)
            self._fill_slots()

    def _fill_slots(self) -> None:
        """Start buffered jobs in the free slots: no round trip between jobs."""
        while self._buffer and len(self._executing) < self.concurrency:
            if self._stop.is_set():
                return
            self._start(self._buffer.popleft())

    def _release_slot(self, delivery: Delivery) -> None:
        if delivery.id in self._executing:
            self._executing.discard(delivery.id)
            self._fill_slots()
            self._slot_free.set()

    def _start(self, delivery: Delivery) -> None:
        self._executing.add(delivery.id)
        self._tasks[delivery.id] = asyncio.create_task(self._job(delivery))

    async def _job(self, delivery: Delivery) -> None:
        self.stats.begin(delivery.id)
        try:
            await self.runner.run(delivery)
        except asyncio.CancelledError:
            self._to_requeue.append(delivery)
        except Requeue as exc:
            self.log.info("job.requeued", job_id=delivery.id, reason=str(exc))
            with contextlib.suppress(BrokerError):
                await self.broker.requeue([delivery])
        except BrokerError as exc:
            self.log.error(
                "job.broker_error",
                job_id=delivery.id,
                error=str(exc),
                detail="the job comes back after its lease expires",
            )
        except Exception as exc:  # a bug in Bananas itself; never take the worker down
            self.log.error(
                "job.internal_error", job_id=delivery.id, error=f"{type(exc).__name__}: {exc}"
            )
        finally:
            self.stats.end(delivery.id)
            self._release_slot(delivery)
            del self._tasks[delivery.id]
            del self._deliveries[delivery.id]

    async def _foreign_loop(self, router: ForeignRouting, priority: str) -> None:
        """Route jobs SDK clients pushed onto the plain priority list."""
        pause = 0.1
        while not self._stop.is_set():
            try:
                await self._until_stop(router.pump_foreign(priority, 2.0))
                pause = 0.1
            except BrokerError as exc:
                self.log.debug("route.error", priority=priority, error=str(exc))
                await self._until_stop(asyncio.sleep(pause))
                pause = min(pause * 2, 5.0)

    async def _heartbeat_loop(self) -> None:
        period = self.settings.lease_timeout / 3
        while True:
            await asyncio.sleep(period)
            leases = [(d.id, d.token) for d in self._deliveries.values()]
            if not leases:
                continue
            try:
                lost = await self.broker.extend_leases(leases, self.settings.lease_timeout)
                self.broker_ok = True
            except BrokerError as exc:
                self.broker_ok = False
                self.log.warning("heartbeat.failed", error=str(exc))
                continue
            for job_id in lost:
                # A job acked while the heartbeat was in flight is not a lost lease.
                delivery = self._deliveries.get(job_id)
                if delivery is not None and not delivery.settling:
                    self.log.warning(
                        "job.lease_lost",
                        job_id=job_id,
                        detail="lease expired before the heartbeat; the job may run twice",
                    )

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.log.flush()

    async def _until_stop(self, awaitable: Awaitable[Any]) -> None:
        """Await `awaitable`, abandoning it if a stop is requested first."""
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, BrokerError):
                    await task
        if task.done() and not task.cancelled():
            task.result()

    # -- drain ----------------------------------------------------------------
    async def _drain(self, fetchers: list[asyncio.Task[None]]) -> None:
        self.state = "draining"
        if self.drain_started is None:
            self.drain_started = time.monotonic()
        # A dequeue in flight finishes (its jobs join the buffer and go back
        # below) unless Redis stopped answering; then its jobs, if leased, come
        # back by lease expiry.
        await self._bounded("fetchers", asyncio.gather(*fetchers, return_exceptions=True))
        # Prefetched jobs never started: back to their queue at once, uncharged.
        while self._buffer:
            delivery = self._buffer.popleft()
            del self._deliveries[delivery.id]
            self._to_requeue.append(delivery)
        running = list(self._tasks.values())
        in_flight_at_start = len(running)
        if running:
            await asyncio.wait(running, timeout=self.settings.shutdown_timeout)
        leftover = [t for t in running if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=5.0)
        # A handler that ignores cancellation: its job goes back like the others
        # and the process leaves without it (the CLI exits past such tasks).
        abandoned = [job_id for job_id, task in self._tasks.items() if not task.done()]
        for job_id in abandoned:
            self.log.warning(
                "job.abandoned",
                job_id=job_id,
                detail="its handler did not stop when cancelled; put back, run again elsewhere",
            )
            self._to_requeue.append(self._deliveries[job_id])
        put_back = 0
        if self._to_requeue:
            put_back = await self._bounded("requeue", self._put_back(self._to_requeue)) or 0
        self.stats.requeued += put_back
        self.drain_duration = time.monotonic() - self.drain_started
        self.state = "stopped"
        self.log.lifecycle(
            "worker.drained",
            drain_s=round(time.monotonic() - self.drain_started, 3),
            finished_during_drain=in_flight_at_start - len(leftover),
            put_back=put_back,
            abandoned=len(abandoned),
        )

    async def _put_back(self, deliveries: list[Delivery]) -> int:
        try:
            return await self.broker.requeue(deliveries)
        except BrokerError as exc:
            self.log.error(
                "drain.requeue_failed",
                error=str(exc),
                detail="the jobs come back after their lease expires",
            )
            return 0
