"""Upkeep, the registry and start-up checks on Redis Cluster (a mixin of
PartitionedBroker): recovery and due-job moves per partition under a claim,
the fleet's registry on the home keys, and the refusal of SDK lists."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import ConfigError
from ...keys import Keys
from ...vocabulary import PRIORITIES
from ..records import KEEP_COMPLETED, Recovered
from . import upkeep_scripts
from .cluster import ClusterTopology, key_slot
from .connection import redis_errors

if TYPE_CHECKING:
    from .redis_broker import RedisBroker

T = TypeVar("T")

# A scheduler keeps a partition's upkeep while it comes back within this.
CLAIM_MS = 1500


class PartitionedFleet:
    count: int
    prefix: str
    part_keys: list[Keys]
    topology: ClusterTopology
    _owner: str

    async def parts(self) -> list[RedisBroker]:
        raise NotImplementedError

    async def on(self, p: int, fn: Callable[[RedisBroker], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def check_access(self, role: str) -> None:
        await self.on(-1, lambda b: b.check_access(role))
        if role == "worker":
            await self._refuse_sdk_lists()

    async def _refuse_sdk_lists(self) -> None:
        """SDK clients push onto lists without a hash tag (docs/wire-format.md),
        which a cluster cannot route crash-safely into a partition (a move
        across slots is not atomic): refuse at start, while they hold work."""
        plain = Keys(self.prefix)
        lists = [plain.plain_queue(p) for p in PRIORITIES]
        for key in lists:
            client = await self.topology.client_for_slot(key_slot(key))
            with redis_errors():
                depth = int(await client.llen(key))
            if depth:
                raise ConfigError(
                    f"Redis Cluster: the SDK list {key} holds {depth} job(s), and Bananas on a "
                    "cluster does not read SDK-format lists (docs/deployment.md, Redis Cluster): "
                    "drain them with a worker on a standalone Redis, or enqueue with Bananas"
                )

    async def server_time(self) -> float:
        return await self.on(-1, lambda b: b.server_time())

    async def durability_warnings(self) -> list[str]:
        return await self.on(-1, lambda b: b.durability_warnings())

    # -- upkeep -------------------------------------------------------------------
    async def _claimed(self, p: int, kind: str) -> bool:
        k = self.part_keys[p]
        call = upkeep_scripts.claim(
            claim=f"{k.prefix}:upkeep:{kind}", owner=self._owner, ms=CLAIM_MS
        )
        return bool(await self.on(p, lambda b: b._run(call)))

    async def _each_claimed(self, kind: str, fn: Callable[[RedisBroker], Awaitable[T]]) -> list[T]:
        await self.parts()

        async def one(p: int) -> list[T]:
            if not await self._claimed(p, kind):
                return []
            return [await self.on(p, fn)]

        done = await asyncio.gather(*(one(p) for p in range(self.count)))
        return [x for part in done for x in part]

    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        reports = await self._each_claimed(
            "recover", lambda b: b.recover(max_stalls, limit, KEEP_COMPLETED)
        )
        return Recovered(
            [i for r in reports for i in r.recovered], [i for r in reports for i in r.buried]
        )

    async def move_due(self, limit: int = 1000) -> int:
        return sum(await self._each_claimed("due", lambda b: b.move_due(limit)))

    # -- registry (the home keys) ------------------------------------------------
    async def _heartbeat(self, worker_id: str, entry: bytes) -> None:
        await self.on(-1, lambda b: b._heartbeat(worker_id, entry))

    async def heartbeat_worker(self, info: Any) -> None:
        await self.on(-1, lambda b: b.heartbeat_worker(info))

    async def remove_worker(self, worker_id: str) -> None:
        await self.on(-1, lambda b: b.remove_worker(worker_id))

    async def _live_workers(self, expiry: float) -> list[tuple[str, bytes, float]]:
        return await self.on(-1, lambda b: b._live_workers(expiry))
