"""The Redis broker's routing and upkeep: records other clients pushed onto
the plain SDK lists (ForeignRouting), due jobs, and the recovery of expired
leases. A mixin of RedisBroker, apart so each file holds one concern."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from ...job import now_iso
from ...keys import Keys
from ..base import ForeignRouting
from ..records import KEEP_COMPLETED, Recovered, stalled_record
from ..workflow_records import member_of_raw
from . import upkeep_scripts
from .connection import redis_errors, text
from .keyspace import REGISTRATION_GRACE_MS
from .script_loader import Call
from .upkeep_scripts import Prefixes


class RedisUpkeep(ForeignRouting):
    keys: Keys
    result_ttl: float
    _ttl: str
    _publish: str
    _prefixes: Prefixes

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def _run(self, call: Call) -> Any:
        raise NotImplementedError

    async def register_types(self, names: Sequence[str]) -> None:
        if not names:
            return
        now = str(int(time.time() * 1000))  # informational only: nothing expires by it
        with redis_errors():
            await self.redis.hset(self.keys.types, mapping=dict.fromkeys(names, now))

    # -- routing (foreign records, due jobs, recovery) ----------------------------
    def _routing(self) -> dict[str, Any]:
        """What every script that routes or buries by record (lua/_route.lua) takes."""
        k = self.keys
        return {
            "queues": k.queues,
            "dead": k.dead,
            "dead_info": k.dead_info,
            "index": k.nonempty,
            "now_iso": now_iso(),
            "ttl": self._ttl,
            "prefixes": self._prefixes,
        }

    def _foreign_lists(self, priority: str, route: str | None) -> tuple[str, str]:
        """(SDK list, its hand-over list): the plain list, or a route's (Go scheduler)."""
        k = self.keys
        if route is None:
            return k.plain_queue(priority), k.routing(priority)
        return k.route_queue(route, priority), k.route_routing(route, priority)

    async def _route_plain(
        self, priority: str, route: str | None, limit: int = 1000
    ) -> tuple[int, bool]:
        k = self.keys
        plain, routing = self._foreign_lists(priority, route)
        call = upkeep_scripts.route_plain(
            routing=routing,
            plain=plain,
            types=k.types,
            keyspace=k.keyspace,
            priority=priority,
            limit=limit,
            **self._routing(),
            grace_ms=REGISTRATION_GRACE_MS,
            route=route or "",
        )
        routed, buried, more = await self._run(call)
        return int(routed) + int(buried), bool(more)

    async def _route_all(self, priority: str, route: str | None) -> int:
        total, more = await self._route_plain(priority, route)
        while more:
            n, more = await self._route_plain(priority, route)
            total += n
        return total

    async def pump_foreign(self, priority: str, timeout: float, route: str | None = None) -> int:
        total = await self._route_all(priority, route)
        if total:
            return total
        plain, routing = self._foreign_lists(priority, route)
        with redis_errors():
            moved = await self.redis.blmove(plain, routing, timeout, "RIGHT", "LEFT")
        return 0 if moved is None else await self._route_all(priority, route)

    # -- scheduler / recovery ---------------------------------------------
    async def recover_expired(self, max_stalls: int, limit: int = 500) -> Recovered:
        return await self.recover(max_stalls, limit, KEEP_COMPLETED)

    async def recover(self, max_stalls: int, limit: int, keep_completed: int) -> Recovered:
        k = self.keys
        call = upkeep_scripts.recover(
            active=k.active,
            leases=k.leases,
            stalls=k.stalls,
            completed=k.completed,
            held=k.unique_held,
            max_stalls=max_stalls,
            limit=limit,
            **self._routing(),
            keep_completed=keep_completed,
            ttl_ms=int(self.result_ttl * 1000),
            unique_prefix=k.unique_prefix,
            wf_context=k.wf_context(self._ttl, self._publish, now_iso()),
        )
        recovered, buried = await self._run(call)
        dead = [buried[i : i + 4] for i in range(0, len(buried), 4)]
        if dead:
            await self._fail_stalled(dead)
        return Recovered([x.decode() for x in recovered], [d[0].decode() for d in dead])

    async def _fail_stalled(self, dead: list[list[Any]]) -> None:
        """Mark the records of jobs buried for stalling failed (see recover.lua);
        a record that cannot be decoded is kept as it was."""
        writes = []
        for raw_id, died_ms, raw, reason in dead:
            record = stalled_record(raw or None, text(reason))
            if record is not None:
                job_id = raw_id.decode()
                wf = member_of_raw(raw)
                call = upkeep_scripts.fail_stalled(
                    dead=self.keys.dead,
                    record_key=self.keys.job(job_id),
                    id=job_id,
                    died_ms=int(died_ms),
                    record=record,
                    wf=wf,
                    wf_context=self.keys.wf_context(self._ttl, self._publish, now_iso())
                    if wf
                    else "",
                    reason=text(reason),
                )
                writes.append(self._run(call))
        await asyncio.gather(*writes)

    async def move_due(self, limit: int = 1000) -> int:
        k = self.keys
        total = 0
        while True:
            call = upkeep_scripts.move_due(
                scheduled=k.scheduled,
                held=k.unique_held,
                limit=limit,
                **self._routing(),
                unique_prefix=k.unique_prefix,
            )
            moved, buried, more = await self._run(call)
            total += int(moved) + int(buried)
            if not more:
                return total
