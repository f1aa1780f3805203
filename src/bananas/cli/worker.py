"""`bananas worker` and `bananas scheduler`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import replace

import click

from ..config import Settings
from ..errors import AppLoadError, BrokerIncompatible, ConfigError
from ..vocabulary import MODES, PRIORITIES, Mode
from .common import broker_option, fail, load_settings, main


@main.command()
@click.option(
    "--app",
    "app_target",
    metavar="MODULE:ATTR",
    help="Where the Bananas app is (overrides BANANAS_APP).",
)
@broker_option
@click.option("--mode", help=f"{', '.join(MODES)}.")
@click.option("--concurrency", "-c", help="Concurrent jobs per process, 1-1000.")
@click.option(
    "--priorities", help=f"Comma list of priorities to take, in order ({', '.join(PRIORITIES)})."
)
@click.option("--job-types", help="Comma list of job types to take (job-specialized).")
@click.option("--group-id", help="Pool name shown in logs, metrics and status.")
@click.option("--scheduler/--no-scheduler", default=None, help="Run the scheduler loop here.")
@click.option("--log-level", help="debug, info, warning, error.")
@click.option(
    "--processes",
    "-p",
    default=1,
    type=click.IntRange(1, 256),
    show_default=True,
    help="Start this many worker processes sharing this configuration.",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Development only: restart the worker when a Python file changes (needs bananas[reload]).",
)
@click.option(
    "--burst",
    is_flag=True,
    help="Exit 0 once the queues this worker serves are empty (CI, batch jobs).",
)
def worker(
    app_target: str | None,
    broker: str | None,
    mode: str | None,
    concurrency: str | None,
    priorities: str | None,
    job_types: str | None,
    group_id: str | None,
    scheduler: bool | None,
    log_level: str | None,
    processes: int,
    reload: bool,
    burst: bool,
) -> None:
    """Run a worker process (configured by the environment; flags override)."""
    settings = load_settings(
        BANANAS_APP=app_target,
        BANANAS_BROKER_URL=broker,
        WORKER_MODE=mode,
        WORKER_CONCURRENCY=concurrency,
        WORKER_PRIORITIES=priorities,
        WORKER_JOB_TYPES=job_types,
        GROUP_ID=group_id,
        ENABLE_SCHEDULER=scheduler,
        LOG_LEVEL=log_level,
    )
    if reload:
        sys.exit(_run_reloader(settings, processes, burst))
    if burst:
        if not settings.mode.takes_jobs:
            fail(f"--burst needs a worker that takes jobs, not WORKER_MODE={settings.mode}", 2)
        settings = replace(settings, burst=True)
    if processes > 1:
        from ..worker.supervisor import supervise

        args = sys.argv[sys.argv.index("worker") + 1 :]
        # A burst child that exits 0 has emptied its queues: done, not restarted.
        code = supervise(
            processes, _without_processes(args), settings.health_port, restart_done=not burst
        )
        sys.exit(code)
    sys.exit(_run_worker(settings))


def _run_reloader(settings: Settings, processes: int, burst: bool) -> int:
    from ..reload import Reloader, watched_folders, without_reload

    if processes > 1 or burst:
        flag = "--processes" if processes > 1 else "--burst"
        fail(f"--reload runs one worker that restarts on changes: drop {flag}", 2)
    if settings.mode.takes_jobs and not settings.app:  # no edit could fix that
        fail("no app given: use --app module:attr or set BANANAS_APP", 2)
    args = without_reload(sys.argv[sys.argv.index("worker") + 1 :])
    try:
        return Reloader(args, watched_folders(settings.app)).run()
    except ConfigError as exc:
        fail(str(exc), 2)


def _without_processes(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--processes", "-p"):
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return out


@main.command("scheduler")
@click.option("--app", "app_target", metavar="MODULE:ATTR", help="Where the Bananas app is.")
@broker_option
@click.option("--log-level", help="debug, info, warning, error.")
def scheduler_cmd(app_target: str | None, broker: str | None, log_level: str | None) -> None:
    """Run a scheduler-only process: moves due jobs, recovers leases, runs nothing."""
    settings = load_settings(
        BANANAS_APP=app_target,
        BANANAS_BROKER_URL=broker,
        WORKER_MODE=Mode.SCHEDULER_ONLY,
        LOG_LEVEL=log_level,
    )
    sys.exit(_run_worker(settings))


def _run_worker(settings: Settings) -> int:
    from .. import logs
    from ..discovery import load_app
    from ..worker import Worker

    if settings.mode.takes_jobs and not settings.app:
        fail("no app given: use --app module:attr or set BANANAS_APP", 2)
    try:
        app = load_app(settings.app)
    except AppLoadError as exc:
        fail(str(exc), 2)
    app.configure(settings)
    unknown = [t for t in settings.job_types if t not in app.handlers]
    if settings.mode.takes_jobs and unknown:
        fail(
            f"WORKER_JOB_TYPES names {', '.join(unknown)} with no handler "
            f"(registered: {', '.join(sorted(app.handlers)) or 'none'})",
            2,
        )
    if settings.mode.takes_jobs and not app.handlers:
        fail(f"the app {settings.app!r} registers no job handlers", 2)
    log = logs.setup(settings.log_level, settings.log_format)
    try:
        worker = Worker(app, settings, log)
    except ConfigError as exc:
        fail(str(exc), 2)
    try:
        import uvloop

        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    # Not asyncio.run / uvloop.run: their clean-up waits for every task to end,
    # and a handler that swallows cancellation would then hold the exit forever.
    # By the time run() returns the worker has drained and put back what it
    # could; os._exit below ends whatever is left.
    loop = new_loop()
    asyncio.set_event_loop(loop)
    code = 70  # EX_SOFTWARE, if run() itself fails
    try:
        code = loop.run_until_complete(worker.run())
    except BrokerIncompatible as exc:  # a broker this Bananas must not touch
        click.echo(f"bananas: error: {exc}", err=True)
        code = 2
    finally:
        log.flush()
        logs.flush_std_streams()
        # Threads still running a timed-out sync job must not hold the exit.
        os._exit(code)
