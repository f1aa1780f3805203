"""The keyspace marker: noticing that Redis lost its data.

The first registry heartbeat into a keyspace stores a marker
(`bananas:keyspace`, "<random> <created unix ms>", plus " lost" when the
process that stored it had seen another before); every heartbeat returns
the one stored. A process that saw one marker and later gets another knows
the keyspace it knew is gone (Redis restarted without persistence, or was
flushed) and reports it once per loss, with the last counts it read before
(the monitor's snapshot): what was lost, as far as it can tell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..records import BrokerStats

# A keyspace found lost (after a flush or an empty restart) gives the workers
# this long to register their job types again (they do on every registry
# heartbeat, REGISTRY_HEARTBEAT=2s) before route_plain dead-letters an SDK
# record of a type none registered as unknown.
REGISTRATION_GRACE_MS = 10_000


class KeyspaceWatch:
    __slots__ = ("last_stats", "marker", "on_lost")

    def __init__(self) -> None:
        self.marker: str | None = None
        self.last_stats: BrokerStats | None = None  # the last snapshot read before
        self.on_lost: Callable[[dict[str, Any]], None] | None = None

    def seen(self, marker: str) -> None:
        before, self.marker = self.marker, marker
        if before is not None and before != marker and self.on_lost is not None:
            self.on_lost(self.report(before, marker))

    def report(self, before: str, now: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keyspace_created_ms": _born(before),
            "new_keyspace_created_ms": _born(now),
        }
        stats = self.last_stats
        if stats is not None:
            out.update(
                queued_before=sum(stats.ready.values()) + sum(stats.unrouted.values()),
                scheduled_before=stats.scheduled,
                running_before=stats.active,
                dead_before=stats.dead,
            )
        return out


def _born(marker: str) -> int | None:
    parts = marker.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
