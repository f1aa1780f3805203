"""`bananas job ID`: one job, inspected: where it is, who holds it, when it
ran, what it was given and what came of it, and how far it got. The state is
read by the dashboard's job-detail query (dashboard/job_detail.py), the one
place that gathers a job's full state."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import click
import orjson

from ..brokers import Broker
from ..brokers.base import JobProgress, Lease
from ..job import iso_from_unix
from .common import broker_option, fail, load_settings, main, run_with_broker

PAYLOAD_CHARS = 2000  # the text form's payload and result are cut here (not --json)


@main.command("job")
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output, nothing cut.")
@broker_option
def job(job_id: str, as_json: bool, broker: str | None) -> None:
    """One job: state, priority, type, attempts, lease holder, timestamps,
    payload, result or error and traceback, progress."""
    from ..dashboard.job_detail import job_detail

    settings = load_settings(BANANAS_BROKER_URL=broker)

    async def go(b: Broker) -> dict[str, Any] | None:
        detail = await job_detail(b, job_id)
        return describe(detail) if detail.found else None

    data = run_with_broker(settings, go)
    if data is None:
        fail(
            f"no job {job_id!r} on this broker: not queued, scheduled, running or dead, "
            f"and no result (finished jobs are kept for RESULT_TTL={settings.result_ttl:g}s)"
        )
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render(data))


def describe(detail: Any) -> dict[str, Any]:
    """The job as one JSON object (a JobDetail in, plain data out)."""
    fields: dict[str, Any] = detail.fields or {}
    result, dead = detail.result, detail.dead
    attempts = fields.get("attempts", 0)
    finished_at = result.completed_at if result else (dead.failed_at if dead else None)
    started_at = None
    finished = _unix(result.completed_at) if result is not None else None
    if result is not None and finished is not None:
        # The duration runs from the handler's start: the start of the last attempt.
        started_at = _iso(finished - result.duration_ms / 1000)
    data: dict[str, Any] = {
        "id": detail.id,
        "state": detail.state,
        "type": detail.name or None,
        "priority": fields.get("priority") or (dead.priority if dead else None),
        "attempts": attempts,
        "max_retries": fields.get("max_retries"),
        "lease": _lease(detail.lease),
        "enqueued_at": fields.get("created_at"),
        "scheduled_for": fields.get("scheduled_for"),
        "started_at": started_at,
        "finished_at": finished_at,
        "payload": fields.get("payload"),
        "result": result.value() if result is not None and detail.result_value else None,
        "error": (result.error if result else None) or fields.get("error") or None,
        "traceback": detail.traceback or None,
        "dead_reason": dead.reason if dead else None,
        "progress": detail.progress.to_dict() if detail.progress else None,
        "raw_record": detail.raw_record if detail.fields is None else None,
    }
    route = fields.get("route") or fields.get("routing_key")
    if route:  # only records that carry one
        data["route"] = route
    return data


def _lease(lease: Lease | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {"worker": lease.worker, "until": _iso(lease.deadline), "started": lease.started}


def render(data: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = [
        ("id", data["id"]),
        ("type", data["type"] or "?"),
        ("state", data["state"] or "unknown (a result without a record)"),
        ("priority", data["priority"] or "?"),
    ]
    if "route" in data:
        rows.append(("route", str(data["route"])))
    attempts = f"{data['attempts']}"
    if data["state"] == "running":
        attempts += f" before this one (attempt {int(data['attempts'] or 0) + 1} is running)"
    if data["max_retries"] is not None:
        attempts += f", max retries {data['max_retries']}"
    rows.append(("attempts", attempts))
    lease = data["lease"]
    if lease is not None:
        waiting = "" if lease["started"] else ", prefetched: not started yet"
        rows.append(("lease", f"worker {lease['worker']} until {lease['until']}{waiting}"))
    for label, key in (
        ("enqueued", "enqueued_at"),
        ("due", "scheduled_for"),
        ("started", "started_at"),
        ("finished", "finished_at"),
    ):
        if data[key]:
            rows.append((label, str(data[key])))
    if data["progress"] is not None:
        rows.append(("progress", _progress(JobProgress(**data["progress"]))))
    if data["dead_reason"]:
        rows.append(("dead", data["dead_reason"]))
    if data["error"]:
        rows.append(("error", data["error"]))
    if data["payload"] is not None:
        rows.append(("payload", _cut(orjson.dumps(data["payload"]).decode())))
    if data["result"] is not None:
        rows.append(("result", _cut(orjson.dumps(data["result"]).decode())))
    if data["raw_record"]:
        rows.append(("record", _cut(data["raw_record"]) + "  (not a valid job record)"))
    lines = [f"{label:<10} {value}" for label, value in rows]
    if data["traceback"]:
        lines += ["traceback", *("  " + line for line in data["traceback"].rstrip().splitlines())]
    return "\n".join(lines)


def _progress(p: JobProgress) -> str:
    ago = max(0.0, time.time() - p.updated_at)
    text = f"{p.fraction:.0%} {p.message}".rstrip()
    return f"{text}  (attempt {p.attempt}, {ago:.0f}s ago)"


def _cut(text: str) -> str:
    if len(text) <= PAYLOAD_CHARS:
        return text
    return f"{text[:PAYLOAD_CHARS]}… ({len(text)} characters; --json shows all)"


def _unix(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _iso(unix: float) -> str:
    return iso_from_unix(unix)
