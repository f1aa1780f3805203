"""Execution strategies behind one interface: async, thread, process.

- async: the coroutine runs on the worker's loop; on timeout it is cancelled.
- thread: plain functions run in a thread pool with the caller's contextvars.
  Python cannot stop a thread, so on timeout the job is reported failed (and
  retried) and its slot is freed; the thread runs on until the function
  returns, its result discarded. The pool is sized 2x concurrency for that.
- process: CPU-bound functions run in a spawn-started process pool. On
  timeout the pool's processes are killed (the only way to stop the job) and
  the pool restarted; jobs that were running beside it in the pool are put
  back without an attempt charged.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..app import JobDefinition
from ..errors import BananasError, JobTimeout


class Requeue(BananasError):
    """The job did not fail; it could not finish here. Put it back uncharged."""


class Executors:
    def __init__(self, concurrency: int) -> None:
        self._threads = ThreadPoolExecutor(
            max_workers=concurrency * 2, thread_name_prefix="bananas-job"
        )
        self._process_size = max(1, min(concurrency, os.cpu_count() or 1))
        self._processes: ProcessPoolExecutor | None = None
        self._generation = 0

    async def run(self, definition: JobDefinition, kwargs: dict[str, Any], timeout: float) -> Any:
        kind = definition.executor
        if kind == "async":
            return await self._run_async(definition, kwargs, timeout)
        if kind == "thread":
            return await self._run_thread(definition, kwargs, timeout)
        return await self._run_process(definition, kwargs, timeout)

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
        call = functools.partial(contextvars.copy_context().run, definition.fn, **kwargs)
        future = loop.run_in_executor(self._threads, call)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            if future.cancelled() or not future.done():
                raise JobTimeout(
                    f"timed out after {timeout:g}s (thread left running; result discarded)"
                ) from None
            raise

    def _pool(self) -> ProcessPoolExecutor:
        if self._processes is None:
            self._processes = ProcessPoolExecutor(
                max_workers=self._process_size, mp_context=multiprocessing.get_context("spawn")
            )
        return self._processes

    async def _run_process(
        self, definition: JobDefinition, kwargs: dict[str, Any], timeout: float
    ) -> Any:
        fn = definition.fn
        loop = asyncio.get_running_loop()
        generation = self._generation
        future = loop.run_in_executor(
            self._pool(), _call_in_child, fn.__module__, fn.__qualname__, kwargs
        )
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            if future.done() and not future.cancelled():
                raise
            self._kill_pool(generation)
            raise JobTimeout(f"timed out after {timeout:g}s (process killed)") from None
        except BrokenProcessPool:
            if generation != self._generation:
                raise Requeue("process pool restarted after another job's timeout") from None
            self._kill_pool(generation)
            raise BananasError(
                "the job's process died (crash, os._exit or out of memory)"
            ) from None

    def _kill_pool(self, generation: int) -> None:
        if generation != self._generation or self._processes is None:
            return
        pool, self._processes = self._processes, None
        self._generation += 1
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
        # Joining is quick once the processes are dead, and frees their semaphores.
        pool.shutdown(wait=True, cancel_futures=True)

    def shutdown(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            self._kill_pool(self._generation)


def _call_in_child(module: str, qualname: str, kwargs: dict[str, Any]) -> Any:
    """Runs in the pool process: resolve the handler by name (the decorated
    object is not picklable by reference) and call it."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    fn = getattr(target, "__wrapped__", target)
    result = fn(**kwargs)
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result
