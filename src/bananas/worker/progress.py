"""The worker's side of job progress: `current_job().set_progress` from an
async handler, a thread or (through executors.py) a process-pool child lands
in `ProgressHub.report`, which throttles it (progress.py) and writes it with
`Broker.set_progress` under the job's lease.

Only jobs that report progress have an entry in `jobs`, so a job that never
calls set_progress costs one dict lookup at settle time and no broker write.
`report` may be called from any thread: it keeps the latest value under a
lock and wakes the loop at most once per pending write, so a tight loop in a
thread does not flood the event loop either. One writer task per reporting
job sends the writes in order (never two of one job at once).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import BananasError
from ..progress import PROGRESS_INTERVAL

if TYPE_CHECKING:
    from ..brokers.base import Broker, Delivery
    from ..config import Settings
    from ..context import JobContext
    from ..definitions import JobDefinition
    from ..logs import EventLog


@dataclass(eq=False)
class _Job:
    delivery: Delivery
    name: str
    attempt: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    latest: tuple[float, str] | None = None  # reported, not yet written
    written: tuple[float, str] | None = None
    kicked: bool = False  # a writer task runs, or the loop was asked to start one
    closed: bool = False  # the job is settling (or lost its lease): no more writes
    task: asyncio.Task[None] | None = None
    wake: asyncio.Future[None] | None = None
    next_at: float = 0.0  # loop time from which the next write may go
    warned: bool = False


class ProgressHub:
    def __init__(
        self,
        broker: Broker,
        settings: Settings,
        handlers: dict[str, JobDefinition],
        log: EventLog,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.handlers = handlers
        self.log = log
        self.interval = interval
        self.jobs: dict[str, _Job] = {}  # only jobs that reported progress
        self.loop = _running_loop()  # else bound by Worker.run (threads need it)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # -- any thread ---------------------------------------------------------------
    def report(self, job: JobContext, fraction: float, message: str) -> None:
        delivery = job.lease
        if delivery is None or delivery.settling:
            return
        loop = self.loop or _running_loop()
        if loop is None:  # a thread of a runner no loop was bound to: nowhere to write
            return
        state = self.jobs.get(delivery.id)
        if state is None or state.delivery is not delivery:
            state = _Job(delivery, job.name, job.attempt)
            self.jobs[delivery.id] = state
            if delivery.settling:  # it began settling meanwhile: finish() may miss this
                self.jobs.pop(delivery.id, None)
                return
        with state.lock:
            if state.closed:
                return
            state.latest = (fraction, message)
            if state.kicked:
                return
            state.kicked = True
        try:
            loop.call_soon_threadsafe(self._kick, state)
        except RuntimeError:  # the loop is closed (the worker stopped): nothing to write to
            return

    # -- the loop -----------------------------------------------------------------
    def _kick(self, state: _Job) -> None:
        if state.task is None and not state.closed:
            state.task = asyncio.get_running_loop().create_task(self._writer(state))

    async def _writer(self, state: _Job) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wait = state.next_at - loop.time()
            if wait > 0 and not state.closed:
                state.wake = wake = loop.create_future()
                timer = loop.call_later(wait, _resolve, wake)
                try:
                    await wake
                finally:
                    timer.cancel()
                    state.wake = None
            with state.lock:
                value, state.latest = state.latest, None
                if value is None:
                    state.kicked = False
                    state.task = None
                    return
            await self._write(state, value)
            state.next_at = loop.time() + self.interval

    async def _write(self, state: _Job, value: tuple[float, str]) -> None:
        if value == state.written:
            return
        definition = self.handlers.get(state.name)
        timeout = (definition.timeout if definition else None) or self.settings.job_timeout
        # Kept for the result TTL after the job's timeout would end: never gone
        # before its result, at most one timeout after it.
        ttl = self.broker.result_ttl + timeout
        try:
            held = await self.broker.set_progress(
                state.delivery, value[0], value[1], state.attempt, ttl
            )
        except BananasError as exc:
            if not state.warned:  # once per job: a broker outage must not flood the log
                state.warned = True
                self.log.warning(
                    "job.progress_failed",
                    job_id=state.delivery.id,
                    job_type=state.name,
                    error=str(exc),
                    detail="progress is best effort; the job goes on",
                )
            return
        state.written = value
        if not held:  # the lease is gone: another worker holds the job now
            state.closed = True
            self.jobs.pop(state.delivery.id, None)

    async def finish(self, delivery: Delivery) -> None:
        """Before the job's outcome is recorded: write its latest progress."""
        state = self.jobs.pop(delivery.id, None)
        if state is None or state.delivery is not delivery:
            return
        with state.lock:
            state.closed = True
        wake, task = state.wake, state.task
        if wake is not None and not wake.done():
            wake.set_result(None)
        if task is not None:
            await task  # it writes the latest value without waiting, then ends
            return
        with state.lock:
            value, state.latest = state.latest, None
        if value is not None:
            await self._write(state, value)

    def forget(self, job_id: str) -> None:
        """The job was put back (drain, pool restart): no final write."""
        state = self.jobs.pop(job_id, None)
        if state is not None:
            with state.lock:
                state.closed = True
                state.latest = None  # its writer, if any, finds nothing and ends


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
