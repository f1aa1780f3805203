"""The Bananas app: handler registry and the enqueue API (sync and asyncio)."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from .brokers import Broker, from_url
from .brokers.base import NewJob
from .config import Settings
from .durations import parse_duration
from .errors import BananasError, PayloadError
from .handle import JobHandle
from .job import (
    assemble_record,
    check_priority,
    encode_payload,
    new_job_ids,
    now_iso,
    record_tail,
)
from .schedules import Schedule, zone
from .vocabulary import PRIORITY_NAMES, Priority

P = ParamSpec("P")
R = TypeVar("R")

EXECUTORS = ("async", "thread", "process")
_OPTIONS = ("_delay", "_at", "_priority", "_job_id", "_description", "_max_retries")
_OPTION_NAMES = frozenset(_OPTIONS)


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """What a worker needs to run one job type."""

    name: str
    fn: Callable[..., Any]
    priority: str
    timeout: float | None
    max_retries: int | None
    executor: str
    signature: inspect.Signature
    # (keyword-passable names, required names, takes **kwargs), from the signature
    shape: tuple[frozenset[str], frozenset[str], bool] = (frozenset(), frozenset(), True)

    def check_payload(self, payload: dict[str, Any]) -> None:
        """Raise TypeError when the payload does not fit the handler's parameters."""
        names, required, open_ended = self.shape
        keys = payload.keys()
        if required <= keys and (open_ended or keys <= names):
            return  # the common case, without building a BoundArguments
        self.signature.bind(**payload)


def _shape(signature: inspect.Signature) -> tuple[frozenset[str], frozenset[str], bool]:
    """(keyword-passable names, required ones, takes **kwargs) of a signature."""
    kinds = inspect.Parameter
    params = signature.parameters.values()
    names = frozenset(
        p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
    )
    required = frozenset(p.name for p in params if p.name in names and p.default is kinds.empty)
    if any(p.kind is kinds.POSITIONAL_ONLY and p.default is kinds.empty for p in params):
        required = required | {"\0positional-only"}  # never satisfied: bind() explains
    open_ended = any(p.kind is kinds.VAR_KEYWORD for p in params)
    return names, required, open_ended


@dataclass(slots=True)
class JobSpec:
    """One job for `enqueue_many`: made by `fn.spec(...)` or `app.spec(name, ...)`."""

    name: str
    payload: dict[str, Any]
    priority: str
    delay: float | None = None
    at: float | None = None
    job_id: str | None = None
    description: str = ""
    max_retries: int | None = None


class JobFunction(Generic[P, R]):
    """What `@app.job` returns: still callable directly, plus `.enqueue()`."""

    def __init__(self, app: Bananas, definition: JobDefinition) -> None:
        self.app = app
        self.definition = definition
        self.name = definition.name
        self.__wrapped__ = definition.fn
        self.__doc__ = definition.fn.__doc__
        self.__module__ = definition.fn.__module__
        self.__qualname__ = definition.fn.__qualname__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.definition.fn(*args, **kwargs)
        return result

    def spec(self, **kwargs: Any) -> JobSpec:
        return self.app.spec(self.name, **kwargs)

    def enqueue(self, **kwargs: Any) -> JobHandle:
        return self.app.enqueue(self.name, **kwargs)

    async def enqueue_async(self, **kwargs: Any) -> JobHandle:
        return await self.app.enqueue_async(self.name, **kwargs)


