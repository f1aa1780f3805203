"""Brokers: `from_url` picks the backend by URL scheme."""

from __future__ import annotations

from ..errors import ConfigError
from ..redact import redact_url
from .base import Broker

__all__ = ["Broker", "from_url"]


def from_url(url: str, *, prefix: str = "bananas", result_ttl: float = 86400.0) -> Broker:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url, prefix=prefix, result_ttl=result_ttl)
    if scheme in ("redis+cluster", "rediss+cluster"):
        from .redis.partitioned import PartitionedBroker

        return PartitionedBroker(url, prefix=prefix, result_ttl=result_ttl)
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url, prefix=prefix, result_ttl=result_ttl)
    raise ConfigError(
        f"broker URL {redact_url(url)!r} has an unknown scheme "
        "(allowed: redis://, rediss://, unix://, redis+cluster://, rediss+cluster://, sqlite:///path)"
    )
