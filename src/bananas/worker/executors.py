"""Execution strategies behind one interface: async, thread, process.

- async: the coroutine runs on the worker's loop; on timeout it is cancelled.
- thread: plain functions run in a thread pool with the caller's contextvars.
  A job's timeout starts when its thread starts, never while it waits for one.
  Python cannot stop a thread, so on timeout the job is reported failed (and
  retried) and its slot is freed; the thread runs on until the function
  returns, its result discarded, counted in `threads_stuck`. The pool is sized
  2x concurrency for that; once every thread is stuck, /livez fails (a restart
  is the only cure) and thread jobs wait, leased, rather than fail unstarted.
- cancel (worker/cancels.py): an async job's task is cancelled; a thread job
  sees `current_job().cancelled`; a process job's pool is killed as on a
  timeout (the jobs beside it are put back uncharged).
- process: CPU-bound functions run in a spawn-started process pool. On
  timeout the pool's processes are killed (the only way to stop the job) and
  the pool restarted; jobs that were running beside it in the pool are put
  back without an attempt charged, with the cause as the reason. When a job's
  process dies (crash, os._exit, OOM kill) the pool breaks: that job (known by
  the pid its child wrote into its slot, and that process's exit code) fails
  with "the job's process died"; jobs running beside it are put back with the
  crash as the reason; jobs still queued in the pool run in the next one.
  Results and exceptions come back as bytes the child pickled (child.py), so
  an exception the worker cannot unpickle no longer breaks the pool.
  Progress a child reports comes back on the pool's progress pipe, read by
  the loop (add_reader) and, when the job's outcome arrives, drained first,
  so the job's last value reaches the worker before the job settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from ..app import JobDefinition
from ..context import JobContext, current_job
from ..errors import BananasError, JobTimeout
from ..hooks import ChildScope
from .child import call_in_child, init_child, outcome


class Requeue(BananasError):
    """The job did not fail; it could not finish here. Put it back uncharged."""


class Executors:
    def __init__(self, concurrency: int) -> None:
        self.thread_count = concurrency * 2
        self._threads = ThreadPoolExecutor(
            max_workers=self.thread_count, thread_name_prefix="bananas-job"
        )
        # Threads still running a handler that timed out (read by the health thread).
        self.threads_stuck = 0
        self._process_size = max(1, min(concurrency, os.cpu_count() or 1))
        self._slots = concurrency  # at most this many process jobs at once
        self._free_slots = list(range(concurrency))
        self._processes: _Pool | None = None
        self._generation = 0

    async def run(
        self,
        definition: JobDefinition,
        kwargs: dict[str, Any],
        timeout: float,
        scopes: list[ChildScope] | None = None,
    ) -> Any:
        """`scopes` (from hooks) are entered around a process job in its child;
        async and thread jobs see the caller's contextvars instead."""
        kind = definition.executor
        if kind == "async":
            return await self._run_async(definition, kwargs, timeout)
        if kind == "thread":
            return await self._run_thread(definition, kwargs, timeout)
        return await self._run_process(definition, kwargs, timeout, scopes)

    @staticmethod
    async def _run_async(definition: JobDefinition, kwargs: dict[str, Any], timeout: float) -> Any:
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await definition.fn(**kwargs)
        except TimeoutError:
            if scope.expired():
                raise JobTimeout(f"timed out after {timeout:g}s (cancelled)") from None
            raise

    async def _run_thread(
        self, definition: JobDefinition, kwargs: dict[str, Any], timeout: float
    ) -> Any:
        loop = asyncio.get_running_loop()
        started: list[float] = []  # the thread writes its start time: no wake-up per job
        run = contextvars.copy_context().run
        fn = definition.fn

        def call() -> Any:
            started.append(time.monotonic())
            return run(fn, **kwargs)

        future = loop.run_in_executor(self._threads, call)
        wait = timeout
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), wait)
            except TimeoutError:
                if future.done():
                    return future.result()
                if not started:  # still waiting for a thread: not the job's time
                    continue
                wait = started[0] + timeout - time.monotonic()
                if wait > 0:
                    continue
                self._stuck_one(future)
                raise JobTimeout(
                    f"timed out after {timeout:g}s (thread left running; result discarded)"
                ) from None
            except asyncio.CancelledError:
                future.cancel()  # a job that has not started yet never will
                raise

    def _stuck_one(self, future: asyncio.Future[Any]) -> None:
        self.threads_stuck += 1

        def returned(_: asyncio.Future[Any]) -> None:
            self.threads_stuck -= 1

        future.add_done_callback(returned)

    def _pool(self) -> _Pool:
        if self._processes is None:
            context = multiprocessing.get_context("spawn")
            pids = context.Array("i", self._slots, lock=False)
            started = context.Array("d", self._slots, lock=False)
            # One pipe for every child's progress: a message is one write of
            # well under PIPE_BUF (the message is capped), so writes from
            # several children never interleave.
            reader, writer = context.Pipe(duplex=False)
            executor = ProcessPoolExecutor(
                max_workers=self._process_size,
                mp_context=context,
                initializer=init_child,
                initargs=(pids, started, writer),
            )
            self._processes = pool = _Pool(executor, pids, started, reader, writer)
            asyncio.get_running_loop().add_reader(reader.fileno(), pool.read_progress)
        return self._processes

    async def _run_process(
        self,
        definition: JobDefinition,
        kwargs: dict[str, Any],
        timeout: float,
        scopes: list[ChildScope] | None = None,
    ) -> Any:
        while True:  # again only when the pool broke before the job started
            slot = self._free_slots.pop() if self._free_slots else -1
            try:
                return await self._once_in_process(definition, kwargs, timeout, slot, scopes)
            except _NotStarted:
                continue
            finally:
                if slot >= 0:
                    self._free_slots.append(slot)

    async def _once_in_process(
        self,
        definition: JobDefinition,
        kwargs: dict[str, Any],
        timeout: float,
        slot: int,
        scopes: list[ChildScope] | None = None,
    ) -> Any:
        fn = definition.fn
        loop = asyncio.get_running_loop()
        generation, pool = self._generation, self._pool()
        if slot >= 0:
            pool.pids[slot] = 0
            pool.started[slot] = 0.0
        job = current_job()
        info = None if job is None else (job.id, job.name, job.priority, job.attempt)
        if job is not None and slot >= 0:
            pool.jobs[slot] = job
        future = loop.run_in_executor(
            pool.executor, call_in_child, slot, fn.__module__, fn.__qualname__, kwargs, info, scopes
        )
        try:
            ok, data = await _from_start(future, timeout, pool, slot)
            pool.read_progress()  # sent before the outcome: its last value first
        except TimeoutError:
            if future.done() and not future.cancelled():
                raise
            self._kill_pool(generation, "another job's timeout")
            raise JobTimeout(f"timed out after {timeout:g}s (process killed)") from None
        except BrokenProcessPool:
            self._kill_pool(generation, None)
            raise self._after_break(pool, slot) from None
        except asyncio.CancelledError:
            if _cancelled(job) and slot >= 0 and pool.pids[slot] and not future.done():
                # Someone cancelled the job (worker/cancels.py): killing its
                # process is the only way to stop it; its pool goes with it.
                self._kill_pool(generation, "another job's cancel")
                raise
            task = asyncio.current_task()
            if (
                future.cancelled()
                and generation != self._generation
                and task
                and not task.cancelling()
            ):
                raise _NotStarted() from None  # dropped from a killed pool's queue, not by us
            future.cancel()  # ours: a job still queued in the pool must not start later
            raise
        finally:
            pool.jobs.pop(slot, None)
        return outcome(ok, data)

    def _after_break(self, pool: _Pool, slot: int) -> BaseException:
        """What a job in a broken pool gets: its own death, a requeue when
        another job broke the pool (a job that had not started runs again here)."""
        pid = pool.pids[slot] if slot >= 0 else -1
        if pid == 0:
            return _NotStarted()
        if pid in pool.died:
            code = pool.died[pid]
            return BananasError(
                f"the job's process died (exit code {code}: a crash, os._exit or out of memory)"
            )
        if pool.died or pool.reason is not None:
            return Requeue(f"process pool restarted after {pool.cause()}")
        # No process is known to have died by itself: blame every job that was in it.
        return BananasError("the job's process pool broke (a process died; which one is unknown)")

    def _kill_pool(self, generation: int, reason: str | None) -> None:
        """Kill and drop the pool of `generation` (once). With no reason (it broke
        by itself) the processes that had already died, not by the pool's own
        SIGTERM, are noted first: those are the jobs that broke it."""
        if generation != self._generation or self._processes is None:
            return
        pool, self._processes = self._processes, None
        self._generation += 1
        processes = list((getattr(pool.executor, "_processes", None) or {}).values())
        if reason is None:
            pool.died = _died_by_themselves(processes)
        pool.reason = reason
        for process in processes:
            process.kill()
        # Joining is quick once the processes are dead, and frees their semaphores.
        pool.executor.shutdown(wait=True, cancel_futures=True)
        pool.close_progress()

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._kill_pool(self._generation, "the worker's stop")


