"""Concurrency limits as `bananas status`, the dashboard and the metrics
show them (docs/control.md): per bucket in use, its job type and key, the
limit and its use, e.g. "2/2 running, 37 waiting". Capped work is parked
(in the scheduled set, off any ready list), so it is not counted as queued
or stuck: these rows say what it waits for."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..brokers.capabilities import SlotUsage, concurrency_limits
from ..concurrency import bucket_parts


@dataclass(frozen=True, slots=True)
class LimitRow:
    job_type: str
    key: str | None  # the concurrency key; None: the type's own bucket
    limit: int
    running: int
    waiting: int

    @property
    def use(self) -> str:
        return f"{self.running}/{self.limit} running, {self.waiting} waiting"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def limit_row(usage: SlotUsage) -> LimitRow:
    job_type, key = bucket_parts(usage.bucket)
    return LimitRow(job_type, key, usage.limit, usage.running, usage.waiting)


async def limit_rows(broker: object, limit: int = 200) -> list[LimitRow]:
    """The buckets in use (busiest first); none on a broker without limits."""
    slots = concurrency_limits(broker)
    if slots is None:
        return []
    return [limit_row(u) for u in await slots.slot_usage(limit)]
