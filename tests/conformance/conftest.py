"""The `broker` fixture, parametrized over every backend, and an asyncio runner.

Tests here are `async def`: each runs in a fresh event loop, and every broker
the test opened is closed in that same loop (redis-py's asyncio connections
belong to the loop that made them).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from topology import Cluster

from bananas.brokers import Broker, from_url

BACKENDS = ("redis", "sqlite", "cluster")


class Brokers:
    """Opens clients on one backend's store: several clients behave like
    several processes (each has its own connections)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[Broker] = []

    def new(self, **options: Any) -> Broker:
        broker = from_url(self.url, **options)
        self.opened.append(broker)
        return broker

    async def close_all(self) -> None:
        for broker in self.opened:
            await broker.close()


@pytest.fixture(params=BACKENDS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")  # a flushed database
        return url
    if request.param == "cluster":
        cluster: str = request.getfixturevalue("cluster_url")  # every primary flushed
        return cluster
    return f"sqlite:///{tmp_path}/queue.db"


@pytest.fixture(scope="session")
def conformance_cluster(redis_cluster: Cluster) -> Cluster:
    """3 primaries and 1 replica each: the session's `redis_cluster`
    (tests/cluster_fixtures.py), shared with tests/cluster's read-and-write
    tests (the conformance tests only read and write; each starts on flushed
    primaries)."""
    return redis_cluster


@pytest.fixture
def cluster_url(conformance_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> str:
    conformance_cluster.flushall()
    monkeypatch.setenv("REDIS_URL", conformance_cluster.url)
    monkeypatch.delenv("BANANAS_BROKER_URL", raising=False)
    return conformance_cluster.url


@pytest.fixture
def brokers(broker_url: str) -> Iterator[Brokers]:
    yield Brokers(broker_url)


@pytest.fixture
def broker(brokers: Brokers) -> Broker:
    return brokers.new()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    names = inspect.signature(test).parameters
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    factory = pyfuncitem.funcargs.get("brokers")

    async def main() -> None:
        try:
            await test(**kwargs)
        finally:
            if isinstance(factory, Brokers):
                await factory.close_all()

    asyncio.run(main())
    return True
