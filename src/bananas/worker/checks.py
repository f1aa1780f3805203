"""Start-up checks a worker runs once connected: permissions (the one that
stops it: a user that cannot run what a worker needs, exit 2), then a clock
that disagrees with the broker's and broker settings that can lose jobs,
which only warn."""

from __future__ import annotations

import time
from typing import Any

from ..brokers.base import Broker
from ..errors import BrokerError
from ..logs import EventLog

CLOCK_SKEW_LIMIT = 1.0  # seconds between this host's clock and the broker's before a warning


async def check_access(broker: Broker) -> None:
    """Refuse to start (ConfigError, exit 2) when the broker's user lacks a
    permission a worker needs; only brokers with users (Redis ACL) check."""
    check = getattr(broker, "check_access", None)
    if check is not None:
        await check("worker")


def watch_keyspace(broker: Broker, log: EventLog) -> None:
    """Log `broker.data_lost` once per loss of the keyspace (Redis restarted
    empty or flushed; brokers/redis/keyspace.py), with the counts read before."""
    watch = getattr(broker, "keyspace", None)
    if watch is None:
        return

    def lost(counts: dict[str, Any]) -> None:
        log.warning(
            "broker.data_lost",
            detail="the keyspace this worker knew is gone (Redis restarted without "
            "persistence, or was flushed): jobs, results and dead letters stored "
            "before are lost; job types are registered again",
            **counts,
        )

    watch.on_lost = lost


async def startup_checks(broker: Broker, log: EventLog) -> None:
    await check_clock(broker, log)
    try:
        warnings = await broker.durability_warnings()
    except BrokerError as exc:
        warnings = [f"could not read the broker's persistence settings: {exc}"]
    for warning in warnings:
        log.warning("broker.durability", detail=warning)


async def check_clock(broker: Broker, log: EventLog) -> None:
    """Warn when this host's clock and the broker's disagree: leases, due
    times and firings follow the broker's, so local timestamps (logs, the
    registry's started_at) would not line up with them."""
    before = time.time()
    try:
        broker_now = await broker.server_time()
    except BrokerError as exc:
        log.warning("clock.unknown", error=str(exc))
        return
    local = (before + time.time()) / 2  # the read's midpoint: round trip excluded
    offset = broker_now - local
    if abs(offset) > CLOCK_SKEW_LIMIT:
        log.warning(
            "clock.skew",
            local_time=round(local, 3),
            broker_time=round(broker_now, 3),
            offset_s=round(offset, 3),
            detail=f"this host's clock is more than {CLOCK_SKEW_LIMIT:g}s off the broker's; "
            "scheduling follows the broker's clock",
        )
