"""Background upkeep of a process's observable state, on the worker's loop:

- a loop ticker (its lag is what /livez reads),
- a broker probe (what /readyz reads) and a queue snapshot (what /metrics,
  the metrics log and the registry report), every SNAPSHOT_PERIOD,
- the worker registry heartbeat (a `WorkerInfo`),
- the JSON metrics log line every METRICS_LOG_INTERVAL,
- the event-log flush.

One lifecycle: start() / stop(); each loop logs errors and carries on. The
monitor keeps its readings (`last_tick`, `snapshot`, `utilization`,
`error_rate`) on itself for the runtime's status snapshot to read, and reads
the rest of the worker's state through `status()`: it writes into nothing
but its own fields and the shared `BrokerLink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..brokers.base import Broker
from ..brokers.workflow_records import WORKFLOW_STATES
from ..errors import BrokerError, BrokerRefusesWrites
from ..logs import EventLog
from ..loops import PeriodicTasks
from ..vocabulary import WorkerInfo
from .limits import limit_rows
from .stats import IntervalSampler, WorkerStats
from .status import BrokerLink, BrokerSnapshot, WorkerIdentity, WorkerStatus, registry_info

TICK = 0.25
SNAPSHOT_PERIOD = 2.0
FLUSH_PERIOD = 0.5  # seconds buffered log lines may wait


@dataclass(frozen=True, slots=True)
class MonitorParams:
    broker: Broker
    log: EventLog
    stats: WorkerStats
    link: BrokerLink
    identity: WorkerIdentity
    status: Callable[[], WorkerStatus]
    registry_heartbeat: float
    metrics_log_interval: float
    limits: bool = False  # a type here has a concurrency limit: its use is read too
    rates: bool = False  # this worker runs a rate-limited type: the snapshot reads the limits


class Monitor:
    def __init__(self, params: MonitorParams) -> None:
        self.p = params
        self.last_tick = time.monotonic()
        self.snapshot = BrokerSnapshot()
        self.utilization = 0.0
        self.error_rate = 0.0
        self._loops = PeriodicTasks(self._on_error)
        self._log_sampler = IntervalSampler(params.stats)
        self._gauge_sampler = IntervalSampler(params.stats)

    def start(self) -> None:
        loops: list[tuple[str, float, Callable[[], Awaitable[None]], bool]] = [
            ("ticker", TICK, self._tick, True),
            ("snapshot", SNAPSHOT_PERIOD, self._snapshot, True),
            ("registry", self.p.registry_heartbeat, self._register, True),
            ("metrics-log", self.p.metrics_log_interval, self._log_metrics, False),
            ("log-flush", FLUSH_PERIOD, self._flush, False),
        ]
        for name, period, action, at_once in loops:
            self._loops.add(name, period, action, at_once=at_once)

    async def stop(self) -> None:
        """End the loops, then leave the registry (a drained process is gone
        at once, not after REGISTRY_EXPIRY)."""
        await self._loops.stop()
        with contextlib.suppress(BrokerError):
            await self.p.broker.remove_worker(self.p.identity.id)

    def _on_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, BrokerRefusesWrites):  # it answered: not "unreachable"
            self.p.link.refuses(str(exc))
            self.p.log.debug("monitor.broker_error", loop=name, error=str(exc))
        elif isinstance(exc, BrokerError):
            self.p.link.down()
            self.p.log.debug("monitor.broker_error", loop=name, error=str(exc))
        else:  # observability must never stop the worker
            self.p.log.error("monitor.crash", loop=name, error=f"{type(exc).__name__}: {exc}")

    async def _tick(self) -> None:
        self.last_tick = time.monotonic()

    async def _flush(self) -> None:
        self.p.log.flush()

    async def _snapshot(self) -> None:
        broker = self.p.broker
        await broker.ping()
        stats = await broker.stats()
        ages = await broker.oldest_ready_age()
        limits = tuple(await limit_rows(broker)) if self.p.limits else ()
        rates = tuple(await broker.rate_usage()) if self.p.rates else ()
        workflows = await workflow_counts(broker)
        self.p.link.up()
        self.snapshot = BrokerSnapshot(stats, ages, time.monotonic(), limits, rates, workflows)
        self.utilization, self.error_rate = self._gauge_sampler.sample()

    async def _register(self) -> None:
        await self.p.broker.heartbeat_worker(self.registry_entry())

    def registry_entry(self) -> WorkerInfo:
        return registry_info(self.p.identity, self.p.status(), self.p.stats)

    async def _log_metrics(self) -> None:
        s = self.p.stats
        utilization, error_rate = self._log_sampler.sample()
        self.p.log.info(
            "metrics",
            jobs_processed=s.processed,
            jobs_completed=s.completed,
            jobs_failed=s.failed,
            avg_duration_ms=round(s.avg_duration_ms, 3),
            worker_utilization=round(utilization, 4),
            error_rate=round(error_rate, 4),
            uptime=round(s.uptime(), 3),
            in_flight=self.p.status().in_flight,
            queue_depth=self.snapshot.queue_depth,
        )


async def workflow_counts(broker: Broker) -> dict[str, int]:
    """Workflows per state (read concurrently: one round trip's wait)."""
    counts = await asyncio.gather(*(broker.count_workflows(s) for s in WORKFLOW_STATES))
    return dict(zip(WORKFLOW_STATES, counts, strict=True))
