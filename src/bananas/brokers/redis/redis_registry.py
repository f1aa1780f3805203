"""The Redis broker's worker registry (a mixin of RedisBroker): the heartbeat
script (which also re-registers job types and watches the keyspace marker),
leaving the registry, and listing the live entries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ...keys import Keys
from ...vocabulary import WorkerInfo
from ..records import encode_worker
from . import upkeep_scripts
from .connection import redis_errors
from .keyspace import KeyspaceWatch
from .script_loader import Call


class RedisRegistry:
    keys: Keys
    keyspace: KeyspaceWatch

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def _run(self, call: Call) -> Any:
        raise NotImplementedError

    async def heartbeat_worker(self, info: WorkerInfo) -> None:
        await self._beat(info.id, encode_worker(info), info.job_types)

    async def _heartbeat(self, worker_id: str, entry: bytes) -> None:
        await self._beat(worker_id, entry, ())

    async def _beat(self, worker_id: str, entry: bytes, job_types: Sequence[str]) -> None:
        """Heartbeat, register the job types again, and watch the keyspace marker."""
        k = self.keys
        _, marker = await self._run(
            upkeep_scripts.heartbeat(
                workers=k.workers,
                seen=k.workers_seen,
                types=k.types,
                keyspace=k.keyspace,
                id=worker_id,
                entry=entry,
                marker=uuid.uuid4().hex,
                knew="0" if self.keyspace.marker is None else "1",
                job_type=[(name,) for name in job_types],
            )
        )
        self.keyspace.seen(marker.decode())

    async def remove_worker(self, worker_id: str) -> None:
        k = self.keys
        with redis_errors():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hdel(k.workers, worker_id)
                pipe.zrem(k.workers_seen, worker_id)
                await pipe.execute()

    async def _live_workers(self, expiry: float) -> list[tuple[str, bytes, float]]:
        k = self.keys
        call = upkeep_scripts.prune_workers(
            workers=k.workers, seen=k.workers_seen, expiry_ms=int(expiry * 1000)
        )
        reply = await self._run(call)
        return [
            (reply[i].decode(), reply[i + 1], int(reply[i + 2]) / 1000)
            for i in range(0, len(reply), 3)
        ]
