"""The Redis broker's job progress and lease reads (a mixin): `progress.lua`
writes what a running job reports; handles, `bananas job` and the dashboard
read it back. Nothing here is on the per-job path."""

from __future__ import annotations

from typing import Any

from ...keys import Keys
from ..records import Delivery, JobProgress, Lease
from . import scripts
from .connection import redis_errors, text
from .script_loader import Call


def parse_progress(data: dict[bytes, bytes]) -> JobProgress | None:
    """A progress hash as written by progress.lua; None when absent or not one."""
    if not data:
        return None
    try:
        return JobProgress(
            fraction=float(data[b"fraction"]),
            message=text(data.get(b"message", b"")),
            attempt=int(data.get(b"attempt", b"0")),
            updated_at=int(data.get(b"updated_at", b"0")) / 1000,
        )
    except (KeyError, ValueError):
        return None


class RedisProgress:
    keys: Keys

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def _run(self, call: Call) -> Any:
        raise NotImplementedError

    async def set_progress(
        self, delivery: Delivery, fraction: float, message: str, attempt: int, ttl: float
    ) -> bool:
        k = self.keys
        call = scripts.progress(
            leases=k.leases,
            progress=k.progress(delivery.id),
            id=delivery.id,
            token=delivery.token,
            fraction=repr(float(fraction)),
            message=message,
            attempt=attempt,
            ttl=max(1, int(ttl)),
        )
        return bool(await self._run(call))

    async def get_progress(self, job_id: str) -> JobProgress | None:
        with redis_errors():
            data = await self.redis.hgetall(self.keys.progress(job_id))
        return parse_progress(data)

    async def job_lease(self, job_id: str) -> Lease | None:
        k = self.keys
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(k.leases, job_id)
                pipe.zscore(k.active, job_id)
                lease, deadline_ms = await pipe.execute()
        if lease is None or deadline_ms is None:
            return None
        token = text(lease).split(" ", 1)[0]
        return Lease.from_token(token, float(deadline_ms) / 1000)
