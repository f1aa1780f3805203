"""The SQLite broker's inspection and dead-letter administration: thin calls
into sqlite_inspect.py (reads, on the read-only connection) and
sqlite_upkeep.py (writes), run on the broker's database thread. A mixin of
SQLiteBroker, apart so the broker file holds the connection and the worker
path."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..job import now_iso
from ..vocabulary import JobState
from . import sqlite_inspect as inspect
from . import sqlite_upkeep as upkeep
from .records import (
    BrokerStats,
    DeadInfo,
    DeadLetter,
    JobResult,
    JobSummary,
    QueueRef,
    Throughput,
    Unique,
)
from .sqlite_db import Store
from .sqlite_ops import Clock

T = TypeVar("T")


class SQLiteViews:
    _ttl: int

    async def _read(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    async def _run(self, fn: Callable[[Store], T]) -> T:
        raise NotImplementedError

    # -- inspection and admin ---------------------------------------------------------
    async def stats(self) -> BrokerStats:
        return await self._read(inspect.stats)

    async def oldest_ready_age(self) -> dict[str, float]:
        return await self._read(lambda s: inspect.oldest_ready_age(s, time.time()))

    async def active_by_queue(self) -> dict[QueueRef, int]:
        return await self._read(inspect.active_by_queue)

    async def _get_results(self, job_ids: Sequence[str]) -> list[JobResult | None]:
        return await self._read(lambda s: inspect.get_results(s, job_ids, time.time()))

    async def _list_jobs(
        self, state: JobState, offset: int, limit: int, job_type: str | None
    ) -> list[JobSummary]:
        if state is JobState.QUEUED:
            return await self._read(lambda s: inspect.list_queued(s, offset, limit, job_type))
        return await self._read(
            lambda s: inspect.list_indexed(s, state, offset, limit, job_type, time.time())
        )

    async def _count_jobs(self, state: JobState, job_type: str | None) -> int:
        return await self._read(lambda s: inspect.count_jobs(s, state, job_type, time.time()))

    async def job_state(self, job_id: str) -> str | None:
        return await self._read(lambda s: inspect.job_state(s, job_id, time.time()))

    async def get_dead_info(self, job_id: str) -> DeadInfo | None:
        return await self._read(lambda s: inspect.get_dead_info(s, job_id))

    async def throughput(self, minutes: int = 60) -> list[Throughput]:
        return await self._read(lambda s: inspect.throughput(s, minutes, time.time()))

    async def list_dead(self, offset: int = 0, limit: int = 100) -> list[DeadLetter]:
        return await self._read(lambda s: inspect.list_dead(s, offset, limit))

    async def delete_dead(self, job_id: str) -> bool:
        clock = Clock(time.time(), now_iso())
        return await self._run(lambda s: upkeep.delete_dead(s, job_id, clock, self._ttl))

    async def _replay(
        self, job_id: str, record: bytes, priority: str, name: str, unique: Unique | None
    ) -> bool | str:
        return await self._run(
            lambda s: upkeep.replay(s, job_id, record, (priority, name), unique, time.time())
        )
