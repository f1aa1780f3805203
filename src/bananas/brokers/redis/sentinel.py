"""Clients for a Sentinel-managed primary (`redis+sentinel://`).

The client is redis-py's `Sentinel(...).master_for(service)`: a new
connection asks the sentinels where the primary is. Bananas also holds
connections outside the pool (the batcher's, the sync client's per-thread
one, both from `connection_pool.make_connection()`), and long-lived pool
connections; three gaps of redis-py's are closed here, for sentinel URLs only:

- a connection that stays open follows a switch. After a planned failover
  (`SENTINEL FAILOVER`) the old primary keeps accepting writes until the
  sentinels reconfigure it, ~10 s later, and then discards them in its
  resync as a replica: an acknowledged enqueue lost (measured). So before a
  send, a connection compares its address with the primary the sentinels
  last named, asking them again at most every RECHECK_S per client (one
  SENTINEL MASTERS a second per process, nothing per job), and reconnects
  when they differ;
- a broken connection's implicit reconnect (redis-py's send path, its retry)
  asks the sentinels instead of dialling the dead primary's address again;
- closing the client closes its sentinel connections (redis-py leaves them
  to the Sentinel object, which nobody else holds).

And a service name no sentinel monitors is a ConfigError naming it (and the
services they do monitor), not an endless "Redis unreachable": checked only
until a primary was found once, so a failover in progress (sentinels that
know the service but report it down) stays a retryable BrokerUnavailable.
"""

from __future__ import annotations

import time
from typing import Any

import redis as redis_sync
import redis.asyncio as redis_async
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFound
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncManaged
from redis.asyncio.sentinel import SentinelManagedSSLConnection as AsyncManagedSSL
from redis.exceptions import AuthenticationError, RedisError
from redis.sentinel import MasterNotFoundError as SyncMasterNotFound
from redis.sentinel import Sentinel as SyncSentinel
from redis.sentinel import SentinelManagedConnection as SyncManaged
from redis.sentinel import SentinelManagedSSLConnection as SyncManagedSSL

from ...errors import BrokerIncompatible, ConfigError
from .urls import RedisURL


class SentinelRefusal(BrokerIncompatible, ConfigError):
    """The sentinels answer but cannot serve this URL (no such service, the
    sentinel credentials refused): retrying cannot help. A ConfigError to
    producers and the CLI; to a worker also BrokerIncompatible, so it refuses
    to start with this one line, and its health loops (which see
    BrokerErrors) do not report it again."""


# How stale the sentinels' answer may be before a send asks them again: the
# longest a connection keeps writing to a primary they have replaced.
RECHECK_S = 1.0


def async_sentinel_client(url: RedisURL, options: dict[str, Any]) -> Any:
    primary, sentinels = _kwargs(url, options)
    primary["connection_class"] = _AsyncTLSConnection if url.tls else _AsyncConnection
    manager = _AsyncSentinel(url, list(url.nodes), sentinel_kwargs=sentinels, **primary)
    return manager.master_for(str(url.service_name), redis_class=_AsyncPrimary)


def sync_sentinel_client(url: RedisURL, options: dict[str, Any]) -> Any:
    primary, sentinels = _kwargs(url, options)
    primary["connection_class"] = _SyncTLSConnection if url.tls else _SyncConnection
    manager = _SyncSentinel(url, list(url.nodes), sentinel_kwargs=sentinels, **primary)
    return manager.master_for(  # type: ignore[no-untyped-call]
        str(url.service_name), redis_class=_SyncPrimary
    )


