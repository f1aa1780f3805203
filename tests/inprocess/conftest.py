"""The in-process tier: a real `Worker` (fetch loop, runner, executors,
maintenance, drain) driven in the test's own interpreter and event loop,
against a real broker, parametrized over every backend like the conformance
suite (redis-server started by the session fixture; SQLite in tmp_path).

Tests are `async def` taking the `harness` fixture; each runs in a fresh
event loop, and every worker and broker it started is stopped and closed in
that same loop before the test ends. Waits poll with deadlines.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson
import pytest
from conformance.conftest import broker_url as broker_url  # the same backends, re-exported
from conformance.conftest import cluster_url as cluster_url
from conformance.conftest import conformance_cluster as conformance_cluster

from bananas import Bananas, JobSpec
from bananas.brokers import Broker, from_url
from bananas.brokers.base import JobResult
from bananas.config import Settings
from bananas.logs import EventLog
from bananas.worker.runtime import Worker

from . import jobs

T = TypeVar("T")
STOP_BOUND = 10.0  # seconds a worker may take to stop before the test fails
FINISHED = ("completed", "failed")


class Capture(io.TextIOBase):
    """The worker's event log: every JSON line it writes, parsed."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("{"):
                self.lines.append(orjson.loads(line))
        return len(text)

    def flush(self) -> None:
        return None


@dataclass
class Running:
    """A worker running as a task on the test's loop."""

    worker: Worker
    task: asyncio.Task[int]
    log: Capture = field(repr=False)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log.lines if name is None or e.get("event") == name]

    @property
    def alive(self) -> bool:
        return not self.task.done()

    async def stop(self, bound: float = STOP_BOUND) -> int:
        """request_stop() and wait for run() to return its exit code."""
        self.worker.request_stop()
        done, _ = await asyncio.wait({self.task}, timeout=bound)
        if not done:
            self.task.cancel()
            raise AssertionError(f"worker did not stop within {bound}s of request_stop()")
        return self.task.result()


class Harness:
    def __init__(self, url: str) -> None:
        self.url = url
        self.running: list[Running] = []
        self.client = Bananas(url, settings=self.settings())
        self.client.include(jobs.app)
        self._broker: Broker | None = None

    def settings(self, **overrides: Any) -> Settings:
        """Fast, quiet settings for one in-process worker; `overrides` by field."""
        base = Settings(
            broker_url=self.url,
            concurrency=4,
            prefetch=4,
            health_port=0,
            scheduler_interval=0.1,
            retry_backoff=0.02,
            lease_timeout=3.0,
            shutdown_timeout=5.0,
            metrics_log_interval=3600.0,
            log_format="json",
        )
        return replace(base, **overrides)

    @property
    def broker(self) -> Broker:
        """A client broker of the test's own, for inspection (the workers have theirs)."""
        if self._broker is None:
            self._broker = from_url(self.url)
        return self._broker

    async def start(self, **overrides: Any) -> Running:
        settings = self.settings(**overrides)
        app = Bananas(self.url, settings=settings)
        app.include(jobs.app)
        log = Capture()
        worker = Worker(app, settings, EventLog("info", "json", stream=log))
        running = Running(worker, asyncio.create_task(worker.run(), name="worker"), log)
        self.running.append(running)
        await until(
            lambda: running.events("worker.started") or running.task.done(),
            message="worker.started",
        )
        if running.task.done():
            raise AssertionError(f"the worker exited at start: {running.events()}")
        return running

    async def enqueue(self, name: str, **kwargs: Any) -> str:
        [handle] = await self.client.enqueue_many_async([self.client.spec(name, **kwargs)])
        return handle.id

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[str]:
        return [h.id for h in await self.client.enqueue_many_async(list(specs))]

    def spec(self, name: str, **kwargs: Any) -> JobSpec:
        return self.client.spec(name, **kwargs)

    async def result(self, job_id: str, timeout: float = 10.0) -> JobResult:
        """The job's result once it finished (completed or failed)."""

        async def probe() -> JobResult | None:
            found = await self.broker.get_result(job_id)
            return found if found is not None and found.status in FINISHED else None

        return await until(probe, timeout, message=f"job {job_id} to finish")

    async def state(self, job_id: str) -> str | None:
        return await self.broker.job_state(job_id)

    async def record(self, job_id: str) -> dict[str, Any]:
        raw = await self.broker.get_record(job_id)
        assert raw is not None, f"no record for {job_id}"
        data: dict[str, Any] = orjson.loads(raw)
        return data

    async def close(self) -> None:
        try:
            for running in self.running:
                if running.alive:
                    await running.stop()
        finally:
            await self.client.aclose()
            if self._broker is not None:
                await self._broker.close()


async def until(
    probe: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0, message: str = "condition"
) -> Any:
    """Poll `probe` (sync or async) until truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.01)


@pytest.fixture
def harness(broker_url: str) -> Iterator[Harness]:
    jobs.LEDGER.reset()
    yield Harness(broker_url)
    jobs.LEDGER.reset()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in inspect.signature(test).parameters}
    harness = pyfuncitem.funcargs.get("harness")

    async def main() -> None:
        try:
            await test(**kwargs)
        finally:
            if isinstance(harness, Harness):
                await harness.close()

    asyncio.run(main())
    return True


@pytest.fixture
def one_partition(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Redis Cluster these orders hold within a partition (jobs spread over
    partitions are served in turns: docs/deployment.md, Redis Cluster); with
    REDIS_PARTITIONS=1 a cluster keeps them whole, as documented."""
    if "+cluster://" in broker_url:
        monkeypatch.setenv("REDIS_PARTITIONS", "1")