async def _from_start(future: asyncio.Future[Any], timeout: float, pool: _Pool, slot: int) -> Any:
    """The job's outcome, timing out `timeout` after its child started it (a
    job queued in a busy pool is not charged the wait); TimeoutError when it
    ran too long."""
    wait = timeout
    while True:
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            if future.done() and not future.cancelled():
                # It finished as the wait ran out (a loop turn late under
                # load): its outcome stands rather than a timeout.
                return future.result()
            if future.done() or slot < 0:
                raise
            begun = pool.started[slot] if pool.pids[slot] else 0.0
            if begun:
                wait = begun + timeout - time.monotonic()
                if wait <= 0:
                    raise
            # else: still waiting for a process, not the job's time


def _died_by_themselves(processes: list[Any]) -> dict[int, int]:
    """pid -> exit code of the pool processes that are gone and were not
    stopped by the pool's own SIGTERM. A process's end of its pipe closes
    (what the pool noticed) a moment before it can be reaped, and the pool's
    thread reaps it too: wait, briefly, until its exit code is known."""
    sentinels = {p.sentinel: p for p in processes}
    gone = multiprocessing.connection.wait(list(sentinels), timeout=0)
    died: dict[int, int] = {}
    deadline = time.monotonic() + 2.0
    for sentinel in gone:
        process = sentinels[sentinel]
        while process.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.005)
        code = process.exitcode
        if code is not None and code != -signal.SIGTERM:
            died[process.pid] = code
    return died


