"""`bananas cancel ID...`: cancel jobs (docs/control.md), one line per id
saying what that did. Exit 1 when an id is unknown, 0 otherwise (a job that
had already finished is answered, not an error)."""

from __future__ import annotations

import sys

import click
import orjson

from ..brokers import Broker
from ..brokers.base import CancelOutcome
from .common import broker_option, fail, load_settings, main, run_with_broker


@main.command("cancel")
@click.argument("ids", nargs=-1, metavar="ID...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@broker_option
def cancel(ids: tuple[str, ...], as_json: bool, broker: str | None) -> None:
    """Cancel jobs: a queued or scheduled job never runs; a running one is
    stopped by its worker within about a second; either way it is final
    (never retried). A finished or unknown job is answered so."""
    if not ids:
        fail("give the ids of the jobs to cancel", 2)
    settings = load_settings(BANANAS_BROKER_URL=broker)

    async def go(b: Broker) -> list[CancelOutcome]:
        return [await b.cancel(job_id) for job_id in ids]

    outcomes = run_with_broker(settings, go)
    if as_json:
        rows = [{"id": i, "outcome": o.value} for i, o in zip(ids, outcomes, strict=True)]
        click.echo(orjson.dumps(rows).decode())
    else:
        for job_id, outcome in zip(ids, outcomes, strict=True):
            click.echo(f"{job_id}: {outcome.describe()}")
    sys.exit(1 if CancelOutcome.UNKNOWN in outcomes else 0)
