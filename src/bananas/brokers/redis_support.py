"""Helpers shared by the Redis broker modules: error wrapping, reply parsing."""

from __future__ import annotations

from typing import Any

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import BrokerError, BrokerUnavailable
from .base import JobResult

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def wrap(exc: Exception) -> BrokerError:
    if isinstance(exc, _UNAVAILABLE):
        return BrokerUnavailable(f"Redis unreachable: {exc}")
    return BrokerError(f"Redis error: {exc}")


def retry_policy() -> Retry:
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_result(data: dict[bytes, bytes]) -> JobResult | None:
    if not data:
        return None
    try:
        duration = float(data.get(b"duration_ms", b"0"))
    except ValueError:
        duration = 0.0
    return JobResult(
        status=text(data.get(b"status", b"")),
        completed_at=text(data.get(b"completed_at", b"")),
        duration_ms=duration,
        result=data.get(b"result"),
        error=text(data[b"error"]) if b"error" in data else None,
    )
