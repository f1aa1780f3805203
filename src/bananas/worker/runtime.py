"""The worker process: builds its parts, runs them, drains, stops them in order.

Parts. Each has start() / async stop() and gets a small params object (never
the Worker); the runtime alone owns the worker's state and builds its status
snapshot (`status()`) from the parts' read-only fields.

  fetcher      worker/fetcher.py      prefetch buffer, slots, fetch loop, job tasks
  leases       worker/leases.py       heartbeat of the leases the fetcher holds
  cancels      worker/cancels.py      stops the jobs someone cancelled
  router       worker/router.py       foreign-record routing (optional)
  maintenance  worker/maintenance.py  lease recoverer, due jobs, cron firings
  monitor      observe/monitor.py     loop ticker, broker snapshot, registry
                                      heartbeat, metrics log, log flush
  health       observe/health.py      /livez /readyz /drainz /metrics thread
                                      (optional)
  burst        worker/burst.py        only with --burst: stops the worker once the
                                      queues it serves are empty
The optional parts (hooks, router, burst, health) are built in features.py,
only when their feature is on; each is None otherwise.
Helpers (no loop of their own): runner.py runs one job, drain.py is the
drain's job side, checks.py the start-up checks, shutdown.py bounds a stop
step; observe/status.py holds the status snapshot and identity types.

Start order: health -> monitor -> connect (broker ping, register job types)
-> start-up checks (clock skew, durability) -> leases -> maintenance ->
fetcher -> router -> burst.

Stop order (SIGTERM / SIGINT, or request_stop()); each step begins once the
one before has ended:
  1. fetcher, router, burst: stop fetching and routing (a dequeue in flight
     finishes; its jobs join the buffer)
  2. put the prefetched (never started) jobs back, uncharged
  3. wait for in-flight jobs up to SHUTDOWN_TIMEOUT; the leases part keeps
     extending their leases meanwhile
  4. cancel what is left, wait 5 s, put it back uncharged (with any job whose
     handler ignored the cancel) -> `worker.drained`
  5. leases (nothing is held any more)
  6. maintenance
  7. monitor (leaves the registry)
  8. executors (thread / process pools)
  9. broker connections
 10. health server -> `worker.stopped`, exit 0
Every step that waits on the broker (1, 2, 4's put-back, 5-7, 9) is bounded
by SHUTDOWN_STEP and logged as `worker.shutdown_stuck` when it overruns. A
second signal exits at once (status 1); the leases then expire and the jobs
come back on another worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from typing import TYPE_CHECKING

from ..app import Bananas
from ..brokers.base import Broker, foreign_routing
from ..config import Settings
from ..errors import BrokerError, BrokerIncompatible, ConfigError
from ..logs import EventLog
from ..loops import until_stop
from ..observe.metrics import WorkerMetrics
from ..observe.monitor import Monitor, MonitorParams
from ..observe.stats import WorkerStats
from ..observe.status import BrokerLink, WorkerIdentity, WorkerState, WorkerStatus
from ..vocabulary import Mode
from .cancels import CancelWatch
from .checks import check_access, startup_checks, watch_keyspace
from .drain import drain_jobs
from .executors import Executors
from .features import burst_for, router_for, start_health, worker_hooks
from .fetcher import Fetcher, FetcherParams
from .leases import Leases, LeasesParams
from .maintenance import Maintenance, MaintenanceParams
from .ordering import FetchOrders, served_priorities, served_types
from .rates import admission_for, declare_limits
from .runner import JobRunner
from .shutdown import bounded
from .slots import slot_gate_for

if TYPE_CHECKING:
    from ..observe.health import HealthServer


class Worker:
    def __init__(
        self, app: Bananas, settings: Settings, log: EventLog, broker: Broker | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.log = log
        self.broker = broker or app.new_broker()
        self.mode = Mode(settings.mode)
        self.pid = os.getpid()
        self.id = f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:6]}"
        self.concurrency = settings.concurrency
        self.stats = WorkerStats(concurrency=settings.concurrency)
        self.types = served_types(self.mode, settings.job_types, app.handlers)
        self.priorities = served_priorities(self.mode, settings.priorities)
        self.identity = WorkerIdentity(
            id=self.id,
            pid=self.pid,
            mode=self.mode,
            group=settings.group_id,
            priorities=self.priorities,
            job_types=self.types,
            concurrency=self.concurrency,
            scheduler=settings.enable_scheduler,
            routes=settings.routing_keys,
        )
        self._stop = asyncio.Event()
        self._state = WorkerState.STARTING
        self._signals = 0
        self._drain_started: float | None = None
        self._drain_duration = 0.0
        self.link = BrokerLink()
        self.executors = Executors(self.concurrency)
        self.runner = JobRunner(
            app.handlers, self.broker, settings, self.executors, log, self.stats
        )
        self.admission = admission_for(self.broker, app.handlers, log, self._stop)
        self.slots = slot_gate_for(
            self.broker, app.handlers, self.types, settings.lease_timeout, log
        )
        self.fetcher = Fetcher(self._fetcher_params())
        if self.slots is not None:
            self.slots.leased = self.fetcher.leased  # its heartbeat reads them
        # The runner frees a job's slot as its outcome starts settling, so the
        # next job starts while the ack is in flight; the slots are the fetcher's.
        self.runner.release_slot = self.fetcher.release_slot
        self.runner.link = self.link
        self.hooks = worker_hooks(app, log, self.id, self.runner)
        watch_keyspace(self.broker, log)
        self.leases = Leases(
            LeasesParams(self.broker, log, self.link, settings.lease_timeout, self.fetcher.leased)
        )
        self.cancels = CancelWatch(self.broker, log, self.fetcher, self.runner)
        self.router = router_for(
            self.broker, log, self.priorities, self.types, self._stop, settings.routing_keys
        )
        self.maintenance = Maintenance(
            MaintenanceParams(
                self.broker,
                log,
                self.stats,
                app,
                schedule=settings.enable_scheduler,
                recover=True,
                scheduler_interval=settings.scheduler_interval,
                lease_timeout=settings.lease_timeout,
                max_stalls=settings.max_stalls,
            )
        )
        self.monitor = Monitor(
            MonitorParams(
                self.broker,
                log,
                self.stats,
                self.link,
                self.identity,
                self.status,
                registry_heartbeat=settings.registry_heartbeat,
                metrics_log_interval=settings.metrics_log_interval,
                limits=self.slots is not None,
                rates=self.admission is not None,
            )
        )
        self.metrics = WorkerMetrics(self.stats, self.status, self.identity)
        self.health: HealthServer | None = None
        self.burst = burst_for(
            settings,
            self.broker,
            log,
            self.stats,
            self.fetcher,
            self.priorities,
            self.types,
            routing=self.router is not None,
            stop=self._stop,
            on_empty=self.request_stop,
        )

    def _fetcher_params(self) -> FetcherParams:
        s = self.settings
        orders = FetchOrders(
            self.priorities,
            self.types,
            s.priority_policy,
            dict(s.priority_weights),
            s.routing_keys,
        )
        return FetcherParams(
            broker=self.broker,
            log=self.log,
            stats=self.stats,
            link=self.link,
            run=self.runner.run,
            orders=orders,
            concurrency=s.concurrency,
            prefetch=s.prefetch,
            lease_timeout=s.lease_timeout,
            token_prefix=self.id,
            stop=self._stop,
            lease_on_wake=not s.burst,
            slots=self.slots,
            admit=None if self.admission is None else self.admission.admit,
        )

    # -- what others read ---------------------------------------------------
    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def in_flight(self) -> int:
        return self.fetcher.in_flight

    def status(self) -> WorkerStatus:
        """A snapshot of how this worker is doing (health, metrics, registry).
        Safe to call from the health thread: it only reads."""
        started = self._drain_started
        return WorkerStatus(
            state=self._state,
            in_flight=self.fetcher.in_flight,
            prefetched=self.fetcher.prefetched,
            concurrency=self.concurrency,
            fetching=bool(self.types),
            takes_jobs=self.mode.takes_jobs,
            broker_ok=self.link.ok,
            utilization=self.monitor.utilization,
            error_rate=self.monitor.error_rate,
            drain_elapsed_s=None if started is None else round(time.monotonic() - started, 3),
            drain_duration_s=self._drain_duration,
            shutdown_timeout_s=self.settings.shutdown_timeout,
            last_fetch=self.fetcher.last_fetch,
            last_tick=self.monitor.last_tick,
            snapshot=self.monitor.snapshot,
            writes_refused=self.link.refusing,
            threads_stuck=self.executors.threads_stuck,
            threads_total=self.executors.thread_count,
        )

    def request_stop(self) -> None:
        self._stop.set()

    # -- lifecycle ----------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.runner.progress.bind(loop)  # handlers in threads report progress to this loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.log.context = {"worker_id": self.id}
        self.health = start_health(self.settings, self.status, self.metrics.exposition, self.log)
        self.monitor.start()
        try:
            await self._connect()
        except ConfigError as exc:  # the broker's user lacks a permission
            self.log.error("worker.refused", error=str(exc))
            self._stop.set()
            await self._stop_parts()
            return 2
        if self._stop.is_set():
            return await self._stop_parts()
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
        await startup_checks(self.broker, self.log)
        if self.hooks is not None:
            self.hooks.emit("on_worker_start", self.identity)
        self._state = WorkerState.RUNNING
        self.leases.start()
        if self.slots is not None:
            self.slots.start()
        self.cancels.start()
        self.maintenance.start()
        self.fetcher.start()
        if self.router is not None:
            self.router.start()
        if self.burst is not None:
            self.burst.start()
        await self._stop.wait()
        await self._drain()
        if self.hooks is not None:
            self.hooks.emit("on_worker_stop", self.identity)
        return await self._stop_parts()

    async def _stop_parts(self) -> int:
        """Steps 5-10 of the stop order. The jobs are settled or put back by
        now; what is left is clean-up, so a stuck step is left behind."""
        log = self.log
        await bounded(log, "cancels", self.cancels.stop())
        await bounded(log, "leases", self.leases.stop())
        if self.slots is not None:
            await bounded(log, "slots", self.slots.stop())
        await bounded(log, "maintenance", self.maintenance.stop())
        if self.admission is not None:
            await bounded(log, "rates", self.admission.close())
        await bounded(log, "monitor", self.monitor.stop())
        self.executors.shutdown()
        await bounded(log, "broker", self.broker.close())
        if self.health is not None:
            self.health.stop()
        log.lifecycle(
            "worker.stopped",
            jobs_completed=self.stats.completed,
            jobs_failed=self.stats.failed,
            jobs_rejected=self.stats.rejected,
            uptime_s=round(self.stats.uptime(), 3),
            log_lines_dropped=log.dropped,
        )
        log.flush()
        return 0

    async def _connect(self) -> None:
        """Wait for the broker (with back-off) and register the job types."""
        pause = 0.1
        while not self._stop.is_set():
            try:
                await self.broker.ping()
                await check_access(self.broker)
                routing = foreign_routing(self.broker)
                if routing is not None:
                    await routing.register_types(self.types)
                if self.types:  # what the views show as limits (rates.py)
                    await declare_limits(self.broker, self.app.handlers, self.types)
                self.link.up()
                return
            except BrokerIncompatible:
                raise  # retrying cannot help: the worker exits 2 (cli/worker.py)
            except BrokerError as exc:
                self.log.warning("broker.unreachable", error=str(exc), retry_in_s=pause)
                await until_stop(asyncio.sleep(pause), self._stop)
                pause = min(pause * 2, 5.0)

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
        if self._state in (WorkerState.RUNNING, WorkerState.STARTING):
            self._begin_drain()
        self._stop.set()

    def _begin_drain(self) -> None:
        self._state = WorkerState.DRAINING
        if self._drain_started is None:
            self._drain_started = time.monotonic()

    # -- drain ----------------------------------------------------------------
    async def _drain(self) -> None:
        """Steps 1-4 of the stop order."""
        self._begin_drain()
        stopping = [self.fetcher.stop()] + ([self.router.stop()] if self.router else [])
        stopping += [self.burst.stop()] if self.burst else []
        await bounded(self.log, "fetchers", asyncio.gather(*stopping, return_exceptions=True))
        drained = await drain_jobs(
            self.fetcher, self.broker, self.log, self.settings.shutdown_timeout
        )
        self.stats.requeued += drained.put_back
        assert self._drain_started is not None
        self._drain_duration = time.monotonic() - self._drain_started
        self._state = WorkerState.STOPPED
        self.log.lifecycle(
            "worker.drained",
            drain_s=round(self._drain_duration, 3),
            finished_during_drain=drained.finished,
            put_back=drained.put_back,
            abandoned=drained.abandoned,
        )
