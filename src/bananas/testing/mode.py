"""TestMode: an app's jobs run in the test's own process, with no broker.

Everything up to the broker and after it is the production code: an enqueue
goes through `Bananas.spec` and `specs.encode_specs` (options, the signature
check, JSON encoding, MAX_PAYLOAD_BYTES); a job runs through the worker's
`JobRunner` (record decoding, handler lookup by type, the payload check, the
executors, the job timeout, the result's JSON encoding and MAX_RESULT_BYTES,
retries with the production back-off and budget, dead letters). Only the
broker is swapped for `MemoryBroker`, whose clock the test moves.

Jobs run when the test says so, one at a time, in the calling thread: on
`drain()` (collect mode, the default) or before `enqueue` returns
(`inline=True`). A job that a job enqueues runs in the same drain, after it.
Delays and retries fall due on the test clock (`clock.advance(...)`, or
`drain(advance=True)`, which jumps the clock to each next due job).
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

import orjson

from ..brokers.base import Broker
from ..brokers.cache import BrokerCache
from ..brokers.records import DeadInfo
from ..definitions import JobDefinition
from ..errors import BananasError
from ..handle import JobHandle
from ..hooks import ChildScope
from ..logs import EventLog
from ..observe.stats import WorkerStats
from ..worker.executors import Executors, Requeue
from ..worker.runner import JobRunner
from .broker import WAITING, Entry, MemoryBroker, TestClock

if TYPE_CHECKING:
    from ..app import Bananas

T = TypeVar("T")
DRAIN_LIMIT = 1000  # jobs per drain: more means a job that re-enqueues itself without end


@dataclass(frozen=True, slots=True)
class TestJob:
    """One enqueued job as the test mode holds it (`TestMode.jobs()`)."""

    __test__ = False

    id: str
    name: str
    payload: dict[str, Any]
    priority: str
    state: str  # queued, scheduled, running, completed, dead
    attempts: int
    due_in: float  # seconds on the test clock until it is due (0: due)
    error: str  # the last attempt's error, "" if none


class TestMode:
    """Run `app`'s jobs in memory: `with TestMode(app) as jobs: ...; jobs.drain()`.

    `inline=True` runs each job before `enqueue` returns. `processes=True`
    runs `executor="process"` jobs in a real process pool (the default runs
    them in a thread, where the test's mocks and monkeypatches apply)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Bananas,
        *,
        inline: bool = False,
        processes: bool = False,
        clock: TestClock | None = None,
    ) -> None:
        self.app = app
        self.inline = inline
        self.clock = clock or TestClock()
        self.broker = MemoryBroker(self.clock)
        self.broker.after_enqueue = self._enqueued
        self.broker.after_enqueue_async = self._enqueued_async
        self.broker.explain = self._explain
        self.clock.on_advance = self._enqueued
        self.stats = WorkerStats()
        self._lines = _Lines()
        self._log = EventLog("info", "json", stream=self._lines)
        self._executors = _Executors(processes)
        self._draining = False
        self._lock = threading.Lock()
        self._saved: BrokerCache | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> TestMode:
        """Point the app's enqueue and result calls at the memory broker."""
        if self._saved is not None:
            raise BananasError("this TestMode is already started")
        # The app keeps its real brokers in its cache; they come back on stop().
        # Only WorkerPath is implemented (see broker.py), hence the cast.
        self._saved = self.app._brokers
        self.app._brokers = BrokerCache(lambda: cast(Broker, self.broker))
        return self

    def stop(self) -> None:
        """Give the app its own brokers back; stop the job threads."""
        if self._saved is not None:
            self.app._brokers, self._saved = self._saved, None
        self._executors.shutdown()
        loop = self._loop
        if loop is not None:
            self._blocking(loop.shutdown_asyncgens)  # the broker cache's guard on it
            self._loop = None
            loop.close()

    def __enter__(self) -> TestMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- running jobs ---------------------------------------------------------
    def drain(self, *, advance: bool = False, limit: int = DRAIN_LIMIT) -> list[JobHandle]:
        """Run every job that is due, and the jobs they enqueue, until none is
        due; with `advance`, then move the clock to the next scheduled job
        (a delay, a retry) and go on until nothing is left. Returns a handle
        per run, in order (a job retried twice appears three times)."""
        return self._blocking(lambda: self.drain_async(advance=advance, limit=limit))

    async def drain_async(
        self, *, advance: bool = False, limit: int = DRAIN_LIMIT
    ) -> list[JobHandle]:
        """`drain()` on the running event loop (async handlers run on it)."""
        with self._lock:
            if self._draining:
                raise BananasError("drain() called while a drain is running (from a job?)")
            self._draining = True
        try:
            return await self._drain(advance, limit)
        finally:
            self._draining = False

    async def _drain(self, advance: bool, limit: int) -> list[JobHandle]:
        runner = JobRunner(
            self.app.handlers,
            cast(Broker, self.broker),
            self.app.settings,
            self._executors,
            self._log,
            self.stats,
        )
        hooks = self.app.hooks.for_worker(self._log, "test-mode") if self.app.hooks else None
        if hooks is not None and hooks.runs():  # run hooks fire as on a worker
            runner.hooks = hooks
        ran: list[JobHandle] = []
        while True:
            delivery = self.broker.take(self.app.handlers)
            if delivery is None:
                due = self.broker.next_due(self.app.handlers) if advance else None
                if due is None:
                    return ran
                self.clock.move_to(due)
                continue
            if len(ran) >= limit:
                await self.broker.requeue([delivery])
                raise BananasError(
                    f"drain() ran {limit} jobs and more are due: a job that enqueues "
                    "itself or fails without end? (drain(limit=...) to allow more)"
                )
            try:  # a task of its own, as in a worker: current_job() stays in it
                await asyncio.create_task(runner.run(delivery))
            except Requeue:  # a process pool restarted under it (processes=True)
                await self.broker.requeue([delivery])
            ran.append(self.app.handle(delivery.id))

    def _enqueued(self) -> None:
        """After an enqueue or a clock move: inline mode runs what is due now.
        Within a drain (a job enqueued it) that drain runs it next."""
        if self.inline and not self._draining:
            self.drain()

    async def _enqueued_async(self) -> None:
        if self.inline and not self._draining:
            await self.drain_async()

    def _blocking(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run `work` to its end on the test mode's own loop; from a thread of
        its own when the caller is inside a running loop (the sync API called
        from async code, where a loop cannot be run)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.new_event_loop()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return loop.run_until_complete(work())
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, loop.run_until_complete(work())))
            except BaseException as exc:
                outcome.append((False, exc))

        thread = threading.Thread(target=run, name="bananas-test-mode")
        thread.start()
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return cast(T, value)

    # -- what a test reads ----------------------------------------------------
    def jobs(self, name: str | None = None, state: str | None = None) -> list[TestJob]:
        """Every job enqueued so far (of type `name`, in `state`), in enqueue order."""
        now = self.clock.now()
        found = sorted(self.broker.jobs.items(), key=lambda item: item[1].seq)
        return [
            _test_job(job_id, entry, now)
            for job_id, entry in found
            if (name is None or entry.name == name) and (state is None or entry.state == state)
        ]

    def dead_info(self, job_id: str) -> DeadInfo | None:
        """Why a job was dead-lettered (reason, error, traceback), None if it was not."""
        entry = self.broker.jobs.get(job_id)
        return entry.dead if entry else None

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The worker's log lines of the runs so far (job.started, job.retried, ...)."""
        return [e for e in self._lines.lines if name is None or e.get("event") == name]

    def _explain(self, job_id: str) -> str:
        """What `handle.result()` raises instead of waiting: nothing runs in
        the background in test mode, so a wait could only time out."""
        head = f"job {job_id} has not finished"
        entry = self.broker.jobs.get(job_id)
        if entry is None:
            return f"{head}: the test mode has no job {job_id}"
        if entry.name not in self.app.handlers:
            return (
                f"{head}: no handler for job type {entry.name!r} is registered on this app; "
                "it waits, as it would for a worker that runs it"
            )
        if entry.state in WAITING:
            wait = entry.due - self.clock.now()
            if wait > 0:
                return (
                    f"{head}: it is scheduled, due in {wait:g}s on the test clock "
                    "(jobs.clock.advance(...) then jobs.drain(), or jobs.drain(advance=True))"
                )
            return f"{head}: it is queued; the test mode runs jobs on jobs.drain()"
        return f"{head}: it is {entry.state.value}"


