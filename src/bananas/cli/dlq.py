"""`bananas dlq list|replay|delete`."""

from __future__ import annotations

import sys

import click
import orjson

from ..brokers import Broker
from ..errors import InvalidRecord
from .common import broker_option, fail, load_settings, main, run_with_broker


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
