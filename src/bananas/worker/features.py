"""The worker's optional parts, each built only when its feature is on, so a
feature nobody uses costs nothing (no task, no thread, no per-job work):

  hooks   the app's lifecycle hooks; the runner gets them only if one of them
          acts per job
  router  foreign-record routing: only if the broker has ForeignRouting and
          this worker takes jobs
  burst   only with --burst: stops the worker once the queues it serves are
          empty
  health  the /livez /readyz /drainz /metrics thread: unless HEALTH_PORT=0

The runtime holds None for a part whose feature is off, and starts and stops
the others in its documented order (runtime.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..app import Bananas
from ..brokers.base import Broker, foreign_routing
from ..config import Settings
from ..hooks import Hooks
from ..logs import EventLog
from ..observe.stats import WorkerStats
from ..observe.status import WorkerStatus
from .burst import Burst, BurstParams
from .fetcher import Fetcher
from .router import Router, RouterParams
from .runner import JobRunner

if TYPE_CHECKING:
    from ..observe.health import HealthServer


def worker_hooks(app: Bananas, log: EventLog, worker_id: str, runner: JobRunner) -> Hooks | None:
    """The app's hooks, reporting failures to this worker's log."""
    hooks = app.hooks.for_worker(log, worker_id) if app.hooks else None
    if hooks is not None and hooks.runs():  # else no per-job hook work
        runner.hooks = hooks
    return hooks


def router_for(
    broker: Broker,
    log: EventLog,
    priorities: tuple[str, ...],
    types: tuple[str, ...],
    stop: asyncio.Event,
    routes: tuple[str, ...],
) -> Router | None:
    routing = foreign_routing(broker)
    if routing is None or not types:
        return None
    return Router(RouterParams(routing, log, priorities, stop, routes))


def burst_for(
    settings: Settings,
    broker: Broker,
    log: EventLog,
    stats: WorkerStats,
    fetcher: Fetcher,
    priorities: tuple[str, ...],
    types: tuple[str, ...],
    *,
    routing: bool,
    stop: asyncio.Event,
    on_empty: Callable[[], None],
) -> Burst | None:
    if not settings.burst:
        return None
    return Burst(
        BurstParams(
            broker,
            log,
            stats,
            fetcher,
            priorities,
            types,
            scheduled=settings.enable_scheduler,
            unrouted=routing,
            stop=stop,
            on_empty=on_empty,
            routes=settings.routing_keys,
        )
    )


def start_health(
    settings: Settings,
    status: Callable[[], WorkerStatus],
    exposition: Callable[[], bytes],
    log: EventLog,
) -> HealthServer | None:
    """The health server, serving; None if HEALTH_PORT=0 or it could not bind
    (logged: the worker runs on without it)."""
    if settings.health_port == 0:
        return None
    # Imported only when serving: uvicorn and Starlette are a third of start-up.
    from ..observe.health import HealthParams, HealthServer

    params = HealthParams(status, exposition, settings.liveness_loop_stall)
    server = HealthServer(params, settings.health_host, settings.health_port)
    error = server.start()
    if error is None:
        return server
    log.error(
        "health.unavailable",
        error=error,
        detail="set HEALTH_PORT to a free port, or 0 to disable",
    )
    return None
