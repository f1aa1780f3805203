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


def from_url(
    url: str,
    *,
    prefix: str = "bananas",
    result_ttl: float = 86400.0,
    min_replicas: int = 0,
    min_replicas_timeout: float = 1.0,
) -> Broker:
    """The broker of `url`. `min_replicas` (REDIS_MIN_REPLICAS): Redis writes
    are acknowledged once that many replicas have them, waiting at most
    `min_replicas_timeout` seconds (docs/deployment.md)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        from .redis.urls import CLUSTER, parse

        parsed = parse(url)  # a malformed URL fails here, named, before anything connects
        if parsed.kind == CLUSTER:
            from .redis.partitioned import PartitionedBroker

            return PartitionedBroker(
                url,
                prefix=prefix,
                result_ttl=result_ttl,
                min_replicas=min_replicas,
                min_replicas_timeout=min_replicas_timeout,
            )
        from .redis import RedisBroker

        return RedisBroker(
            url,
            prefix=prefix,
            result_ttl=result_ttl,
            min_replicas=min_replicas,
            min_replicas_timeout=min_replicas_timeout,
        )
    if scheme == "sqlite":
        if min_replicas > 0:
            raise ConfigError(
                f"REDIS_MIN_REPLICAS={min_replicas} needs a Redis broker; {redact_url(url)!r} "
                "is SQLite, which has no replicas (allowed with SQLite: 0, the default)"
            )
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url, prefix=prefix, result_ttl=result_ttl)
    raise ConfigError(
        f"broker URL {redact_url(url)!r} has an unknown scheme (allowed: "
        + ", ".join(f"{s}://" for s in REDIS_SCHEMES)
        + ", sqlite:///path)"
    )
