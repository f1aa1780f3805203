"""Run one leased job: validate it, execute it, then complete, retry or bury it.

A bad job (record, type, payload, result) is buried with the reason; nothing
here lets one job take the worker down.

Recording an outcome ends one of three ways (`Settle`): done; refused,
because the lease was lost and re-issued (`job.lease_lost`); or unreachable,
when the broker did not answer for a whole lease (`job.settle_failed`: the
job comes back by lease expiry). Only a refused token means another worker
holds the job, so only that one is logged as a lost lease. The counters
(`WorkerStats`, hence `jobs_completed` and `bananas_jobs_total`) count only
outcomes the broker accepted: a refused one is the other holder's to count.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Awaitable, Callable

import orjson

from ..app import JobDefinition
from ..brokers.base import Broker, DeadInfo, Delivery
from ..brokers.records import CANCELLED, cancelled_record
from ..brokers.workflow_records import member_of
from ..config import Settings
from ..context import JobContext, set_current
from ..errors import (
    CancelRequested,
    InvalidRecord,
    JobTimeout,
    RetryLater,
)
from ..hooks import CANCELLED as RUN_CANCELLED
from ..hooks import COMPLETED as RUN_COMPLETED
from ..hooks import DEAD, INTERRUPTED, RETRYING, Hooks, Outcome
from ..job import JobRecord, decode_record, iso_from_unix
from ..logs import EventLog
from ..observe.stats import WorkerStats
from ..observe.status import BrokerLink
from ..vocabulary import DeadReason, Status
from ..workflows.member import member_payload
from .executors import Executors, Requeue
from .job_hooks import JobHooks, rejected, run_started
from .progress import ProgressHub
from .rates import snooze
from .settle import Settle, settle

MAX_TRACEBACK = 16_000
# Plain strings for the records written on the hot path (an enum member costs
# an attribute lookup and orjson's enum branch on every job).
COMPLETED: str = Status.COMPLETED.value
FAILED: str = Status.FAILED.value
SCHEDULED: str = Status.SCHEDULED.value


class JobRunner:
    def __init__(
        self,
        handlers: dict[str, JobDefinition],
        broker: Broker,
        settings: Settings,
        executors: Executors,
        log: EventLog,
        stats: WorkerStats,
        release_slot: Callable[[Delivery], None] = lambda _: None,
    ) -> None:
        self.release_slot = release_slot
        self.hooks: Hooks | None = None  # set by the runtime when the app has run hooks
        self.link = BrokerLink()  # the worker's, set by the runtime
        self.log_jobs = log.enabled("info")
        self.handlers = handlers
        self.broker = broker
        self.settings = settings
        self.executors = executors
        self.log = log
        self.stats = stats
        self.progress = ProgressHub(broker, settings, handlers, log)

    async def run(self, delivery: Delivery) -> None:
        started = time.perf_counter()
        raw = delivery.raw
        if raw is not None and len(raw) > self.settings.max_payload_bytes + 4096:
            await self._reject(
                delivery,
                None,
                f"record is {len(raw)} bytes, over "
                f"MAX_PAYLOAD_BYTES={self.settings.max_payload_bytes}",
            )
            return
        try:
            record = decode_record(raw, expected_id=delivery.id)
        except InvalidRecord as exc:
            await self._reject(delivery, None, f"invalid job record: {exc}")
            return
        if "wf" in record.fields:  # a workflow's step: it settles as a member
            delivery.workflow = member_of(record.fields) or None
        definition = self.handlers.get(record.name)
        if definition is None:
            await self._reject(
                delivery,
                record,
                f"no handler for job type {record.name!r} in "
                f"this worker (registered: {', '.join(sorted(self.handlers))})",
            )
            return
        payload = record.payload
        if "wf" in record.fields:  # a workflow's step: its inputs (workflows/member.py)
            try:
                payload = await member_payload(self.broker, delivery, record, definition)
            except Exception as exc:  # its inputs unreadable now: an attempt that failed
                await self._failed(delivery, record, definition, record.attempts + 1, exc, started)
                return
        try:
            definition.check_payload(payload)
        except TypeError as exc:
            await self._reject(
                delivery,
                record,
                f"payload does not match {definition.name}{definition.signature}: {exc}",
            )
            return
        attempt = record.attempts + 1
        timeout = definition.timeout or self.settings.job_timeout
        if self.log_jobs:  # checked here: building the fields costs on the hot path
            self.log.info(
                "job.started",
                job_id=delivery.id,
                job_type=record.name,
                priority=record.priority,
                attempt=attempt,
            )
        set_current(
            JobContext(delivery.id, record.name, record.priority, attempt, self.progress, delivery)
        )
        tracked = scopes = None
        if self.hooks is not None:
            tracked = run_started(self.hooks, delivery.id, record, attempt)
            scopes = tracked.scopes() if definition.executor == "process" else None
        try:
            value = await self.executors.run(definition, payload, timeout, scopes)
        except asyncio.CancelledError as exc:
            if delivery.cancel_requested:  # ours (worker/cancels.py), not a drain's
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
                await self.cancelled(delivery, record, attempt, started, tracked)
                return
            self.progress.forget(delivery.id)
            if tracked is not None:
                tracked.interrupted("cancelled", exc)
            raise
        except Requeue as exc:
            self.progress.forget(delivery.id)
            if tracked is not None:
                tracked.interrupted("requeued", exc)
            raise
        except RetryLater as exc:  # no attempt charged (worker/rates.py)
            done = None if delivery.cancel_requested else await snooze(self, delivery, record, exc)
            if done or delivery.cancel_requested:
                await self.cancelled(delivery, record, attempt, started, tracked)
            elif done is False:  # snoozed too often: an ordinary failed attempt
                await self._failed(delivery, record, definition, attempt, exc, started, tracked)
            elif tracked is not None:
                tracked.interrupted("retry_later", exc)
            return
        except Exception as exc:
            if delivery.cancel_requested:  # JobCancelled, or whatever a stopped job raised
                await self.cancelled(delivery, record, attempt, started, tracked)
            else:
                await self._failed(delivery, record, definition, attempt, exc, started, tracked)
            return
        duration_ms = (time.perf_counter() - started) * 1000
        try:
            result = None if value is None else orjson.dumps(value)
        except TypeError as exc:
            await self._reject(
                delivery, record, f"result is not JSON-serializable: {exc}", attempt, tracked
            )
            return
        if result is not None and len(result) > self.settings.max_result_bytes:
            await self._reject(delivery, record, self._too_big(result), attempt, tracked)
            return
        outcome = await self._settle(
            delivery,
            lambda: self.broker.complete(
                delivery,
                record.updated(status=COMPLETED, attempts=attempt),
                result,
                duration_ms,
            ),
        )
        if outcome is Settle.DONE:  # counted only once the broker accepted it
            self.stats.finished(record.name, duration_ms, ok=True)
        if outcome is Settle.DONE and self.log_jobs:
            self.log.info(
                "job.completed",
                job_id=delivery.id,
                job_type=record.name,
                priority=record.priority,
                attempt=attempt,
                duration_ms=round(duration_ms, 3),
            )
        elif outcome is Settle.REFUSED:
            self._stale(delivery, record, COMPLETED)
        if tracked is not None:
            _report(tracked, outcome, Outcome(RUN_COMPLETED, duration_ms))

    async def _failed(
        self,
        delivery: Delivery,
        record: JobRecord,
        definition: JobDefinition,
        attempt: int,
        exc: Exception,
        started: float,
        tracked: JobHooks | None = None,
    ) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        error = str(exc) if isinstance(exc, JobTimeout) else f"{type(exc).__name__}: {exc}"
        tb = "" if isinstance(exc, JobTimeout) else traceback.format_exc()[-MAX_TRACEBACK:]
        default_budget = (
            definition.max_retries
            if definition.max_retries is not None
            else self.settings.max_retries
        )
        budget = record.max_retries(default_budget)
        fields = dict(
            job_id=delivery.id,
            job_type=record.name,
            priority=record.priority,
            attempt=attempt,
            duration_ms=round(duration_ms, 3),
            error=error,
        )
        if attempt > budget:
            info = DeadInfo(
                reason=DeadReason.failed(attempt, budget),
                error=error,
                traceback=tb,
                priority=record.priority,
                name=record.name,
            )
            new_record = record.updated(
                status=FAILED, attempts=attempt, error=error, traceback=tb, dead_reason=info.reason
            )
            outcome = await self._settle(
                delivery, lambda: self.broker.bury(delivery, new_record, info, duration_ms)
            )
            if outcome is Settle.DONE:
                self.stats.dead_lettered += 1
                self.log.warning(
                    "job.dead_lettered", reason=info.reason, traceback=tb or None, **fields
                )
            if tracked is not None:
                _report(tracked, outcome, Outcome(DEAD, duration_ms, error, exc, None, info.reason))
        else:
            delay = self.backoff(attempt)
            due = time.time() + delay
            new_record = record.updated(
                status=SCHEDULED,
                attempts=attempt,
                error=error,
                scheduled_for=iso_from_unix(due),
            )
            try:
                outcome = await self._settle(
                    delivery, lambda: self.broker.retry(delivery, new_record, delay)
                )
            except CancelRequested:  # cancelled before this worker heard: not retried
                await self.cancelled(delivery, record, attempt, started, tracked)
                return
            if outcome is Settle.DONE:
                self.stats.retried += 1
                self.log.info("job.retried", retry_in_s=round(delay, 3), **fields)
            if tracked is not None:
                _report(tracked, outcome, Outcome(RETRYING, duration_ms, error, exc, delay))
        if outcome is Settle.DONE:  # counted only once the broker accepted it
            self.stats.finished(record.name, duration_ms, ok=False)
        elif outcome is Settle.REFUSED:
            self._stale(delivery, record, FAILED)

    async def cancelled(
        self,
        delivery: Delivery,
        record: JobRecord | None,
        attempt: int,
        started: float,
        tracked: JobHooks | None = None,
    ) -> None:
        """Settle a job someone cancelled: final, not retried (worker/cancels.py)."""
        duration_ms = (time.perf_counter() - started) * 1000
        if record is not None and "wf" in record.fields:  # a step cancelled unstarted
            delivery.workflow = member_of(record.fields) or None
        new_record = None if record is None else cancelled_record(record, attempt)
        outcome = await self._settle(
            delivery, lambda: self.broker.settle_cancelled(delivery, new_record, duration_ms)
        )
        if outcome is Settle.DONE:
            self.stats.cancelled += 1
            self.log.info(
                "job.cancelled",
                job_id=delivery.id,
                job_type=record.name if record else None,
                attempt=attempt,
                duration_ms=round(duration_ms, 3),
            )
        elif outcome is Settle.REFUSED and record is not None:
            self._stale(delivery, record, CANCELLED)
        if tracked is not None:
            _report(tracked, outcome, Outcome(RUN_CANCELLED, duration_ms, CANCELLED))

    def _too_big(self, result: bytes) -> str:
        limit = self.settings.max_result_bytes
        return (
            f"result is {len(result)} bytes of JSON, over MAX_RESULT_BYTES={limit}: "
            "not stored (return a reference, e.g. a file or object-store key, instead)"
        )

    def backoff(self, attempt: int) -> float:
        """Exponential back-off with jitter: base * 2^(attempt-1), capped, x [0.5, 1)."""
        ceiling = min(
            self.settings.retry_backoff_max,
            self.settings.retry_backoff * (2 ** min(attempt - 1, 40)),
        )
        return float(ceiling * (0.5 + random.random() / 2))

    async def _reject(
        self,
        delivery: Delivery,
        record: JobRecord | None,
        reason: str,
        attempt: int | None = None,
        tracked: JobHooks | None = None,
    ) -> None:
        """Bury a job that can never succeed as it is (bad input), with the reason."""
        name = record.name if record else ""
        priority = record.priority if record else ""
        info = DeadInfo(reason=reason, error=reason, priority=priority, name=name)
        new_record = None
        if record is not None:
            new_record = record.updated(
                status=FAILED, error=reason, attempts=attempt or record.attempts
            )
        outcome = await self._settle(
            delivery, lambda: self.broker.bury(delivery, new_record, info, 0.0)
        )
        if outcome is Settle.DONE:
            self.stats.rejected_one()
            self.log.warning(
                "job.dead_lettered",
                job_id=delivery.id,
                job_type=name or None,
                priority=priority or None,
                reason=reason,
            )
        if tracked is not None:  # after a run: the attempt's end
            duration_ms = (time.perf_counter() - tracked.started) * 1000
            _report(tracked, outcome, Outcome(DEAD, duration_ms, reason, reason=reason))
        elif self.hooks is not None and outcome is Settle.DONE:
            rejected(self.hooks, delivery.id, record, reason)

    def _stale(self, delivery: Delivery, record: JobRecord, outcome: str) -> None:
        self.log.warning(
            "job.lease_lost",
            job_id=delivery.id,
            job_type=record.name,
            outcome=outcome,
            detail="lease expired and was re-issued; this worker's outcome was refused",
        )

    async def _settle(self, delivery: Delivery, action: Callable[[], Awaitable[bool]]) -> Settle:
        """Record an outcome, retrying through a broker outage while the lease
        could still be ours (settle.py)."""
        delivery.settling = True
        self.release_slot(delivery)
        if delivery.id in self.progress.jobs:  # its last progress goes first
            await self.progress.finish(delivery)
        return await settle(delivery, action, self.settings.lease_timeout, self.link, self.log)


def _report(tracked: JobHooks, settle: Settle, outcome: Outcome) -> None:
    """An attempt's end to its hooks: the outcome once the broker took it; an
    interruption when it refused the token or could not be reached."""
    if settle is not Settle.DONE:
        outcome = Outcome(INTERRUPTED, outcome.duration_ms, outcome.error, reason=settle.value)
    tracked.settled(outcome)
