"""The Bananas app: settings and brokers, the handler registry (`@app.job`,
`@app.cron`, `@app.periodic`) and the enqueue API (sync and asyncio).

What a registration checks is in definitions.py; what an enqueue encodes is
in specs.py. This module holds the object that ties them to a broker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Never, ParamSpec, TypeVar, Unpack, overload

from .brokers import Broker, from_url
from .brokers.base import NewJob
from .brokers.cache import BrokerCache
from .config import Settings
from .definitions import EXECUTORS, JobDefinition, define
from .durations import parse_duration
from .errors import BananasError
from .handle import JobHandle
from .hooks import Hook, Hooks
from .options import EnqueueOptions, JobOptions, bind_options
from .schedules import Schedule, zone
from .specs import JobSpec, encode_specs, make_spec
from .vocabulary import Priority

if TYPE_CHECKING:
    from .workflows import WorkflowHandle

P = ParamSpec("P")
R = TypeVar("R")


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

    # `*args: Never`: mypy flags a positional payload; at run time it is explained.
    def spec(self, *args: Never, **kwargs: Any) -> JobSpec:
        if args:
            raise self.definition.positional_error(len(args))
        return self.app.spec(self.name, **kwargs)

    def si(self, *args: Never, **kwargs: Any) -> JobSpec:
        """`spec(...).immutable()`: a workflow step that gets only its payload."""
        return self.spec(*args, **kwargs).immutable()

    def enqueue(self, *args: Never, **kwargs: Any) -> JobHandle:
        if args:
            raise self.definition.positional_error(len(args))
        return self.app.enqueue(self.name, **kwargs)

    async def enqueue_async(self, *args: Never, **kwargs: Any) -> JobHandle:
        if args:
            raise self.definition.positional_error(len(args))
        return await self.app.enqueue_async(self.name, **kwargs)

    def options(self, **options: Unpack[EnqueueOptions]) -> JobOptions[P]:
        """The typed form: options first, then `.enqueue(...)` with exactly the
        handler's parameters, checked by mypy (`options()` for none)."""
        return JobOptions(self.app, self.definition, bind_options(options))


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
        hooks: Iterable[Hook] = (),
    ) -> None:
        self._broker_url = broker_url
        self._prefix = prefix
        self._settings = settings
        self.hooks = Hooks(hooks)  # lifecycle hooks (hooks.py, docs/hooks.md)
        self.handlers: dict[str, JobDefinition] = {}
        self.schedules: dict[str, Schedule] = {}
        self._brokers = BrokerCache(self.new_broker)

    # -- configuration ------------------------------------------------------
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    def configure(self, settings: Settings) -> None:
        """Use these settings (the worker CLI calls this before anything runs)."""
        self._brokers.close_all()  # built with the old settings
        self._settings = settings

    @property
    def broker_url(self) -> str:
        return self._broker_url or self.settings.effective_broker_url

    @property
    def prefix(self) -> str:
        return self._prefix or self.settings.prefix

    def new_broker(self) -> Broker:
        s = self.settings
        return from_url(
            self.broker_url, prefix=self.prefix, result_ttl=s.result_ttl, **s.replication
        )

    @property
    def broker(self) -> Broker:
        """Broker for synchronous client calls, shared by every thread."""
        return self._brokers.shared()

    def async_broker(self) -> Broker:
        """Broker for asyncio client calls on the running loop (one per loop)."""
        return self._brokers.for_loop()

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
        route: str | None = None,
        unique_for: str | float | None = None,
        concurrency: int | None = None,
        rate_limit: str | None = None,
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
        route: str | None = None,
        unique_for: str | float | None = None,
        concurrency: int | None = None,
        rate_limit: str | None = None,
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
        route: str | None = None,
        unique_for: str | float | None = None,
        concurrency: int | None = None,
        rate_limit: str | None = None,
    ) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
        """Register a job handler. Async functions run on the event loop, plain
        functions in a thread pool, `executor="process"` in a process pool.
        `unique_for="10m"`: at most one live job per key; `concurrency=2`: at
        most 2 running at once across all workers; `rate_limit="100/s"`: at
        most that many starts across the fleet (docs/control.md)."""

        def register(func: Callable[P, R]) -> JobFunction[P, R]:
            definition = define(
                func,
                name,
                priority,
                timeout,
                max_retries,
                executor,
                route,
                unique_for,
                concurrency,
                rate_limit,
            )
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

        _not_unique(job_options, "@app.cron")

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
        _not_unique(job_options, "@app.periodic")

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

    def add_hook(self, hook: Hook) -> Hook:
        """Register a lifecycle hook (after those given as `Bananas(hooks=[...])`)."""
        self.hooks.add(hook)
        return hook

    # -- enqueue ------------------------------------------------------------
    def spec(self, name: str, payload: dict[str, Any] | None = None, /, **kwargs: Any) -> JobSpec:
        """Describe a job: keyword arguments are the payload, `_delay`, `_at`,
        `_priority`, `_job_id`, `_description`, `_max_retries` are options.
        `name` and `payload` are positional-only, so a handler may have
        parameters of those names (`send_welcome.enqueue(name="Ada")`)."""
        spec = make_spec(self.handlers.get(name), name, payload, kwargs)
        spec.app = self  # a workflow finds its app from its specs
        return spec

    def build_jobs(self, specs: Iterable[JobSpec | tuple[str, dict[str, Any]]]) -> list[NewJob]:
        """Encode specs into records ready for `Broker.enqueue` (no I/O)."""
        return encode_specs(specs, self.settings.max_payload_bytes, self.spec)

    def enqueue(
        self, name: str, payload: dict[str, Any] | None = None, /, **kwargs: Any
    ) -> JobHandle:
        """Enqueue one job by type name (sync). `_depends_on=[handle, ...]`:
        it waits for steps of a workflow (docs/workflows.md)."""
        if "_depends_on" in kwargs:
            from .workflows.depends import enqueue_after_sync

            deps = kwargs.pop("_depends_on")
            return enqueue_after_sync(self, self.spec(name, payload, **kwargs), deps)
        return self.enqueue_many([self.spec(name, payload, **kwargs)])[0]

    async def enqueue_async(
        self, name: str, payload: dict[str, Any] | None = None, /, **kwargs: Any
    ) -> JobHandle:
        if "_depends_on" in kwargs:
            from .workflows.depends import enqueue_after

            deps = kwargs.pop("_depends_on")
            spec = self.spec(name, payload, **kwargs)
            return await enqueue_after(self, self.async_broker(), spec, deps)
        return (await self.enqueue_many_async([self.spec(name, payload, **kwargs)]))[0]

    def enqueue_many(
        self, specs: Sequence[JobSpec | tuple[str, dict[str, Any]]]
    ) -> list[JobHandle]:
        """Enqueue a batch in one round trip (chunked for very large batches)."""
        jobs = self.build_jobs(specs)
        if jobs and self.hooks.enqueue:
            self.hooks.enqueue_sync(specs, jobs, self.broker.sync.enqueue)
        elif jobs:
            self.broker.sync.enqueue(jobs)
        return [_handle(self, job) for job in jobs]

    async def enqueue_many_async(
        self, specs: Sequence[JobSpec | tuple[str, dict[str, Any]]]
    ) -> list[JobHandle]:
        jobs = self.build_jobs(specs)
        if jobs and self.hooks.enqueue:
            await self.hooks.enqueue_async(specs, jobs, self.async_broker().enqueue)
        elif jobs:
            await self.async_broker().enqueue(jobs)
        return [_handle(self, job) for job in jobs]

    def handle(self, job_id: str) -> JobHandle:
        return JobHandle(self, job_id)

    def workflow(self, workflow_id: str) -> WorkflowHandle:
        """The handle of a workflow enqueued earlier (docs/workflows.md)."""
        from .workflows import WorkflowHandle

        return WorkflowHandle(self, workflow_id)

    async def aclose(self) -> None:
        await self._brokers.aclose()

    def close(self) -> None:
        self._brokers.close_shared()


def _handle(app: Bananas, job: NewJob) -> JobHandle:
    """The handle of an enqueued job; a unique job's duplicate gets the handle
    of the job that holds its key, marked `duplicate`."""
    if job.duplicate_of is None:
        return JobHandle(app, job.id)
    return JobHandle(app, job.duplicate_of, duplicate=True)


def _not_unique(job_options: dict[str, Any], where: str) -> None:
    """A schedule's firings are deduplicated by their job id, once each; a
    unique key on top would drop a firing while the previous one runs."""
    if job_options.get("unique_for") is not None:
        raise BananasError(
            f"{where}: unique_for is not supported on scheduled jobs (each firing is "
            "already enqueued exactly once, by its firing id)"
        )


__all__ = ["EXECUTORS", "Bananas", "JobDefinition", "JobFunction", "JobSpec"]
