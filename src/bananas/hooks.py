"""Lifecycle hooks: the app's middleware, in the spirit of Dramatiq's
middleware and Celery's signals (docs/hooks.md).

A hook is an instance of a `Hook` subclass that overrides the events it
needs. The app indexes its hooks by event when one is added, so an event no
hook overrides costs nothing, and with no hook at all the enqueue path and
the worker's per-job path only test one attribute (the runner holds `None`).

A hook that raises is logged (`hook.failed`, naming the hook and the event)
and ignored: the other hooks still run and the job goes on as if the hook had
returned. `before_run` raising does not stop the job from running,
`before_enqueue` raising does not stop the enqueue (as a Celery signal
receiver). Hooks run in the worker's event-loop thread (for every executor),
and in the enqueuing thread for enqueue events: keep them short.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .errors import BananasError

if TYPE_CHECKING:
    from .brokers.records import NewJob
    from .logs import EventLog
    from .observe.status import WorkerIdentity
    from .specs import JobSpec

# A context manager factory and its argument, both picklable (a module-level
# function and plain data): what a process-executor child enters around the
# handler, e.g. the trace context the child's spans are made in.
ChildScope = tuple[Callable[[Any], AbstractContextManager[Any]], Any]

# Outcome.status values
COMPLETED = "completed"
RETRYING = "retrying"
DEAD = "dead"
INTERRUPTED = "interrupted"  # no outcome recorded here: the job runs again
CANCELLED = "cancelled"  # someone cancelled it (docs/control.md): final, never runs again

_client_log = logging.getLogger("bananas.hooks")


@dataclass(slots=True)
class OutgoingJob:
    """A job being enqueued. Hooks may add string entries to `headers` in
    `before_enqueue`: they are stored in the job record (`headers` field) and
    read back as `RunningJob.headers`. `state` is the hooks' own scratch space
    between `before_enqueue` and `after_enqueue` (never stored)."""

    id: str
    name: str
    priority: str
    payload: Mapping[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    state: dict[Any, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RunningJob:
    """A job a worker runs (or dead-letters unrun). `attempt` is 1 on the first
    run; `headers` are what enqueue hooks stored (empty when none); `state` is
    the hooks' scratch space from `before_run` to `after_run`. A record too
    broken to decode gives an empty `name` and `payload`."""

    id: str
    name: str
    priority: str
    attempt: int
    payload: Mapping[str, Any]
    headers: Mapping[str, str]
    worker_id: str
    state: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended, once the broker recorded it.

    status: `completed`; `retrying` (failed, scheduled again in `retry_in`
    seconds); `dead` (dead-lettered, `reason` says why); `cancelled` (stopped
    because someone cancelled it: final); `interrupted` (no
    outcome recorded by this worker: put back by a drain or a process-pool
    restart, or the lease was lost; `reason` says which; the job runs again)."""

    status: str
    duration_ms: float
    error: str | None = None
    exception: BaseException | None = None
    retry_in: float | None = None
    reason: str | None = None

    @property
    def error_type(self) -> str | None:
        """A low-cardinality name of the failure (OpenTelemetry's `error.type`):
        the exception's class, else `rejected` for a dead-lettered job with no
        exception (bad record, payload or result)."""
        exc = self.exception
        if exc is not None:
            kind = type(exc)
            module = kind.__module__
            return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
        return "rejected" if self.status == DEAD else None


class Hook:
    """Override the events you need; every method here does nothing.

    Order: `before_*` and `on_worker_start` run in registration order,
    `after_*` and `on_worker_stop` in reverse (the first hook wraps the
    others, as Dramatiq's middleware), `on_retry` / `on_dead_letter` in
    registration order, each before the attempt's `after_run`."""

    def before_enqueue(self, job: OutgoingJob) -> None:
        """Before the record is written; may add `job.headers`."""

    def after_enqueue(self, job: OutgoingJob, error: BaseException | None) -> None:
        """After the broker took the batch (`error` None) or failed (the error)."""

    def before_run(self, job: RunningJob) -> None:
        """In the worker, just before the handler starts."""

    def after_run(self, job: RunningJob, outcome: Outcome) -> None:
        """Once the attempt's outcome is recorded (or the attempt interrupted)."""

    def on_retry(self, job: RunningJob, outcome: Outcome) -> None:
        """The attempt failed and the job is scheduled again (`outcome.retry_in`)."""

    def on_dead_letter(self, job: RunningJob, outcome: Outcome) -> None:
        """The job was dead-lettered: out of retries, or unrunnable (`outcome.reason`)."""

    def on_worker_start(self, worker: WorkerIdentity) -> None:
        """The worker is connected and about to fetch jobs."""

    def on_worker_stop(self, worker: WorkerIdentity) -> None:
        """The worker drained (no job runs any more); the broker is still open."""

    def process_scope(self, job: RunningJob) -> ChildScope | None:
        """For process-executor jobs: what the child enters around the handler."""
        return None


EVENTS = (
    "before_enqueue",
    "after_enqueue",
    "before_run",
    "after_run",
    "on_retry",
    "on_dead_letter",
    "on_worker_start",
    "on_worker_stop",
    "process_scope",
)
_REVERSED = frozenset({"after_enqueue", "after_run", "on_worker_stop"})
_RUN_EVENTS = ("before_run", "after_run", "on_retry", "on_dead_letter", "process_scope")


