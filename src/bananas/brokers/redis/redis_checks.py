"""The Redis broker's start-up checks (a mixin of RedisBroker): the
permission probe of a role (acl.py) and the durability warning read from
Redis' persistence settings. Nothing here is on the per-job path."""

from __future__ import annotations

from typing import Any

from ...errors import BrokerError
from ...keys import Keys
from . import acl
from .connection import redis_errors, text


class RedisChecks:
    keys: Keys
    _producer_checked: bool

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def check_access(self, role: str) -> None:
        """Raise ConfigError naming the first permission the Redis user lacks
        for `role` (worker / producer / dashboard): a probe at start (acl.py).
        A worker's rule covers what it enqueues (cron firings, handlers)."""
        with redis_errors():
            await acl.check_async(self.redis, self.keys, acl.Role(role))
        self._producer_checked = self._producer_checked or role != acl.Role.DASHBOARD

    async def durability_warnings(self) -> list[str]:
        try:
            info = await self.server_info()
        except BrokerError:
            return ["could not read Redis' persistence settings (CONFIG GET is refused here?)"]
        warnings = []
        if info.get("appendonly") != "yes":
            warnings.append(
                "Redis runs without appendonly yes: acknowledged enqueues can be "
                "lost if Redis crashes (production: appendonly yes, appendfsync "
                "everysec)"
            )
        if info.get("maxmemory-policy") != "noeviction":
            warnings.append(
                f"Redis maxmemory-policy is {info.get('maxmemory-policy')!r}: "
                "under memory pressure it may evict job keys (production: noeviction)"
            )
        return warnings

    async def server_info(self) -> dict[str, Any]:
        """Persistence settings, for the start-up durability warning."""
        with redis_errors():
            cfg: dict[Any, Any] = {}
            for name in ("appendonly", "maxmemory-policy", "appendfsync"):
                cfg.update(await self.redis.config_get(name))
            info = await self.redis.info("server")
        out = {text(k): text(v) for k, v in cfg.items()}
        out["redis_version"] = str(info.get("redis_version", ""))
        return out
