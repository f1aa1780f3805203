"""Cron and fixed-interval schedules declared in code, and their firing times.

A firing is identified by (job type, firing time), so its job id is the same
in every scheduler process: enqueueing it is idempotent, and any number of
schedulers can run at once without a firing being enqueued twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .errors import BananasError

if TYPE_CHECKING:
    from croniter import croniter as Croniter


def _croniter() -> type[Croniter]:
    # Imported when a cron schedule is first used: croniter (and dateutil)
    # take a noticeable share of a worker's start-up, and most apps have none.
    from croniter import croniter

    found: type[Croniter] = croniter
    return found


MAX_FIRINGS_PER_CHECK = 100


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str  # the job type it enqueues
    cron: str | None = None
    every: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    priority: str | None = None
    timezone: tzinfo = UTC

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise BananasError(f"schedule {self.name!r}: give exactly one of cron or every")
        if self.cron is not None and not _croniter().is_valid(self.cron):
            raise BananasError(
                f"schedule {self.name!r}: invalid cron expression {self.cron!r} "
                "(5 fields, or 6 with seconds last)"
            )
        if self.every is not None and self.every < 0.1:
            raise BananasError(f"schedule {self.name!r}: every must be at least 100ms")

    @property
    def describe(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.every:g}s"

    def firings(self, after: float, until: float) -> list[float]:
        """Firing times t (unix seconds) with after < t <= until, oldest first."""
        if until <= after:
            return []
        if self.every is not None:
            first = math.floor(after / self.every) + 1
            last = math.floor(until / self.every)
            start = max(first, last - MAX_FIRINGS_PER_CHECK + 1)
            return [n * self.every for n in range(start, last + 1)]
        assert self.cron is not None
        it = _croniter()(self.cron, datetime.fromtimestamp(after, self.timezone))
        out: list[float] = []
        while len(out) < MAX_FIRINGS_PER_CHECK:
            t = float(it.get_next(float))
            if t > until:
                break
            out.append(t)
        return out

    def next_firing(self, now: float) -> float:
        if self.every is not None:
            return (math.floor(now / self.every) + 1) * self.every
        assert self.cron is not None
        return float(
            _croniter()(self.cron, datetime.fromtimestamp(now, self.timezone)).get_next(float)
        )

    def firing_id(self, fired_at: float) -> str:
        return f"cron:{self.name}:{round(fired_at * 1000)}"


def zone(name: str | tzinfo) -> tzinfo:
    if isinstance(name, tzinfo):
        return name
    try:
        return UTC if name.upper() == "UTC" else ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise BananasError(f"unknown timezone {name!r}") from exc
