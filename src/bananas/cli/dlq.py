"""`bananas dlq list|show|replay|delete`."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from ..brokers import Broker
from ..brokers.base import DeadInfo
from ..errors import InvalidRecord, UniqueConflict
from ..vocabulary import JobState
from .common import broker_option, fail, load_settings, main, run_with_broker

# `dlq show` prints at most this much of a payload: a dead letter's payload can
# be up to MAX_PAYLOAD_BYTES (1 MiB), which buries the error on a terminal.
PAYLOAD_SHOWN_BYTES = 4096
# The past participle of each action, as the summary line says it.
_DONE = {"replay": "replayed", "delete": "deleted"}


@main.group()
def dlq() -> None:
    """Inspect, replay and delete dead-lettered jobs."""


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


@dlq.command("list")
@click.option("--limit", default=50, type=click.IntRange(1, 10_000), show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@broker_option
def dlq_list(limit: int, as_json: bool, broker: str | None) -> None:
    """Newest dead letters first: id, type, reason and the error's first line
    (`bananas dlq show ID` gives the whole error, traceback and payload)."""
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
            click.echo(f"{d.id}  {d.info.name or '?':<20} {_why(d.info)}")

    run_with_broker(settings, go)


def _why(info: DeadInfo) -> str:
    """The reason, then the error's first line unless it says the same."""
    error = first_line(info.error)
    if not error or error == first_line(info.reason):
        return info.reason
    return f"{info.reason}: {error}" if info.reason else error


@dlq.command("show")
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@broker_option
def dlq_show(job_id: str, as_json: bool, broker: str | None) -> None:
    """One dead letter: reason, error, traceback, attempts, times, payload."""
    settings = load_settings(BANANAS_BROKER_URL=broker)

    async def go(b: Broker) -> dict[str, Any] | None:
        info = await b.get_dead_info(job_id)
        if info is None:
            return None
        return dead_letter_view(job_id, info, await b.get_record(job_id))

    view = run_with_broker(settings, go)
    if view is None:
        fail(f"job {job_id} is not in the dead letters (bananas dlq list shows them)")
    if as_json:
        click.echo(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(render_dead_letter(view))


def dead_letter_view(job_id: str, info: DeadInfo, raw: bytes | None) -> dict[str, Any]:
    """What `dlq show` prints (its --json shape): the dead letter's info and
    what the job's record adds; the payload cut at PAYLOAD_SHOWN_BYTES."""
    fields: dict[str, Any] = {}
    if raw:
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            loaded = None
        fields = loaded if isinstance(loaded, dict) else {}
    payload_json = orjson.dumps(fields["payload"]) if "payload" in fields else b""
    cut = len(payload_json) > PAYLOAD_SHOWN_BYTES
    return {
        "id": job_id,
        "name": info.name or fields.get("name") or "",
        "priority": info.priority or fields.get("priority") or "",
        "reason": info.reason,
        "error": info.error or fields.get("error") or "",
        "traceback": info.traceback or fields.get("traceback") or "",
        "attempts": fields.get("attempts"),
        "max_retries": fields.get("max_retries"),
        "source": info.source,
        "created_at": fields.get("created_at"),
        "updated_at": fields.get("updated_at"),
        "failed_at": info.failed_at,
        "record": "ok" if fields else ("missing" if raw is None else "unreadable"),
        "payload_bytes": len(payload_json),
        "payload_truncated": cut,
        "payload": None if cut else fields.get("payload"),
        "payload_head": payload_json[:PAYLOAD_SHOWN_BYTES].decode("utf-8", "replace")
        if cut
        else None,
    }


def render_dead_letter(view: dict[str, Any]) -> str:
    rows = [
        ("type", view["name"] or "?"),
        ("priority", view["priority"]),
        ("reason", view["reason"]),
        ("error", "" if view["error"] == view["reason"] else view["error"]),
        ("attempts", _attempts(view)),
        ("source", view["source"]),
        ("created", view["created_at"]),
        ("updated", view["updated_at"]),
        ("failed", view["failed_at"]),
    ]
    lines = [f"dead letter {view['id']}"]
    for label, value in rows:
        if value not in (None, ""):
            text = str(value).replace("\n", "\n" + " " * 12)
            lines.append(f"  {label:<9} {text}")
    if view["record"] != "ok":
        lines.append(f"  record    {view['record']}: no payload or attempts to show")
    elif view["payload_truncated"]:
        lines.append(
            f"  payload   {view['payload_head']}… (first {PAYLOAD_SHOWN_BYTES} of "
            f"{view['payload_bytes']} bytes)"
        )
    else:
        lines.append(f"  payload   {orjson.dumps(view['payload']).decode()}")
    if view["traceback"]:
        lines.append("traceback:")
        lines += ["  " + line for line in view["traceback"].rstrip().splitlines()]
    return "\n".join(lines)


def _attempts(view: dict[str, Any]) -> str:
    attempts, budget = view["attempts"], view["max_retries"]
    if attempts is None:
        return ""
    return f"{attempts} (max_retries={budget})" if budget is not None else str(attempts)


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
            except UniqueConflict as exc:
                click.echo(f"{job_id}: {exc}", err=True)
                continue
            except InvalidRecord as exc:
                if await b.job_state(job_id) != JobState.DEAD:
                    ok = False  # not a dead letter at all: nothing to delete either
                else:
                    click.echo(f"{job_id}: cannot replay: {exc} (delete it instead)", err=True)
                    continue
            if ok:
                done += 1
            else:
                click.echo(f"{job_id}: not in the dead-letter queue", err=True)
        click.echo(f"{_DONE[verb]} {done} of {len(targets)}")
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
