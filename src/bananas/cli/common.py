"""Shared pieces of the `bananas` command: the group, one-line errors, settings."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import click

from ..app import Bananas
from ..brokers import Broker
from ..config import Settings
from ..errors import BananasError, BrokerError, ConfigError
from ..redact import redact_url

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
        fail(f"{exc} (broker {redact_url(settings.effective_broker_url)})")
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