def _check(hook: object) -> Hook:
    if not isinstance(hook, Hook):
        raise BananasError(
            f"a hook must be an instance of a bananas.hooks.Hook subclass (override the "
            f"events you need: {', '.join(EVENTS)}), got {hook!r}"
        )
    for name in dir(type(hook)):
        if name.startswith(("before_", "after_", "on_")) and name not in EVENTS:
            raise BananasError(
                f"hook {type(hook).__qualname__} defines {name}(), which is no event "
                f"(events: {', '.join(EVENTS)})"
            )
    return hook


class Hooks:
    """The app's hooks, indexed by event (`app.hooks`)."""

    def __init__(self, hooks: Iterable[Hook] = ()) -> None:
        self.all: list[Hook] = []
        self.log: EventLog | None = None  # a worker's event log; else `logging`
        self.worker_id = ""
        self._by_event: dict[str, tuple[Callable[..., Any], ...]] = {}
        self.enqueue = False  # any enqueue event overridden
        for hook in hooks:
            self.add(hook)

    def add(self, hook: Hook) -> None:
        self.all.append(_check(hook))
        for event in EVENTS:
            base = getattr(Hook, event)
            chosen = [getattr(h, event) for h in self.all if getattr(type(h), event) is not base]
            self._by_event[event] = tuple(reversed(chosen) if event in _REVERSED else chosen)
        self.enqueue = bool(self._by_event["before_enqueue"] or self._by_event["after_enqueue"])

    def __bool__(self) -> bool:
        return bool(self.all)

    def runs(self) -> bool:
        """Whether any hook overrides a per-job worker event."""
        return any(self._by_event[event] for event in _RUN_EVENTS)

    def emit(self, event: str, *args: Any, job_id: str | None = None) -> list[Any]:
        """Call every hook of `event`; a failing one is logged, never raised.
        Returns what the hooks returned (None for a failed one)."""
        returned: list[Any] = []
        for method in self._by_event[event]:
            try:
                returned.append(method(*args))
            except Exception as exc:
                returned.append(None)
                self.failed(method, event, exc, job_id)
        return returned

    def failed(self, method: Any, event: str, exc: Exception, job_id: str | None) -> None:
        owner = getattr(method, "__self__", method)
        name = f"{type(owner).__module__}.{type(owner).__qualname__}"
        error = f"{type(exc).__name__}: {exc}"
        detail = "ignored: the job goes on as if the hook had returned"
        if self.log is not None:
            self.log.error(
                "hook.failed",
                hook=name,
                hook_event=event,
                job_id=job_id,
                error=error,
                detail=detail,
            )
            return
        fields = {"hook": name, "hook_event": event, "job_id": job_id, "error": error}
        _client_log.error("hook.failed %s (%s)", orjson.dumps(fields).decode(), detail)

    # -- enqueue ------------------------------------------------------------
    def _before_enqueue(
        self, specs: Sequence[JobSpec | tuple[str, dict[str, Any]]], jobs: list[NewJob]
    ) -> list[OutgoingJob]:
        out = []
        for item, job in zip(specs, jobs, strict=True):
            payload = item[1] if isinstance(item, tuple) else item.payload
            outgoing = OutgoingJob(job.id, job.name, job.priority, payload)
            self.emit("before_enqueue", outgoing, job_id=job.id)
            if outgoing.headers:
                job.record = self._with_headers(job.record, outgoing)
            out.append(outgoing)
        return out

    def _with_headers(self, record: bytes, job: OutgoingJob) -> bytes:
        """The record with a `headers` object appended (records without headers
        stay byte-identical). Entries that are not strings are dropped, logged."""
        headers = {k: v for k, v in job.headers.items() if type(k) is str and type(v) is str}
        if len(headers) != len(job.headers):
            bad = sorted(repr(k) for k in job.headers if k not in headers)
            error = BananasError(f"headers must map strings to strings; dropped {', '.join(bad)}")
            self.failed(self, "before_enqueue", error, job.id)
        if not headers:
            return record
        return record[:-1] + b',"headers":' + orjson.dumps(headers) + b"}"

    def _after_enqueue(self, sent: list[OutgoingJob], error: BaseException | None) -> None:
        for outgoing in sent:
            self.emit("after_enqueue", outgoing, error, job_id=outgoing.id)

    def enqueue_sync(
        self,
        specs: Sequence[JobSpec | tuple[str, dict[str, Any]]],
        jobs: list[NewJob],
        send: Callable[[list[NewJob]], object],
    ) -> None:
        sent = self._before_enqueue(specs, jobs)
        try:
            send(jobs)
        except BaseException as exc:
            self._after_enqueue(sent, exc)
            raise
        self._after_enqueue(sent, None)

    async def enqueue_async(
        self,
        specs: Sequence[JobSpec | tuple[str, dict[str, Any]]],
        jobs: list[NewJob],
        send: Callable[[list[NewJob]], Awaitable[object]],
    ) -> None:
        sent = self._before_enqueue(specs, jobs)
        try:
            await send(jobs)
        except BaseException as exc:
            self._after_enqueue(sent, exc)
            raise
        self._after_enqueue(sent, None)

    # -- worker -------------------------------------------------------------
    def for_worker(self, log: EventLog, worker_id: str) -> Hooks:
        """These hooks, reporting failures to a worker's event log."""
        copy = Hooks(self.all)
        copy.log, copy.worker_id = log, worker_id
        return copy
