"""Connecting to Redis: client options, the one place redis / socket errors
become BrokerError, the fast command packer, reply parsing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis as redis_sync
import redis.asyncio as redis_async
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...errors import (
    BrokerError,
    BrokerMoved,
    BrokerNotReached,
    BrokerRefusesWrites,
    BrokerUnavailable,
)
from ..records import JobResult

# Result waits wake on the job's PUBLISH; they also look every this many
# seconds, so a notification lost to a reconnect costs at most this.
RESULT_POLL_S = 1.0

# Errors that mean "Redis cannot be reached right now", not "the call was wrong".
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def client_options() -> dict[str, Any]:
    """Connection settings shared by the asyncio (worker) and sync (client) clients."""
    return {
        "socket_connect_timeout": 5,
        # Explicit: redis-py 8 reads time out after 5 s by default, 5.x never.
        # Blocking commands here wait at most 2 s (IDLE_WAIT, pump_foreign).
        "socket_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def async_client(url: str) -> Any:
    # Typed as Any: redis-py's stubs model decode_responses as bytes | str
    # everywhere; with decode_responses=False every reply here is bytes.
    if _is_sentinel(url):
        from .sentinel import async_sentinel_client
        from .urls import parse

        return async_sentinel_client(parse(url), client_options())
    return redis_async.Redis.from_url(url, **client_options())


def sync_client(url: str) -> Any:
    if _is_sentinel(url):
        from .sentinel import sync_sentinel_client
        from .urls import parse

        return sync_sentinel_client(parse(url), client_options())
    return redis_sync.Redis.from_url(url, **client_options())


# Cluster replies that mean "not run here, ask the slot map again" (AskError
# covers MOVED); READONLY: a primary demoted to a replica by a failover.
REDIRECTS = (AskError, TryAgainError, ClusterDownError, ReadOnlyError)


def _is_sentinel(url: str) -> bool:
    return url[:17].lower().startswith(("redis+sentinel:", "rediss+sentinel:"))


def wrap(exc: BaseException) -> BrokerError:
    if isinstance(exc, REDIRECTS):
        return BrokerMoved(f"Redis Cluster redirect: {type(exc).__name__} {exc}")
    if isinstance(exc, UNAVAILABLE):
        # redis-py says a connect failed (refused, timed out) only in its text:
        # "Error 111 connecting to h:p", "Timeout connecting to server".
        if "connecting to" in str(exc):
            return BrokerNotReached(f"Redis unreachable: {exc}")
        return BrokerUnavailable(f"Redis unreachable: {exc}")
    if isinstance(exc, OutOfMemoryError) or str(exc).startswith("OOM "):
        # Every script declares its flags (lua/*.lua first line), so Redis
        # refuses a memory-growing script whole: nothing of it was applied.
        return BrokerRefusesWrites(f"Redis refuses writes (maxmemory reached): {exc}")
    return BrokerError(f"Redis error: {exc}")


@contextmanager
def redis_errors() -> Iterator[None]:
    """The broker boundary: a redis-py or socket error raised inside becomes
    BrokerError (BrokerUnavailable when Redis cannot be reached)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise wrap(exc) from exc


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


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_result(data: dict[bytes, bytes]) -> JobResult | None:
    if not data:
        return None
    # Bananas' own duration_us first (microseconds); a hash an SDK or an
    # older Bananas wrote has only duration_ms (integer, or "12.346").
    try:
        if b"duration_us" in data:
            duration = int(data[b"duration_us"]) / 1000
        else:
            duration = float(data.get(b"duration_ms", b"0"))
    except ValueError:
        duration = 0.0
    # A cancelled job's hash says `failed` (the status SDK readers know) and
    # carries `cancelled`: Bananas reads it as cancelled (docs/wire-format.md).
    status = "cancelled" if b"cancelled" in data else text(data.get(b"status", b""))
    return JobResult(
        status=status,
        completed_at=text(data.get(b"completed_at", b"")),
        duration_ms=duration,
        result=data.get(b"result"),
        error=text(data[b"error"]) if b"error" in data else None,
    )