def _test_job(job_id: str, entry: Entry, now: float) -> TestJob:
    fields = orjson.loads(entry.record)
    return TestJob(
        id=job_id,
        name=entry.name,
        payload=fields.get("payload") or {},
        priority=entry.priority,
        state=entry.state.value,
        attempts=int(fields.get("attempts") or 0),
        due_in=max(0.0, entry.due - now) if entry.state in WAITING else 0.0,
        error=str(fields.get("error") or ""),
    )


class _Executors(Executors):
    """The worker's executors; `executor="process"` jobs in a thread unless
    `processes` (a spawned pool costs a second, and a test's mocks would not
    reach into it)."""

    def __init__(self, processes: bool) -> None:
        super().__init__(concurrency=2)
        self.real_processes = processes
        self._as_thread: dict[str, JobDefinition] = {}

    async def run(
        self,
        definition: JobDefinition,
        kwargs: dict[str, Any],
        timeout: float,
        scopes: list[ChildScope] | None = None,
    ) -> Any:
        if definition.executor == "process" and not self.real_processes:
            definition = self._as_thread.get(definition.name) or self._as_thread.setdefault(
                definition.name, replace(definition, executor="thread")
            )
        return await super().run(definition, kwargs, timeout, scopes)


class _Lines(io.StringIO):
    """The event log's stream: each JSON line kept, decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def write(self, text: str) -> int:
        self.lines.extend(orjson.loads(line) for line in text.splitlines() if line)
        return len(text)


__all__ = ["TestJob", "TestMode"]