def _cancelled(job: JobContext | None) -> bool:
    return job is not None and job.cancelled


class _NotStarted(Exception):
    """The pool broke before this job started: run it in the next pool."""


@dataclass(eq=False)
class _Pool:
    """One process pool, the pid each slot's job started in, and how it ended."""

    executor: ProcessPoolExecutor
    pids: Any  # multiprocessing Array of int, one per slot
    started: Any  # multiprocessing Array of float: time.monotonic() at the job's start
    progress: Any  # read end of the children's progress pipe (a Connection)
    progress_writer: Any  # its write end, inherited by children the pool starts later
    died: dict[int, int] = field(default_factory=dict)  # pid -> exit code
    reason: str | None = None
    jobs: dict[int, JobContext] = field(default_factory=dict)  # slot -> running job

    def read_progress(self) -> None:
        """Hand what children reported to their jobs (the loop's reader callback)."""
        try:
            while self.progress.poll():
                slot, fraction, message = self.progress.recv()
                job = self.jobs.get(slot)
                if job is not None and job.sink is not None:
                    job.sink.report(job, fraction, message)
        except (OSError, EOFError, ValueError):
            self.close_progress()

    def close_progress(self) -> None:
        if self.progress.closed:
            return
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # the loop is gone
            asyncio.get_running_loop().remove_reader(self.progress.fileno())
        self.progress.close()
        self.progress_writer.close()

    def cause(self) -> str:
        if self.died:
            codes = ", ".join(f"pid {pid} exit code {code}" for pid, code in self.died.items())
            return f"another job's process died ({codes})"
        return self.reason or "a crash"
