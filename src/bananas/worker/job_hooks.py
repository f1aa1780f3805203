"""The worker's side of the lifecycle hooks (bananas/hooks.py): one attempt's
events from `before_run` to `after_run`, dead letters of unrun jobs, and the
scopes a process-pool child enters around a handler.

Only built when the app has a hook overriding a per-job event: the runner
holds `hooks = None` otherwise and pays one attribute test per job.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ..hooks import DEAD, INTERRUPTED, RETRYING, ChildScope, Hooks, Outcome, RunningJob
from ..job import JobRecord
from ..logs import EventLog


def running_job(hooks: Hooks, job_id: str, record: JobRecord | None, attempt: int) -> RunningJob:
    if record is None:
        return RunningJob(job_id, "", "", attempt, {}, {}, hooks.worker_id)
    headers = record.fields.get("headers")
    if not isinstance(headers, dict):
        headers = {}  # another writer's shape: ignored, as SDK readers do
    elif not all(type(v) is str for v in headers.values()):
        headers = {k: v for k, v in headers.items() if type(v) is str}
    return RunningJob(
        job_id, record.name, record.priority, attempt, record.payload, headers, hooks.worker_id
    )


def run_started(hooks: Hooks, job_id: str, record: JobRecord, attempt: int) -> JobHooks:
    """`before_run` for one attempt; the returned object reports its end."""
    job = running_job(hooks, job_id, record, attempt)
    hooks.emit("before_run", job, job_id=job_id)
    return JobHooks(hooks, job, time.perf_counter())


def rejected(hooks: Hooks, job_id: str, record: JobRecord | None, reason: str) -> None:
    """`on_dead_letter` for a job dead-lettered unrun (bad record or payload)."""
    job = running_job(hooks, job_id, record, record.attempts if record is not None else 0)
    hooks.emit("on_dead_letter", job, Outcome(DEAD, 0.0, reason, reason=reason), job_id=job_id)


@dataclass(slots=True)
class JobHooks:
    """The hooks of one attempt, from `before_run` to `after_run` (once)."""

    hooks: Hooks
    job: RunningJob
    started: float  # perf_counter at before_run
    ended: bool = False

    def scopes(self) -> list[ChildScope] | None:
        found = self.hooks.emit("process_scope", self.job, job_id=self.job.id)
        scopes = [scope for scope in found if scope is not None]
        return scopes or None

    def settled(self, outcome: Outcome) -> None:
        """The attempt's outcome: `on_retry` / `on_dead_letter`, then `after_run`."""
        if self.ended:
            return
        self.ended = True
        hooks, job = self.hooks, self.job
        if outcome.status == RETRYING:
            hooks.emit("on_retry", job, outcome, job_id=job.id)
        elif outcome.status == DEAD:
            hooks.emit("on_dead_letter", job, outcome, job_id=job.id)
        hooks.emit("after_run", job, outcome, job_id=job.id)

    def interrupted(self, reason: str, exc: BaseException | None = None) -> None:
        duration_ms = (time.perf_counter() - self.started) * 1000
        error = None if exc is None else f"{type(exc).__name__}: {exc}".rstrip(": ")
        self.settled(Outcome(INTERRUPTED, duration_ms, error, exc, reason=reason))


@contextlib.contextmanager
def child_scopes(scopes: list[ChildScope]) -> Iterator[None]:
    """In a process-pool child: enter the hooks' scopes around the handler."""
    with contextlib.ExitStack() as stack:
        for factory, arg in scopes:
            stack.enter_context(_Guarded(factory, arg))
        yield


class _Guarded:
    """A hook's scope whose failure, entering or leaving, is logged and never
    changes the job's outcome (a child has no worker log: a JSON line on stdout)."""

    def __init__(self, factory: Callable[[Any], AbstractContextManager[Any]], arg: Any) -> None:
        self.factory, self.arg = factory, arg
        self.scope: AbstractContextManager[Any] | None = None

    def __enter__(self) -> None:
        try:
            scope = self.factory(self.arg)
            scope.__enter__()
            self.scope = scope
        except Exception as exc:
            self._failed(exc)

    def __exit__(self, *exc_info: Any) -> None:
        if self.scope is not None:
            try:
                self.scope.__exit__(*exc_info)  # never suppresses the job's error
            except Exception as exc:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        log = EventLog("info", "json")
        name = getattr(self.factory, "__qualname__", repr(self.factory))
        module = getattr(self.factory, "__module__", "")
        log.error(
            "hook.failed",
            hook=f"{module}.{name}",
            hook_event="process_scope",
            pid=os.getpid(),
            error=f"{type(exc).__name__}: {exc}",
            detail="ignored: the job goes on as if the hook had returned",
        )
        log.flush()
