"""`bananas demo` and `bananas dashboard`."""

from __future__ import annotations

import sys

import click

from ..errors import BananasError, ConfigError
from .common import broker_option, fail, load_settings, main


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
    from ..demo import run as run_demo

    settings = load_settings(BANANAS_BROKER_URL=broker)
    try:
        sys.exit(run_demo(settings, jobs))
    except BananasError as exc:
        fail(str(exc))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, type=click.IntRange(1, 65535), show_default=True)
@broker_option
@click.option(
    "--app",
    "app_target",
    metavar="MODULE:ATTR",
    help="The Bananas app, for its schedules on the Schedules page (overrides BANANAS_APP).",
)
def dashboard(host: str, port: int, broker: str | None, app_target: str | None) -> None:
    """Serve the web dashboard (binds 127.0.0.1 unless told otherwise)."""
    from ..dashboard import serve

    settings = load_settings(BANANAS_BROKER_URL=broker, BANANAS_APP=app_target)
    try:
        serve(settings, host, port)
    except ConfigError as exc:
        fail(str(exc), 2)
    except BananasError as exc:
        fail(str(exc))
