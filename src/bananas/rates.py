"""Rate limits (docs/control.md, "Rate limits"): the spec a job type declares
(`@app.job(rate_limit="100/s")`), the bucket a job counts against, and the
record fields the worker's admission (worker/rates.py) reads and writes.

A limit is "<count>/<unit>", unit s, m or h: at most `count` jobs start per
unit across the whole fleet, spaced evenly (one every unit/count seconds,
no burst). A job enqueued with `_rate_key="tenant-42"` counts against the
bucket of its (type, key) instead of its type's: the type's limit applies
per key.

A bucket is named by its id, the JSON array [type] or [type, key], which is
unambiguous whatever characters a type or key holds; on Redis Cluster it
lives in partition `partition_of_key(id)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import BananasError

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
ALLOWED = '"<count>/s", "<count>/m" or "<count>/h" (a whole count >= 1, e.g. "100/s")'
MAX_PER_SECOND = 100_000  # a spacing under 10 microseconds is not a limit
_SPEC = re.compile(r"\s*(\d+)\s*/\s*([smh])\s*")

# Record fields (Bananas' own; an SDK ignores them, docs/wire-format.md).
RATE_KEY = "rate_key"  # the caller's `_rate_key`
# The job holds a reserved start slot: the attempts count it was parked
# with. A job leased again with the same count starts without taking a
# second slot; a retry (attempts + 1) takes a new one.
RESERVED = "rate_reserved"
THROTTLED = "throttled"  # the record's `scheduled_reason` while it waits for its slot
SNOOZED = "retry_later"  # ... after the handler raised RetryLater
SNOOZES = "snoozes"  # how many times the job raised RetryLater
MAX_SNOOZES = 100  # past this, a RetryLater is charged as a failed attempt


@dataclass(frozen=True, slots=True)
class RateLimit:
    count: int
    unit: str  # "s", "m" or "h"

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return UNITS[self.unit] / self.count

    @property
    def text(self) -> str:
        return f"{self.count}/{self.unit}"


@dataclass(frozen=True, slots=True)
class RateUsage:
    """A job type's limit and its use now (the views)."""

    name: str
    limit: str  # "50/s"
    throttled: int  # jobs waiting for their slot now
    # Seconds of slots already reserved ahead in the type's own bucket (keyless
    # jobs): above 0, the type starts at its limit.
    booked: float

    @property
    def per_second(self) -> float:
        """The limit in starts per second (0 for a limit this code cannot read)."""
        match = _SPEC.fullmatch(self.limit)
        return int(match.group(1)) / UNITS[match.group(2)] if match else 0.0


def check_rate_limit(value: Any, where: str) -> RateLimit | None:
    """A job type's `rate_limit` (None: unlimited), or a BananasError naming
    `where` and the allowed forms."""
    if value is None:
        return None
    match = _SPEC.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise BananasError(f"{where}: rate_limit={value!r} is not a rate (allowed: {ALLOWED})")
    limit = RateLimit(int(match.group(1)), match.group(2))
    if limit.count < 1 or limit.count / UNITS[limit.unit] > MAX_PER_SECOND:
        raise BananasError(
            f"{where}: rate_limit={value!r} is out of range "
            f"(allowed: {ALLOWED}, at most {MAX_PER_SECOND}/s)"
        )
    return limit


def check_rate_key(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BananasError(f"_rate_key for {name!r} must be a non-empty string, got {value!r}")
    return value


def bucket_id(name: str, key: str | None) -> str:
    """The bucket a job of type `name` with rate key `key` counts against."""
    return orjson.dumps([name] if key is None else [name, key]).decode()


__all__ = [
    "RATE_KEY",
    "RESERVED",
    "RateLimit",
    "RateUsage",
    "bucket_id",
    "check_rate_key",
    "check_rate_limit",
]
