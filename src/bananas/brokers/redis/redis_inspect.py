"""Inspection and admin methods of the Redis broker (a mixin; the registry is
redis_registry.py):
read-mostly queries for `bananas status`, the metrics snapshot and the
dashboard, kept apart from the worker's hot path in redis_broker.py."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ...job import created_at, now_iso
from ...job import record_field as _field
from ...keys import PRIORITY_RANK, Keys, parse_member, split_lane
from ...vocabulary import PRIORITIES, JobState
from ..records import (
    BrokerStats,
    DeadInfo,
    DeadLetter,
    JobResult,
    JobSummary,
    QueueRef,
    Throughput,
    Unique,
)
from ..workflow_records import member_of_raw
from . import upkeep_scripts
from .connection import parse_result as _parse_result
from .connection import redis_errors
from .keyspace import KeyspaceWatch
from .script_loader import Call


class RedisInspection:
    keys: Keys
    keyspace: KeyspaceWatch
    _ttl: str
    _publish: str

    async def get_record(self, job_id: str) -> bytes | None:
        raise NotImplementedError

    @property
    def redis(self) -> Any:
        raise NotImplementedError

    async def _run(self, call: Call) -> Any:
        raise NotImplementedError

    async def server_time(self) -> float:
        raise NotImplementedError

    # -- inspection and admin ---------------------------------------------
    async def stats(self) -> BrokerStats:
        k = self.keys
        with redis_errors():
            members = sorted(m.decode() for m in await self.redis.smembers(k.queues))
            refs = [parse_member(m) for m in members]
            routes = sorted({"default", *(split_lane(lane_)[0] for lane_, _ in refs)})
            route_lists = [(r, p) for r in routes for p in PRIORITIES]
            async with self.redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.llen(f"{k.ready_prefix}{member}")
                for r, p in route_lists:
                    pipe.llen(k.route_queue(r, p))
                for priority in PRIORITIES:
                    pipe.llen(k.plain_queue(priority))
                pipe.zcard(k.scheduled)
                pipe.zcard(k.active)
                pipe.zcard(k.dead)
                pipe.zcard(k.completed)
                pipe.zcard(k.cancelled)
                replies = await pipe.execute()
        stats = BrokerStats()
        for ref, depth in zip(refs, replies, strict=False):
            stats.ready[ref] = int(depth)
        waiting = replies[len(members) : len(members) + len(route_lists)]
        stats.unrouted_routes = {q: int(n) for q, n in zip(route_lists, waiting, strict=True) if n}
        rest = replies[len(members) + len(route_lists) :]
        stats.unrouted = {p: int(n) for p, n in zip(PRIORITIES, rest[:3], strict=True)}
        stats.scheduled, stats.active, stats.dead, stats.completed = (int(x) for x in rest[3:7])
        stats.cancelled = int(rest[7])
        self.keyspace.last_stats = stats
        return stats

    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        k = self.keys
        with redis_errors():
            entries = await self.redis.zrevrange(
                k.dead, offset, offset + limit - 1, withscores=True
            )
            if not entries:
                return []
            ids = [e[0].decode() for e in entries]
            infos = await self.redis.hmget(k.dead_info, ids)
            records = await self.redis.mget([k.job(i) for i in ids])
        return [
            DeadLetter(job_id, int(score), DeadInfo.decode(info), record)
            for (job_id, (_, score), info, record) in zip(ids, entries, infos, records, strict=True)
        ]

    def _letter_keys(self, job_id: str) -> dict[str, str]:
        """The keys a job's dead letter lives in (bury, replay, delete_dead)."""
        k = self.keys
        return {
            "dead": k.dead,
            "dead_info": k.dead_info,
            "stalls": k.stalls,
            "record_key": k.job(job_id),
            "result_key": k.result(job_id),
        }

    async def delete_dead(self, job_id: str) -> bool:
        k = self.keys
        wf = member_of_raw(await self.get_record(job_id))  # a workflow's step (workflows.md)
        call = upkeep_scripts.delete_dead(
            **self._letter_keys(job_id),
            held=k.unique_held,
            id=job_id,
            unique_prefix=k.unique_prefix,
            wf=wf,
            wf_context=k.wf_context(self._ttl, self._publish, now_iso()) if wf else "",
        )
        return bool(await self._run(call))

    async def _replay(
        self, job_id: str, record: bytes, priority: str, name: str, unique: Unique | None
    ) -> bool | str:
        k = self.keys
        digest, ttl_ms = unique or ("", 0)
        call = upkeep_scripts.replay(
            **self._letter_keys(job_id),
            ready=k.ready(priority, name),
            marker=k.marker(priority, name),
            queues=k.queues,
            index=k.nonempty,
            lock=k.unique(digest),
            held=k.unique_held,
            id=job_id,
            record=record,
            member=f"{priority}:{name}",
            digest=digest,
            ttl_ms=ttl_ms,
        )
        reply = await self._run(call)
        return reply.decode() if isinstance(reply, bytes) else bool(reply)

    # -- inspection ---------------------------------------------------------
    async def _members(self) -> list[str]:
        with redis_errors():
            return sorted(
                (m.decode() for m in await self.redis.smembers(self.keys.queues)),
                key=lambda m: (PRIORITY_RANK.get(_priority(m), 9), m),
            )

    async def oldest_ready_age(self) -> dict[str, float]:
        k = self.keys
        members = await self._members()
        lists = [(_priority(m), f"{k.ready_prefix}{m}") for m in members]
        lists += [(p, k.plain_queue(p)) for p in PRIORITIES]
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, key in lists:
                    pipe.lindex(key, -1)
                heads = await pipe.execute()
            wanted = [(p, h.decode()) for (p, _), h in zip(lists, heads, strict=True) if h]
            records = await self.redis.mget([k.job(i) for _, i in wanted]) if wanted else []
        ages = dict.fromkeys(PRIORITIES, 0.0)
        now = time.time()
        for (priority, _), raw in zip(wanted, records, strict=True):
            created = created_at(raw)
            if created is not None:
                ages[priority] = max(ages.get(priority, 0.0), now - created)
        return ages

    async def active_by_queue(self) -> dict[QueueRef, int]:
        with redis_errors():
            leases = await self.redis.hvals(self.keys.leases)
        counts: dict[QueueRef, int] = {}
        cut = len(self.keys.ready_prefix)
        for raw in leases:
            queue = raw.decode().partition(" ")[2]  # "<token> <ready list>"
            ref = parse_member(queue[cut:])
            counts[ref] = counts.get(ref, 0) + 1
        return counts

    async def _get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hgetall(self.keys.result(job_id))
                replies = await pipe.execute()
        return [_parse_result(data) for data in replies]

    async def _list_jobs(
        self, state: JobState, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]:
        if state is JobState.QUEUED:
            entries = await self._queued(offset, limit, job_type)
        else:
            entries = await self._indexed(state, offset, limit, job_type)
        return entries

    async def _queued(self, offset: int, limit: int, job_type: str | None) -> list[JobSummary]:
        k = self.keys
        lists: list[tuple[str, str, str]] = []
        for member in await self._members():
            lane_, name = parse_member(member)
            priority = split_lane(lane_)[1]
            if job_type is None or name == job_type:
                lists.append((priority, name, f"{k.ready_prefix}{member}"))
        if job_type is None:
            lists += [(p, "", k.plain_queue(p)) for p in PRIORITIES]
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for _, _, key in lists:
                    pipe.llen(key)
                lengths = await pipe.execute()
            picked: list[tuple[str, str, str]] = []
            skip = offset
            for (priority, name, key), length in zip(lists, lengths, strict=True):
                if len(picked) >= limit:
                    break
                if skip >= length:
                    skip -= length
                    continue
                want = min(length - skip, limit - len(picked))
                # Next to run is at the right end: index -1.
                ids = await self.redis.lrange(key, -(skip + want), -(skip + 1))
                picked += [(i.decode(), priority, name) for i in reversed(ids)]
                skip = 0
            records = await self.redis.mget([k.job(i) for i, _, _ in picked]) if picked else []
        return [
            JobSummary(i, "queued", 0, rec, priority, name or _field(rec, "name"))
            for (i, priority, name), rec in zip(picked, records, strict=True)
        ]

    def _index(self, state: str) -> tuple[str, bool, float]:
        """(sorted set key, newest first?, score to ms factor) of an indexed state."""
        k = self.keys
        return {
            "running": (k.active, False, 1.0),
            "scheduled": (k.scheduled, False, 1000.0),
            "completed": (k.completed, True, 1.0),
            "dead": (k.dead, True, 1.0),
        }[state]

    async def _indexed(
        self, state: str, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]:
        key, newest_first, factor = self._index(state)
        out: list[JobSummary] = []
        position = 0 if job_type else offset
        skipped = 0
        chunk = limit if job_type is None else max(limit, 500)
        with redis_errors():
            while len(out) < limit:
                if newest_first:
                    entries = await self.redis.zrevrange(
                        key, position, position + chunk - 1, withscores=True
                    )
                else:
                    entries = await self.redis.zrange(
                        key, position, position + chunk - 1, withscores=True
                    )
                if not entries:
                    break
                position += len(entries)
                ids = [e[0].decode() for e in entries]
                records = await self.redis.mget([self.keys.job(i) for i in ids])
                for job_id, (_, score), rec in zip(ids, entries, records, strict=True):
                    name = _field(rec, "name")
                    if job_type is not None:
                        if name != job_type:
                            continue
                        if skipped < offset:
                            skipped += 1
                            continue
                    out.append(
                        JobSummary(
                            job_id, state, int(score * factor), rec, _field(rec, "priority"), name
                        )
                    )
                    if len(out) >= limit:
                        break
                if job_type is None:
                    break
        return out

    async def _count_jobs(self, state: JobState, job_type: str | None) -> int:
        k = self.keys
        if state is JobState.QUEUED:
            members = await self._members()
            keys = [
                f"{k.ready_prefix}{m}"
                for m in members
                if job_type is None or m.partition(":")[2] == job_type
            ]
            if job_type is None:
                keys += [k.plain_queue(p) for p in PRIORITIES]
            with redis_errors():
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.llen(key)
                    return sum(int(n) for n in await pipe.execute())
        if job_type is not None:
            return await self._count_type(self._index(state)[0], job_type)
        with redis_errors():
            return int(await self.redis.zcard(self._index(state)[0]))

    async def _count_type(self, key: str, job_type: str, chunk: int = 2000) -> int:
        """Jobs of one type in an index. The indexes hold ids only, so this reads
        every record, a chunk at a time (O(n); the dashboard's type filter)."""
        count, position = 0, 0
        with redis_errors():
            while ids := await self.redis.zrange(key, position, position + chunk - 1):
                position += len(ids)
                records = await self.redis.mget([self.keys.job(i.decode()) for i in ids])
                count += sum(1 for rec in records if _field(rec, "name") == job_type)
        return count

    async def job_state(self, job_id: str) -> str | None:
        k = self.keys
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zscore(k.active, job_id)
                pipe.zscore(k.scheduled, job_id)
                pipe.zscore(k.dead, job_id)
                pipe.hmget(k.result(job_id), "status", "cancelled")
                pipe.exists(k.job(job_id))
                active, scheduled, dead, (status, cancelled), exists = await pipe.execute()
        if active is not None:
            return "running"
        if scheduled is not None:
            return "scheduled"
        if dead is not None:
            return "dead"
        if status == b"completed":
            return "completed"
        if cancelled is not None:
            return "cancelled"
        return "queued" if exists else None

    async def get_dead_info(self, job_id: str) -> DeadInfo | None:
        with redis_errors():
            raw = await self.redis.hget(self.keys.dead_info, job_id)
        return None if raw is None else DeadInfo.decode(raw)

    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        # The scripts count into minutes of the server's clock: read those.
        now_minute = int(await self.server_time() // 60)
        span = range(now_minute - minutes + 1, now_minute + 1)
        with redis_errors():
            async with self.redis.pipeline(transaction=False) as pipe:
                for minute in span:
                    pipe.hmget(self.keys.throughput(minute), "completed", "failed")
                replies = await pipe.execute()
        return [
            Throughput(m, int(c or 0), int(f or 0)) for m, (c, f) in zip(span, replies, strict=True)
        ]


def _priority(member: str) -> str:
    """The priority of a ready list's member, on any route."""
    return split_lane(parse_member(member)[0])[1]
