"""`broker.sync` for the SQLite broker: the broker's own database thread,
waited on from plain code (a web request's enqueue, a handle's result)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..job import now_iso
from . import sqlite_inspect as inspect
from .base import SyncClient
from .records import CancelOutcome, JobProgress, JobResult, NewJob
from .sqlite_cancel import cancel as _cancel
from .sqlite_ops import Clock
from .sqlite_progress import get_progress as _get_progress

if TYPE_CHECKING:
    from .sqlite import SQLiteBroker


class SQLiteSyncClient(SyncClient):
    """`broker.sync`: the same database thread, waited on from plain code."""

    def __init__(self, broker: SQLiteBroker) -> None:
        self._broker = broker

    def _enqueue(self, batches: list[Sequence[NewJob]]) -> list[bool]:
        b = self._broker
        return b._run_sync(lambda s: b._enqueue_all(s, batches))

    def get_result(self, job_id: str) -> JobResult | None:
        b = self._broker
        return b._read_sync(b._result_check(job_id))  # type: ignore[no-any-return]

    def get_record(self, job_id: str) -> bytes | None:
        b = self._broker
        raw: bytes | None = b._read_sync(lambda s: inspect.get_record(s, job_id, time.time()))
        return raw

    def _wait_result(self, job_id: str, timeout: float) -> JobResult | None:
        b = self._broker
        found: JobResult | None = b._wait_sync(b._result_check(job_id), timeout)
        return found

    def get_progress(self, job_id: str) -> JobProgress | None:
        return self._broker._read_sync(lambda s: _get_progress(s, job_id, time.time()))

    def cancel(self, job_id: str) -> CancelOutcome:
        b = self._broker
        return b._run_sync(lambda s: _cancel(s, job_id, Clock(time.time(), now_iso()), b._ttl))
