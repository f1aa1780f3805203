"""The `bananas` command: worker, scheduler, enqueue, status, dlq.

Errors are one line on stderr and a non-zero exit: 2 for bad configuration or
arguments, 1 when the broker cannot be reached or an operation fails.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click
import orjson

from .app import Bananas
from .brokers import Broker
from .config import Settings
from .errors import AppLoadError, BananasError, BrokerError, ConfigError, InvalidRecord

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"bananas: error: {message}", err=True)
    sys.exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings.load(overrides=overrides)
    except ConfigError as exc:
        fail(str(exc), 2)


def run_with_broker(settings: Settings, action: Callable[[Broker], Coroutine[Any, Any, T]]) -> T:
    app = Bananas(settings=settings)

    async def main() -> T:
        broker = app.new_broker()
        try:
            return await action(broker)
        finally:
            await broker.close()

    try:
        return asyncio.run(main())
    except ConfigError as exc:
        fail(str(exc), 2)
    except BrokerError as exc:
        fail(f"{exc} (broker {settings.effective_broker_url})")
    except BananasError as exc:
        fail(str(exc))


broker_option = click.option(
    "--broker",
    "broker",
    default=None,
    metavar="URL",
    help="Broker URL (overrides BANANAS_BROKER_URL / REDIS_URL).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bananas")
def main() -> None:
    """Bananas: background jobs for Python that lose nothing."""


@main.command()
@click.option(
    "--app",
    "app_target",
    metavar="MODULE:ATTR",
    help="Where the Bananas app is (overrides BANANAS_APP).",
)
@broker_option
@click.option("--mode", help="thin, default, specialized, job-specialized, scheduler-only.")
@click.option("--concurrency", "-c", help="Concurrent jobs per process, 1-1000.")
@click.option("--priorities", help="Comma list of priorities to take, in order.")
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
    if processes > 1:
        from .worker.supervisor import supervise

        args = sys.argv[sys.argv.index("worker") + 1 :]
        sys.exit(supervise(processes, _without_processes(args), settings.health_port))
    sys.exit(_run_worker(settings))


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
        WORKER_MODE="scheduler-only",
        LOG_LEVEL=log_level,
    )
    sys.exit(_run_worker(settings))


def _run_worker(settings: Settings) -> int:
    from . import logs
    from .discovery import load_app
    from .worker import Worker

    if settings.mode != "scheduler-only" and not settings.app:
        fail("no app given: use --app module:attr or set BANANAS_APP", 2)
    try:
        app = load_app(settings.app)
    except AppLoadError as exc:
        fail(str(exc), 2)
    app.configure(settings)
    unknown = [t for t in settings.job_types if t not in app.handlers]
    if settings.mode != "scheduler-only" and unknown:
        fail(
            f"WORKER_JOB_TYPES names {', '.join(unknown)} with no handler "
            f"(registered: {', '.join(sorted(app.handlers)) or 'none'})",
            2,
        )
    if settings.mode != "scheduler-only" and not app.handlers:
        fail(f"the app {settings.app!r} registers no job handlers", 2)
    log = logs.setup(settings.log_level, settings.log_format)
    try:
        worker = Worker(app, settings, log)
    except ConfigError as exc:
        fail(str(exc), 2)
    try:
        import uvloop

        runner: Callable[..., int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    code = runner(worker.run())
    log.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads still running a timed-out sync job must not hold the exit.
    os._exit(code)


@main.command()
@click.argument("name")
@click.option("--json", "payload", default="{}", help="Payload: a JSON object.")
@click.option("--priority", type=click.Choice(["high", "normal", "low"]), default=None)
@click.option("--delay", default=None, help="Run after this long, e.g. 10s, 5m.")
@click.option(
    "--wait",
    "wait",
    default=None,
    type=float,
    help="Wait up to this many seconds for the result and print it.",
)
@broker_option
def enqueue(
    name: str,
    payload: str,
    priority: str | None,
    delay: str | None,
    wait: float | None,
    broker: str | None,
) -> None:
    """Enqueue a job of type NAME; prints its id."""
    settings = load_settings(BANANAS_BROKER_URL=broker)
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        fail(f"--json is not valid JSON: {exc}", 2)
    if not isinstance(data, dict):
        fail('--json must be a JSON object, e.g. \'{"to": "a@b.c"}\'', 2)
    app = Bananas(settings=settings)
    options: dict[str, Any] = {}
    if priority:
        options["_priority"] = priority
    if delay:
        options["_delay"] = delay

    async def go(_: Broker) -> None:
        try:
            handle = await app.enqueue_async(name, data, **options)
        except BananasError as exc:
            if isinstance(exc, BrokerError):
                raise
            fail(str(exc), 2)
        click.echo(handle.id)
        if wait is not None:
            result = await app.async_broker().wait_result(handle.id, wait)
            await app.aclose()
            if result is None:
                fail(f"job {handle.id} did not finish within {wait}s")
            click.echo(
                orjson.dumps(
                    {"status": result.status, "result": result.value(), "error": result.error}
                ).decode()
            )
            if result.status != "completed":
                sys.exit(1)
        await app.aclose()

    run_with_broker(settings, go)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@broker_option
def status(as_json: bool, broker: str | None) -> None:
    """The fleet (workers and schedulers) and queue depths per priority and job type."""
    settings = load_settings(BANANAS_BROKER_URL=broker)

    async def go(b: Broker) -> None:
        stats = await b.stats()
        fleet = await b.list_workers(settings.registry_expiry)
        data = {
            "broker": b.describe(),
            "workers": [e for e in fleet if e.get("kind") != "scheduler"],
            "schedulers": [e for e in fleet if e.get("kind") == "scheduler"],
            "queues": [
                {"priority": p, "job_type": n, "depth": d}
                for (p, n), d in sorted(stats.ready.items(), key=_prio_key)
            ],
            "unrouted": stats.unrouted,
            "scheduled": stats.scheduled,
            "in_flight": stats.active,
            "dead": stats.dead,
        }
        if as_json:
            click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(render_status(data, stats))

    run_with_broker(settings, go)


def render_status(data: dict[str, Any], stats: Any) -> str:
    lines = [f"broker     {data['broker']}"]
    by_priority = {p: stats.unrouted.get(p, 0) for p in ("high", "normal", "low")}
    for (p, _), depth in stats.ready.items():
        by_priority[p] = by_priority.get(p, 0) + depth
    lines += [f"{p:<10} {depth}" for p, depth in by_priority.items()]
    lines += [
        f"scheduled  {stats.scheduled}",
        f"in flight  {stats.active}",
        f"dead       {stats.dead}",
    ]
    now = time.time()
    for title, entries in (("WORKERS", data["workers"]), ("SCHEDULERS", data["schedulers"])):
        lines.append(f"\n{title} ({len(entries)})")
        if not entries:
            continue
        lines.append(
            f"{'ID':<34} {'MODE':<16} {'POOL':<12} {'PRIORITIES':<18} "
            f"{'BUSY':>9} {'UTIL':>5} {'SEEN':>5} STATE"
        )
        for e in sorted(entries, key=lambda e: (str(e.get("group")), str(e.get("id")))):
            busy = f"{e.get('in_flight', 0)}/{e.get('concurrency', 0)}"
            lines.append(
                f"{str(e.get('id', '?'))[:34]:<34} {e.get('mode', '?')!s:<16} "
                f"{str(e.get('group', '?'))[:12]:<12} "
                f"{','.join(e.get('priorities') or []) or '-':<18} {busy:>9} "
                f"{float(e.get('utilization') or 0):>5.0%} "
                f"{now - float(e.get('last_seen') or now):>4.0f}s {e.get('state', '?')}"
            )
    if stats.ready:
        lines.append("\nPRIORITY  JOB TYPE                        DEPTH")
        for (p, n), d in sorted(stats.ready.items(), key=_prio_key):
            lines.append(f"{p:<9} {n:<31} {d}")
    return "\n".join(lines)


def _prio_key(item: tuple[tuple[str, str], int]) -> tuple[int, str]:
    (priority, name), _ = item
    return ({"high": 0, "normal": 1, "low": 2}.get(priority, 3), name)


@main.group()
def dlq() -> None:
    """Inspect, replay and delete dead-lettered jobs."""


@dlq.command("list")
@click.option("--limit", default=50, type=click.IntRange(1, 10_000), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@broker_option
def dlq_list(limit: int, as_json: bool, broker: str | None) -> None:
    """Newest dead letters first."""
    settings = load_settings(BANANAS_BROKER_URL=broker)

    async def go(b: Broker) -> None:
        letters = await b.list_dead(0, limit)
        if as_json:
            click.echo(
                orjson.dumps(
                    [
                        {
                            "id": d.id,
                            "died_at_ms": d.died_at_ms,
                            "name": d.info.name,
                            "priority": d.info.priority,
                            "reason": d.info.reason,
                            "error": d.info.error,
                            "traceback": d.info.traceback,
                        }
                        for d in letters
                    ],
                    option=orjson.OPT_INDENT_2,
                ).decode()
            )
            return
        if not letters:
            click.echo("the dead-letter queue is empty")
        for d in letters:
            click.echo(f"{d.id}  {d.info.name or '?':<20} {d.info.reason}")

    run_with_broker(settings, go)


def _dlq_action(ids: tuple[str, ...], all_: bool, broker: str | None, verb: str) -> None:
    if not ids and not all_:
        fail(f"give job ids to {verb}, or --all", 2)
    if ids and all_:
        fail("give either job ids or --all, not both", 2)
    settings = load_settings(BANANAS_BROKER_URL=broker)

    async def go(b: Broker) -> int:
        targets = list(ids)
        if all_:
            targets = []
            while batch := await b.list_dead(len(targets), 1000):
                targets += [d.id for d in batch]
        done = 0
        for job_id in targets:
            try:
                ok = await (b.replay_dead(job_id) if verb == "replay" else b.delete_dead(job_id))
            except InvalidRecord as exc:
                click.echo(f"{job_id}: cannot replay: {exc} (delete it instead)", err=True)
                continue
            if ok:
                done += 1
            else:
                click.echo(f"{job_id}: not in the dead-letter queue", err=True)
        click.echo(f"{verb}ed {done} of {len(targets)}")
        return len(targets) - done

    missed = run_with_broker(settings, go)
    sys.exit(1 if missed else 0)


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter.")
@broker_option
def dlq_replay(ids: tuple[str, ...], all_: bool, broker: str | None) -> None:
    """Make dead jobs ready again, with a fresh retry budget."""
    _dlq_action(ids, all_, broker, "replay")


@dlq.command("delete")
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Delete every dead letter.")
@broker_option
def dlq_delete(ids: tuple[str, ...], all_: bool, broker: str | None) -> None:
    """Delete dead jobs and their records."""
    _dlq_action(ids, all_, broker, "delete")


@main.command()
@click.option(
    "--jobs",
    default=300,
    type=click.IntRange(20, 100_000),
    show_default=True,
    help="How many jobs the demo enqueues.",
)
@broker_option
def demo(jobs: int, broker: str | None) -> None:
    """Run Bananas' main job end to end on the embedded broker, with a live display."""
    from .demo import run as run_demo

    settings = load_settings(BANANAS_BROKER_URL=broker)
    try:
        sys.exit(run_demo(settings, jobs))
    except BananasError as exc:
        fail(str(exc))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, type=click.IntRange(1, 65535), show_default=True)
@broker_option
def dashboard(host: str, port: int, broker: str | None) -> None:
    """Serve the web dashboard (binds 127.0.0.1 unless told otherwise)."""
    from .dashboard import serve

    settings = load_settings(BANANAS_BROKER_URL=broker)
    try:
        serve(settings, host, port)
    except BananasError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