class Bananas:
    """A Bananas application.

    The broker comes from `broker_url`, else BANANAS_BROKER_URL / REDIS_URL, read
    when first needed (never at import time), else the embedded SQLite file.
    """

    def __init__(
        self,
        broker_url: str | None = None,
        *,
        prefix: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._broker_url = broker_url
        self._prefix = prefix
        self._settings = settings
        self.handlers: dict[str, JobDefinition] = {}
        self.schedules: dict[str, Schedule] = {}
        self._sync_broker: Broker | None = None
        self._sync_broker_lock = threading.Lock()
        self._async_brokers: dict[asyncio.AbstractEventLoop, Broker] = {}

    # -- configuration ------------------------------------------------------
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    def configure(self, settings: Settings) -> None:
        """Use these settings (the worker CLI calls this before anything runs)."""
        self._settings = settings
        self._sync_broker = None
        self._async_brokers.clear()

    @property
    def broker_url(self) -> str:
        return self._broker_url or self.settings.effective_broker_url

    @property
    def prefix(self) -> str:
        return self._prefix or self.settings.prefix

    def new_broker(self) -> Broker:
        return from_url(self.broker_url, prefix=self.prefix, result_ttl=self.settings.result_ttl)

    @property
    def broker(self) -> Broker:
        """Broker for synchronous client calls, shared by every thread."""
        broker = self._sync_broker
        if broker is None:
            # Locked: web threads enqueue at once on a fresh process; unlocked,
            # each would build a broker (scripts, pools) and all but one leak.
            with self._sync_broker_lock:
                broker = self._sync_broker
                if broker is None:
                    broker = self._sync_broker = self.new_broker()
        return broker

    def async_broker(self) -> Broker:
        """Broker for asyncio client calls on the running loop (one per loop)."""
        loop = asyncio.get_running_loop()
        broker = self._async_brokers.get(loop)
        if broker is None:
            for old in [lp for lp in self._async_brokers if lp.is_closed()]:
                del self._async_brokers[old]
            broker = self._async_brokers[loop] = self.new_broker()
        return broker

    # -- registry -------------------------------------------------------------
    @overload
    def job(
        self,
        fn: Callable[P, R],
        /,
        *,
        name: str | None = None,
        priority: str = Priority.NORMAL,
        timeout: str | float | None = None,
        max_retries: int | None = None,
        executor: str | None = None,
    ) -> JobFunction[P, R]: ...

    @overload
    def job(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        priority: str = Priority.NORMAL,
        timeout: str | float | None = None,
        max_retries: int | None = None,
        executor: str | None = None,
    ) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...

    def job(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        priority: str = Priority.NORMAL,
        timeout: str | float | None = None,
        max_retries: int | None = None,
        executor: str | None = None,
    ) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
        """Register a job handler. Async functions run on the event loop, plain
        functions in a thread pool, `executor="process"` in a process pool."""

        def register(func: Callable[P, R]) -> JobFunction[P, R]:
            definition = _define(func, name, priority, timeout, max_retries, executor)
            if definition.name in self.handlers:
                raise BananasError(f"job type {definition.name!r} is registered twice")
            self.handlers[definition.name] = definition
            return JobFunction(self, definition)

        return register(fn) if fn is not None else register

    def cron(
        self,
        expression: str,
        *,
        name: str | None = None,
        payload: dict[str, Any] | None = None,
        timezone: str = "UTC",
        **job_options: Any,
    ) -> Callable[[Callable[P, R]], JobFunction[P, R]]:
        """Register a job and run it on a cron schedule ("*/5 * * * *"; a sixth
        field gives seconds). Each firing is enqueued exactly once, however many
        schedulers run."""

        def register(func: Callable[P, R]) -> JobFunction[P, R]:
            fn = self.job(name=name, **job_options)(func)
            self._add_schedule(
                Schedule(fn.name, cron=expression, payload=payload or {}, timezone=zone(timezone))
            )
            return fn

        return register

    def periodic(
        self,
        *,
        every: str | float,
        name: str | None = None,
        payload: dict[str, Any] | None = None,
        **job_options: Any,
    ) -> Callable[[Callable[P, R]], JobFunction[P, R]]:
        """Register a job and run it every `every` ("30s", "5m"), aligned to the
        clock (multiples of the interval since the epoch)."""
        try:
            seconds = parse_duration(every)
        except ValueError as exc:
            raise BananasError(f"@app.periodic every={every!r}: {exc}") from None

        def register(func: Callable[P, R]) -> JobFunction[P, R]:
            fn = self.job(name=name, **job_options)(func)
            self._add_schedule(Schedule(fn.name, every=seconds, payload=payload or {}))
            return fn

        return register

    def _add_schedule(self, schedule: Schedule) -> None:
        definition = self.handlers[schedule.name]
        try:
            definition.check_payload(schedule.payload)
        except TypeError as exc:
            raise BananasError(f"schedule {schedule.name!r}: payload does not fit: {exc}") from None
        self.schedules[schedule.name] = schedule

    def include(self, other: Bananas) -> None:
        """Take every handler registered on another app (processor discovery)."""
        for name, definition in other.handlers.items():
            existing = self.handlers.get(name)
            if existing is not None and existing.fn is not definition.fn:
                raise BananasError(f"job type {name!r} is registered by two processors")
            self.handlers[name] = definition
        self.schedules.update(other.schedules)

    # -- enqueue ------------------------------------------------------------
    def spec(self, name: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> JobSpec:
        """Describe a job: keyword arguments are the payload, `_delay`, `_at`,
        `_priority`, `_job_id`, `_description`, `_max_retries` are options."""
        definition = self.handlers.get(name)
        options = {k: v for k, v in kwargs.items() if k[:1] == "_"} if kwargs else kwargs
        if options:
            kwargs = {k: v for k, v in kwargs.items() if k[:1] != "_"}
            if not options.keys() <= _OPTION_NAMES:
                unknown = sorted(options.keys() - _OPTION_NAMES)
                raise BananasError(
                    f"unknown enqueue option {unknown[0]!r} (allowed: {', '.join(_OPTIONS)})"
                )
        if payload is not None and kwargs:
            raise PayloadError("give the payload either as a dict or as keyword arguments")
        if payload is None:
            payload = kwargs
        if definition is None:
            priority, max_retries = Priority.NORMAL.value, None
        else:
            priority, max_retries = definition.priority, definition.max_retries
        if not options:  # the common case
            return JobSpec(name, payload, priority, max_retries=max_retries)
        chosen = options.get("_priority")
        if chosen is not None:
            priority = str(chosen)
            if priority not in PRIORITY_NAMES:
                try:
                    check_priority(priority)
                except ValueError as exc:
                    raise BananasError(str(exc)) from None
        if options.get("_max_retries") is not None:
            max_retries = options["_max_retries"]
        return JobSpec(
            name=name,
            payload=payload,
            priority=priority,
            delay=_seconds(options.get("_delay"), "_delay"),
            at=_unix(options.get("_at")),
            job_id=options.get("_job_id"),
            description=str(options.get("_description") or ""),
            max_retries=max_retries,
        )

    def build_jobs(self, specs: Iterable[JobSpec | tuple[str, dict[str, Any]]]) -> list[NewJob]:
        """Encode specs into records ready for `Broker.enqueue` (no I/O)."""
        limit = self.settings.max_payload_bytes
        items = specs if isinstance(specs, Sequence) else list(specs)
        jobs = []
        now = time.time()
        stamp = now_iso()  # one created_at for the batch: they are enqueued together
        # Alike ready-now jobs share their encoded fields; only id and payload differ.
        tails: dict[tuple[str, str, int | None, str], bytes] = {}
        for item, fresh_id in zip(items, new_job_ids(len(items)), strict=True):
            spec = item if isinstance(item, JobSpec) else self.spec(item[0], item[1])
            name = spec.name
            if not name or not isinstance(name, str):
                raise BananasError("a job type name must be a non-empty string")
            payload_json = encode_payload(spec.payload, limit)
            job_id = spec.job_id or fresh_id
            due = spec.at if spec.at is not None else (now + spec.delay if spec.delay else None)
            alike = (name, spec.priority, spec.max_retries, spec.description)
            tail = tails.get(alike) if due is None else None
            if tail is None:
                tail = record_tail(
                    name=name,
                    priority=spec.priority,
                    max_retries=spec.max_retries,
                    description=spec.description,
                    now=stamp,
                    scheduled_for=due,
                )
                if due is None:
                    tails[alike] = tail
            record = assemble_record(job_id, tail, payload_json)
            jobs.append(NewJob(job_id, name, spec.priority, record, due))
        return jobs

    def enqueue(self, name: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> JobHandle:
        """Enqueue one job by type name (sync)."""
        return self.enqueue_many([self.spec(name, payload, **kwargs)])[0]

    async def enqueue_async(
        self, name: str, payload: dict[str, Any] | None = None, **kwargs: Any
    ) -> JobHandle:
        return (await self.enqueue_many_async([self.spec(name, payload, **kwargs)]))[0]

    def enqueue_many(
        self, specs: Sequence[JobSpec | tuple[str, dict[str, Any]]]
    ) -> list[JobHandle]:
        """Enqueue a batch in one round trip (chunked for very large batches)."""
        jobs = self.build_jobs(specs)
        if jobs:
            self.broker.enqueue_sync(jobs)
        return [JobHandle(self, job.id) for job in jobs]

    async def enqueue_many_async(
        self, specs: Sequence[JobSpec | tuple[str, dict[str, Any]]]
    ) -> list[JobHandle]:
        jobs = self.build_jobs(specs)
        if jobs:
            await self.async_broker().enqueue(jobs)
        return [JobHandle(self, job.id) for job in jobs]

    def handle(self, job_id: str) -> JobHandle:
        return JobHandle(self, job_id)

    async def aclose(self) -> None:
        for broker in list(self._async_brokers.values()):
            await broker.close()
        self._async_brokers.clear()

    def close(self) -> None:
        if self._sync_broker is not None:
            asyncio.run(self._sync_broker.close())
            self._sync_broker = None


def _define(
    func: Callable[..., Any],
    name: str | None,
    priority: str,
    timeout: str | float | None,
    max_retries: int | None,
    executor: str | None,
) -> JobDefinition:
    if not callable(func):
        raise BananasError(f"@app.job needs a function, got {type(func).__name__}")
    job_name = name or func.__name__
    is_async = inspect.iscoroutinefunction(func)
    chosen = executor or ("async" if is_async else "thread")
    where = f"@app.job on {func.__qualname__}"
    if chosen not in EXECUTORS:
        raise BananasError(
            f"{where}: unknown executor {chosen!r} (allowed: async, thread, process)"
        )
    if chosen == "async" and not is_async:
        raise BananasError(f"{where}: executor='async' needs an async def function")
    if chosen == "thread" and is_async:
        raise BananasError(f"{where}: executor='thread' needs a plain def function")
    try:
        priority = check_priority(str(priority))  # plain text: Priority.HIGH -> "high"
        seconds = None if timeout is None else parse_duration(timeout)
    except ValueError as exc:
        raise BananasError(f"{where}: {exc}") from None
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise BananasError(f"{where}: max_retries must be a non-negative integer")
    signature = inspect.signature(func)
    return JobDefinition(
        job_name, func, priority, seconds, max_retries, chosen, signature, _shape(signature)
    )


def _seconds(value: Any, option: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BananasError(f"{option}={value!r}: {exc}") from None


def _unix(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BananasError("_at needs a timezone-aware datetime")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BananasError(f"_at={value!r}: expected an aware datetime or unix seconds")


__all__ = ["Bananas", "JobDefinition", "JobFunction", "JobSpec"]
