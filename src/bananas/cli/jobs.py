"""`bananas enqueue` and `bananas status`."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

import click
import orjson

from ..app import Bananas
from ..brokers import Broker
from ..brokers.workflow_records import WORKFLOW_STATES
from ..errors import BananasError, BrokerError
from ..keys import split_lane
from ..observe.limits import limit_rows
from ..rates import RateUsage
from ..routes import DEFAULT_ROUTE
from ..unserved import why_unfinished
from ..vocabulary import PRIORITIES, Status
from .common import broker_option, fail, load_settings, main, run_with_broker


@main.command()
@click.argument("name")
@click.option("--json", "payload", default="{}", help="Payload: a JSON object.")
@click.option("--priority", type=click.Choice(PRIORITIES), default=None)
@click.option("--delay", default=None, help="Run after this long, e.g. 10s, 5m.")
@click.option("--route", default=None, help="The route (named pool of workers), e.g. gpu.")
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
    route: str | None,
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
    if route is not None:
        options["_route"] = route  # checked by the spec: a bad name exits 2

    expiry = settings.registry_expiry

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
            why = "" if result else await why_unfinished(app.async_broker(), handle.id, expiry)
            await app.aclose()
            if result is None:
                fail(f"job {handle.id} did not finish within {wait}s{why}")
            click.echo(
                orjson.dumps(
                    {"status": result.status, "result": result.value(), "error": result.error}
                ).decode()
            )
            if result.status != Status.COMPLETED:
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
        limits = await limit_rows(b)
        rates = await b.rate_usage()
        fleet = [asdict(w) for w in await b.list_workers(settings.registry_expiry)]
        data = {
            "broker": b.describe(),
            "workers": [e for e in fleet if e.get("kind") != "scheduler"],
            "schedulers": [e for e in fleet if e.get("kind") == "scheduler"],
            "queues": [_queue_entry(q, d) for q, d in sorted(stats.ready.items(), key=_prio_key)],
            "unrouted": stats.unrouted,
            **(_route_lists(stats) if stats.unrouted_routes else {}),
            # Throttled jobs are scheduled at their rate-limit slot: counted apart.
            "scheduled": max(0, stats.scheduled - sum(r.throttled for r in rates)),
            "throttled": sum(r.throttled for r in rates),
            "rate_limits": [_rate_entry(r) for r in rates],
            "in_flight": stats.active,
            "dead": stats.dead,
            "cancelled": stats.cancelled,
            "concurrency_limits": [row.to_json() for row in limits],
            "workflows": {s: await b.count_workflows(s) for s in WORKFLOW_STATES},
        }
        if as_json:
            click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        else:
            click.echo(render_status(data, stats) + _render_limits(limits))

    run_with_broker(settings, go)


def render_status(data: dict[str, Any], stats: Any) -> str:
    lines = [f"broker     {data['broker']}"]
    by_priority = {p: stats.unrouted.get(p, 0) for p in PRIORITIES}
    for (_, p), depth in stats.unrouted_routes.items():
        by_priority[p] = by_priority.get(p, 0) + depth
    for (lane, _), depth in stats.ready.items():
        p = split_lane(lane)[1]
        by_priority[p] = by_priority.get(p, 0) + depth
    lines += [f"{p:<10} {depth}" for p, depth in by_priority.items()]
    lines += [
        f"scheduled  {data['scheduled']}",
        f"throttled  {data['throttled']}",
        f"in flight  {stats.active}",
        f"dead       {stats.dead}",
        f"cancelled  {stats.cancelled}",
        "workflows  " + ", ".join(f"{n} {s}" for s, n in data["workflows"].items()),
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
            state = str(e.get("state", "?"))
            if e.get("threads_stuck"):
                state += f" ({e['threads_stuck']} job threads stuck in timed-out handlers)"
            lines.append(
                f"{str(e.get('id', '?'))[:34]:<34} {e.get('mode', '?')!s:<16} "
                f"{str(e.get('group', '?'))[:12]:<12} "
                f"{','.join(e.get('priorities') or []) or '-':<18} {busy:>9} "
                f"{float(e.get('utilization') or 0):>5.0%} "
                f"{now - float(e.get('last_seen') or now):>4.0f}s {state}"
            )
    routed = any(split_lane(lane)[0] != DEFAULT_ROUTE for lane, _ in stats.ready)
    if stats.ready and routed:  # a ROUTE column only once some queue is on a named route
        lines.append("\nROUTE            PRIORITY  JOB TYPE                        DEPTH")
        for (lane, n), d in sorted(stats.ready.items(), key=_prio_key):
            r, p = split_lane(lane)
            lines.append(f"{r:<16} {p:<9} {n:<31} {d}")
    elif stats.ready:
        lines.append("\nPRIORITY  JOB TYPE                        DEPTH")
        for (p, n), d in sorted(stats.ready.items(), key=_prio_key):
            lines.append(f"{p:<9} {n:<31} {d}")
    if data["rate_limits"]:
        lines.append("\nRATE LIMIT  JOB TYPE                        THROTTLED  BOOKED AHEAD")
        for r in data["rate_limits"]:
            booked = f"{r['booked_s']:.1f}s (at its limit)" if r["booked_s"] > 0 else "-"
            lines.append(f"{r['limit']:<11} {r['job_type']:<31} {r['throttled']:>9}  {booked}")
    if stats.unrouted_routes:
        lines.append("\nROUTE LIST (Go scheduler, moved on by the route's workers)  DEPTH")
        for (r, p), d in sorted(stats.unrouted_routes.items()):
            lines.append(f"{r + ' ' + p:<58} {d}")
    return "\n".join(lines)


def _render_limits(limits: list[Any]) -> str:
    """Capped work (docs/control.md): parked, counted in `scheduled`, waiting for a slot."""
    if not limits:
        return ""
    lines = ["", "", "CONCURRENCY LIMITS (waiting jobs are parked, counted in scheduled)"]
    lines.append(f"{'JOB TYPE':<31} {'KEY':<20} USE")
    for row in limits:
        lines.append(f"{row.job_type:<31} {row.key or '-':<20} {row.use}")
    return "\n".join(lines)


def _rate_entry(usage: RateUsage) -> dict[str, Any]:
    """A rate limit in `status --json`: its jobs waiting for a slot, and the
    seconds of slots already booked in the type's own bucket (above 0: the
    type starts at its limit; per-key buckets are not listed)."""
    return {
        "job_type": usage.name,
        "limit": usage.limit,
        "throttled": usage.throttled,
        "booked_s": round(usage.booked, 3),
    }


def _route_lists(stats: Any) -> dict[str, Any]:
    """The Go scheduler's route lists holding jobs (only that route's workers move them)."""
    return {
        "unrouted_routes": [
            {"route": r, "priority": p, "depth": n}
            for (r, p), n in sorted(stats.unrouted_routes.items())
        ]
    }


def _queue_entry(queue: tuple[str, str], depth: int) -> dict[str, Any]:
    """A queue in `status --json`; "route" only on a named route (absent: default)."""
    route, priority = split_lane(queue[0])
    entry: dict[str, Any] = {"priority": priority, "job_type": queue[1], "depth": depth}
    if route != DEFAULT_ROUTE:
        entry = {"route": route, **entry}
    return entry


def _prio_key(item: tuple[tuple[str, str], int]) -> tuple[bool, str, int, str]:
    (lane, name), _ = item
    route, priority = split_lane(lane)
    return (route != DEFAULT_ROUTE, route, _RANK.get(priority, len(PRIORITIES)), name)


_RANK = {p: i for i, p in enumerate(PRIORITIES)}  # high first, as workers take them