def _kwargs(url: RedisURL, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the primary's connection options, the sentinels'): the same timeouts
    and TLS for both; each side its own credentials."""
    extra = url.connection_options()
    primary = {**options, **extra, "db": url.db}
    if url.username is not None:
        primary["username"] = url.username
    if url.password is not None:
        primary["password"] = url.password
    shared = {k: v for k, v in primary.items() if k.startswith(("socket_", "ssl"))}
    sentinels: dict[str, Any] = {**shared, "retry": options.get("retry")}
    if url.sentinel_username is not None:
        sentinels["username"] = url.sentinel_username
    if url.sentinel_password is not None:
        sentinels["password"] = url.sentinel_password
    return primary, sentinels


def _unknown_service(url: RedisURL, answers: list[Any], errors: list[BaseException]) -> None:
    """Raise SentinelRefusal when the sentinels that answered all lack the service
    (or all refused the sentinel credentials); return to let the caller's
    MasterNotFoundError stand otherwise."""
    where = ",".join(f"{h}:{p}" for h, p in url.nodes)
    if not answers and errors and all(isinstance(e, AuthenticationError) for e in errors):
        raise SentinelRefusal(
            f"the sentinels at {where} refused the sentinel credentials "
            "(sentinel_username / sentinel_password in REDIS_URL)"
        )
    if not answers or any(url.service_name in masters for masters in answers):
        return
    known = sorted({str(name) for masters in answers for name in masters})
    raise SentinelRefusal(
        f"no sentinel at {where} monitors a primary named {url.service_name!r} "
        f"(they monitor: {', '.join(known) or 'nothing'}); "
        "fix the service name in REDIS_URL (redis+sentinel://host:port,.../service_name)"
    )


class _AsyncSentinel(AsyncSentinel):
    def __init__(self, url: RedisURL, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.url = url
        self.found = False
        self.address: tuple[str, int] | None = None  # the primary last named
        self.asked_at = 0.0  # monotonic

    async def discover_master(self, service_name: str) -> Any:
        try:
            address = await super().discover_master(service_name)
        except AsyncMasterNotFound:
            if not self.found:
                answers: list[Any] = []
                errors: list[BaseException] = []
                for sentinel in self.sentinels:
                    try:
                        answers.append(await sentinel.sentinel_masters())
                    except RedisError as exc:
                        errors.append(exc)
                _unknown_service(self.url, answers, errors)
            raise
        self.found = True
        self.address, self.asked_at = (address[0], int(address[1])), time.monotonic()
        return address


class _SyncSentinel(SyncSentinel):
    def __init__(self, url: RedisURL, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.url = url
        self.found = False
        self.address: tuple[str, int] | None = None
        self.asked_at = 0.0

    def discover_master(self, service_name: str) -> Any:
        try:
            address = super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except SyncMasterNotFound:
            if not self.found:
                answers: list[Any] = []
                errors: list[BaseException] = []
                for sentinel in self.sentinels:
                    try:
                        answers.append(sentinel.sentinel_masters())
                    except RedisError as exc:
                        errors.append(exc)
                _unknown_service(self.url, answers, errors)
            raise
        self.found = True
        self.address, self.asked_at = (address[0], int(address[1])), time.monotonic()
        return address


class _AsyncPrimary(redis_async.Redis):
    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager: Any = self.connection_pool.sentinel_manager  # type: ignore[attr-defined]
        await manager.aclose()


class _SyncPrimary(redis_sync.Redis):
    def close(self) -> None:
        super().close()
        manager: Any = self.connection_pool.sentinel_manager  # type: ignore[attr-defined]
        manager.close()


class _AsyncConnection(AsyncManaged):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected or await self._replaced():
            await self.disconnect()
            await self.connect()  # type: ignore[no-untyped-call]  # asks the sentinels
        await super().send_packed_command(command, check_health)

    async def _replaced(self) -> bool:
        """Whether the sentinels name another primary than this connection's."""
        manager: _AsyncSentinel = self.connection_pool.sentinel_manager
        if time.monotonic() - manager.asked_at > RECHECK_S:
            manager.asked_at = time.monotonic()  # one question per RECHECK_S, even failed
            try:
                await manager.discover_master(self.connection_pool.service_name)
            except (RedisError, OSError):
                return False  # no answer: keep what we have; a broken link shows itself
        return manager.address is not None and manager.address != (self.host, int(self.port))


class _AsyncTLSConnection(_AsyncConnection, AsyncManagedSSL):
    pass


class _SyncConnection(SyncManaged):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._sock is None or self._replaced():
            self.disconnect()  # type: ignore[no-untyped-call]
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def _replaced(self) -> bool:
        manager: _SyncSentinel = self.connection_pool.sentinel_manager
        if time.monotonic() - manager.asked_at > RECHECK_S:
            manager.asked_at = time.monotonic()
            try:
                manager.discover_master(self.connection_pool.service_name)
            except (RedisError, OSError):
                return False
        return manager.address is not None and manager.address != (self.host, int(self.port))


class _SyncTLSConnection(_SyncConnection, SyncManagedSSL):
    pass
