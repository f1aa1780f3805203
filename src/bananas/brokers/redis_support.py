"""Helpers shared by the Redis broker modules: error wrapping, reply parsing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import BrokerError, BrokerUnavailable
from .base import JobResult

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def _pack_python(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, (int, float)):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send a {type(arg).__name__} to Redis")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _hiredis_packer() -> Callable[[tuple[Any, ...]], bytes] | None:
    try:
        import hiredis
    except ImportError:  # redis[hiredis] is a dependency, but a pure-Python fallback is cheap
        return None
    packer: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command
    return packer


# One command's RESP bytes from str/bytes/int/float arguments. redis-py's own
# packer re-examines every argument in Python first (a third of an enqueue
# batch's client time); script calls only ever carry these four types.
pack_command: Callable[[tuple[Any, ...]], bytes] = _hiredis_packer() or _pack_python


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
