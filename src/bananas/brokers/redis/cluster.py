"""Redis Cluster topology: which primary serves a slot, and one plain client
per primary.

The partitioned broker (partitioned.py) sends every call of a partition to
the primary that owns the partition's slot over an ordinary redis-py client,
so the worker path keeps its batcher (one packed write per event-loop turn,
batch.py) on a cluster too; redis-py's own cluster client pays its routing
and pipeline bookkeeping per command. The slot map comes from CLUSTER SLOTS
of any node that answers (the seeds of the URL first, then every node seen);
it is read again after a MOVED/ASK/TRYAGAIN/CLUSTERDOWN/READONLY reply or a
lost connection (a failover), at most once per REFRESH_MIN_S.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis as redis_sync
import redis.asyncio as redis_async
from redis.crc import key_slot as _key_slot
from redis.exceptions import RedisError

from ...errors import BrokerUnavailable, ConfigError
from .connection import client_options
from .urls import CLUSTER, FORM, parse

SLOTS = 16384
# A burst of redirects (a reshard moving many slots) reads the map once.
REFRESH_MIN_S = 0.05

Address = tuple[str, int]


def key_slot(key: str) -> int:
    return int(_key_slot(key.encode()))


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """redis+cluster://[user:password@]host:port[,host:port...] (urls.py)."""

    seeds: tuple[Address, ...]
    username: str | None
    password: str | None
    tls: bool
    extra: tuple[tuple[str, Any], ...] = ()

    def options(self) -> dict[str, Any]:
        opts = client_options()
        opts.update(dict(self.extra))
        if self.username:
            opts["username"] = self.username
        if self.password:
            opts["password"] = self.password
        if self.tls:
            opts["ssl"] = True
        return opts


def parse_cluster_url(url: str) -> ClusterURL:
    parsed = parse(url)
    if parsed.kind != CLUSTER:
        raise ConfigError(f"{parsed.redacted!r} is not a cluster URL ({FORM[CLUSTER]})")
    return ClusterURL(
        parsed.nodes,
        parsed.username,
        parsed.password,
        parsed.tls,
        tuple(parsed.connection_options().items()),
    )


def parse_slots(reply: Sequence[Any], asked: Address) -> list[tuple[int, int, Address]]:
    """CLUSTER SLOTS -> [(first, last, primary address)]. A node that never
    learnt its own address (a one-node cluster) names itself with an empty
    host: that is the node asked."""
    out = []
    for entry in reply:
        first, last, primary = int(entry[0]), int(entry[1]), entry[2]
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        out.append((first, last, (host or asked[0], int(primary[1]))))
    return out


class SlotMap:
    """slot -> primary address, from CLUSTER SLOTS."""

    def __init__(self) -> None:
        self.owner: list[Address | None] = [None] * SLOTS
        self.known: set[Address] = set()

    def load(self, ranges: list[tuple[int, int, Address]]) -> None:
        owner: list[Address | None] = [None] * SLOTS
        for first, last, address in ranges:
            owner[first : last + 1] = [address] * (last - first + 1)
            self.known.add(address)
        self.owner = owner

    def primaries(self) -> list[Address]:
        return sorted({a for a in self.owner if a is not None})


class ClusterTopology:
    """The asyncio side: a client per primary, for the worker and the CLI."""

    def __init__(self, url: ClusterURL) -> None:
        self.url = url
        self.map = SlotMap()
        self._clients: dict[Address, Any] = {}
        self._lock = asyncio.Lock()
        self._read_at = 0.0
        self.generation = 0  # bumped on every map change: partitions retarget

    def _client(self, address: Address) -> Any:
        client = self._clients.get(address)
        if client is None:
            client = redis_async.Redis(host=address[0], port=address[1], **self.url.options())
            self._clients[address] = client
        return client

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._read_at < REFRESH_MIN_S:
                return
            errors = []
            for address in [*self.url.seeds, *sorted(self.map.known - set(self.url.seeds))]:
                try:
                    reply = await self._client(address).execute_command("CLUSTER SLOTS")
                except (RedisError, OSError) as exc:
                    errors.append(f"{address[0]}:{address[1]}: {exc}")
                    continue
                ranges = parse_slots(reply, address)
                if not ranges:
                    errors.append(f"{address[0]}:{address[1]}: no slots assigned yet")
                    continue
                before = self.map.owner
                self.map.load(ranges)
                if self.map.owner != before:
                    self.generation += 1
                self._read_at = time.monotonic()
                return
            raise BrokerUnavailable(
                "no Redis Cluster node answered CLUSTER SLOTS: " + "; ".join(errors)
            )

    async def client_for_slot(self, slot: int) -> Any:
        if self.map.owner[slot] is None:
            await self.refresh(force=True)
        address = self.map.owner[slot]
        if address is None:
            raise BrokerUnavailable(f"Redis Cluster: no primary serves slot {slot}")
        return self._client(address)

    def cached_client(self, slot: int) -> Any | None:
        address = self.map.owner[slot]
        return None if address is None else self._client(address)

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


class SyncClusterTopology:
    """The same for plain code (broker.sync): web threads enqueueing."""

    def __init__(self, url: ClusterURL) -> None:
        self.url = url
        self.map = SlotMap()
        self._clients: dict[Address, Any] = {}
        self._read_at = 0.0

    def _client(self, address: Address) -> Any:
        client = self._clients.get(address)
        if client is None:
            client = redis_sync.Redis(host=address[0], port=address[1], **self.url.options())
            self._clients[address] = client
        return client

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._read_at < REFRESH_MIN_S:
            return
        errors = []
        for address in [*self.url.seeds, *sorted(self.map.known - set(self.url.seeds))]:
            try:
                reply = self._client(address).execute_command("CLUSTER SLOTS")
            except (RedisError, OSError) as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            if ranges := parse_slots(reply, address):
                self.map.load(ranges)
                self._read_at = time.monotonic()
                return
        raise BrokerUnavailable(
            "no Redis Cluster node answered CLUSTER SLOTS: " + "; ".join(errors)
        )

    def client_for_slot(self, slot: int) -> Any:
        if self.map.owner[slot] is None:
            self.refresh(force=True)
        address = self.map.owner[slot]
        if address is None:
            raise BrokerUnavailable(f"Redis Cluster: no primary serves slot {slot}")
        return self._client(address)

    def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()
