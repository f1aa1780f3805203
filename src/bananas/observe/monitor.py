"""Background upkeep of a process's observable state, on the worker's loop:

- a loop ticker (its lag is what /livez reads),
- a broker probe (what /readyz reads) and a queue snapshot (what /metrics,
  the metrics log and the registry report), every SNAPSHOT_PERIOD,
- the worker registry heartbeat,
- the JSON metrics log line every METRICS_LOG_INTERVAL.

One lifecycle: start() / stop(); each loop logs errors and carries on.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import BrokerError
from ..periodic import PeriodicTasks
from ..vocabulary import WorkerInfo
from ..worker.stats import IntervalSampler

if TYPE_CHECKING:
    from ..worker.runtime import Worker

TICK = 0.25
SNAPSHOT_PERIOD = 2.0


class Monitor:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.last_tick = time.monotonic()
        self._loops = PeriodicTasks(self._on_error)
        self._log_sampler = IntervalSampler(worker.stats)
        self._gauge_sampler = IntervalSampler(worker.stats)

    def start(self) -> None:
        settings = self.worker.settings
        loops: list[tuple[str, float, Callable[[], Awaitable[None]], bool]] = [
            ("ticker", TICK, self._tick, True),
            ("snapshot", SNAPSHOT_PERIOD, self._snapshot, True),
            ("registry", settings.registry_heartbeat, self._register, True),
            ("metrics-log", settings.metrics_log_interval, self._log_metrics, False),
        ]
        for name, period, action, at_once in loops:
            self._loops.add(name, period, action, at_once=at_once)

    async def stop(self) -> None:
        await self._loops.stop()
        with contextlib.suppress(BrokerError):
            await self.worker.broker.remove_worker(self.worker.id)

    def _on_error(self, name: str, exc: Exception) -> None:
        if isinstance(exc, BrokerError):
            self.worker.broker_ok = False
            self.worker.log.debug("monitor.broker_error", loop=name, error=str(exc))
        else:  # observability must never stop the worker
            self.worker.log.error("monitor.crash", loop=name, error=f"{type(exc).__name__}: {exc}")

    async def _tick(self) -> None:
        self.last_tick = time.monotonic()

    async def _snapshot(self) -> None:
        w = self.worker
        await w.broker.ping()
        stats = await w.broker.stats()
        ages = await w.broker.oldest_ready_age()
        w.broker_ok = True
        w.snapshot.stats, w.snapshot.oldest_age = stats, ages
        w.snapshot.taken_at = time.time()
        w.utilization, w.error_rate = self._gauge_sampler.sample()

    async def _register(self) -> None:
        await self.worker.broker.heartbeat_worker(WorkerInfo.from_dict(self.registry_entry()))

    def registry_entry(self) -> dict[str, Any]:
        w = self.worker
        return {
            "id": w.id,
            "kind": "scheduler" if w.settings.mode == "scheduler-only" else "worker",
            "host": socket.gethostname(),
            "pid": w.pid,
            "mode": w.settings.mode,
            "group": w.settings.group_id,
            "priorities": list(w.priorities),
            "job_types": list(w.types),
            "concurrency": w.concurrency if w.types else 0,
            "in_flight": w.in_flight,
            "utilization": round(w.utilization, 4),
            "scheduler": w.settings.enable_scheduler,
            "started_at": w.stats.started_at,
            "draining": w.state == "draining",
            "state": w.state,
            "jobs_completed": w.stats.completed,
            "jobs_failed": w.stats.failed,
        }

    async def _log_metrics(self) -> None:
        w = self.worker
        s = w.stats
        utilization, error_rate = self._log_sampler.sample()
        w.log.info(
            "metrics",
            jobs_processed=s.processed,
            jobs_completed=s.completed,
            jobs_failed=s.failed,
            avg_duration_ms=round(s.avg_duration_ms, 3),
            worker_utilization=round(utilization, 4),
            error_rate=round(error_rate, 4),
            uptime=round(time.time() - s.started_at, 3),
            in_flight=w.in_flight,
            queue_depth=w.snapshot.queue_depth,
        )
