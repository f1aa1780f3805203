"""Brokers: `from_url` picks the backend by URL scheme."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Broker

__all__ = ["Broker", "from_url"]


def from_url(url: str, *, prefix: str = "bananas", result_ttl: float = 86400.0) -> Broker:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url, prefix=prefix, result_ttl=result_ttl)
    if scheme == "sqlite":
        try:
            from .sqlite import SQLiteBroker  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ConfigError(
                f"broker URL {url!r}: the embedded SQLite broker is not available in this "
                "version; set REDIS_URL"
            ) from None
        return SQLiteBroker(url, prefix=prefix, result_ttl=result_ttl)  # type: ignore[no-any-return,unused-ignore]
    raise ConfigError(
        f"broker URL {url!r} has an unknown scheme (allowed: redis://, rediss://, unix://, "
        "sqlite:///path)"
    )
