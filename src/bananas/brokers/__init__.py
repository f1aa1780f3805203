"""Brokers: `from_url` picks the backend by URL scheme."""

from __future__ import annotations

from ..errors import ConfigError
from ..redact import redact_url
from .base import Broker

__all__ = ["Broker", "from_url"]

REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
    "rediss+sentinel",
)


def from_url(url: str, *, prefix: str = "bananas", result_ttl: float = 86400.0) -> Broker:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        from .redis.urls import CLUSTER, parse

        parsed = parse(url)  # a malformed URL fails here, named, before anything connects
        if parsed.kind == CLUSTER:
            from .redis.partitioned import PartitionedBroker

            return PartitionedBroker(url, prefix=prefix, result_ttl=result_ttl)
        from .redis import RedisBroker

        # A sentinel URL too: its client finds the primary (connection.py)
        return RedisBroker(url, prefix=prefix, result_ttl=result_ttl)
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url, prefix=prefix, result_ttl=result_ttl)
    raise ConfigError(
        f"broker URL {redact_url(url)!r} has an unknown scheme (allowed: "
        + ", ".join(f"{s}://" for s in REDIS_SCHEMES)
        + ", sqlite:///path)"
    )
