"""Test fixtures: a real redis-server on a free loopback port, real worker processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))

from cluster_fixtures import (  # noqa: F401  (fixtures: Redis Cluster and Sentinel beds)
    cluster_factory,
    redis_cluster,
    sentinel_bed,
    sentinel_factory,
)
from support import Backend, RedisServer, WorkerFactory

from bananas import Bananas
from bananas.config import Settings


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean database; REDIS_URL points at it for in-process clients."""
    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("BANANAS_BROKER_URL", raising=False)
    return redis_server.url


@pytest.fixture(params=("redis", "sqlite"))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A broker URL per backend: a flushed Redis database, or a fresh SQLite file."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return f"sqlite:///{tmp_path}/queue.db"


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The broker a test runs on: redis unless parametrized (support.both_brokers)."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture
def target(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Backend]:
    """The test's broker (a flushed Redis, or a fresh SQLite file) and the test
    app's sink on it; in-process clients (`app.configure(Settings.load())`)
    find the broker through the environment."""
    if backend == "redis":
        url: str = request.getfixturevalue("redis_url")
        chosen = Backend("redis", url, url)
    else:
        url = f"sqlite:///{tmp_path}/queue.db"
        chosen = Backend("sqlite", url, f"sqlite:///{tmp_path}/sink.db")
        monkeypatch.delenv("REDIS_URL", raising=False)
        monkeypatch.setenv("BANANAS_BROKER_URL", url)
    monkeypatch.setenv("TEST_SINK_URL", chosen.sink_url)
    yield chosen
    chosen.close()


@pytest.fixture
def workers(target: Backend, tmp_path: Path) -> Iterator[WorkerFactory]:
    sink_url = None if target.name == "redis" else target.sink_url
    factory = WorkerFactory(target.url, tmp_path, sink_url=sink_url)
    yield factory
    factory.stop_all()


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("WORKER_", "BANANAS_")) or name in (
            "MAX_RETRIES",
            "JOB_TIMEOUT",
            "LEASE_TIMEOUT",
            "SHUTDOWN_TIMEOUT",
            "CONCURRENCY",
            "WORKER_TYPE",
            "GROUP_ID",
            "SCHEDULER_INTERVAL",
            "ENABLE_SCHEDULER",
            "MAX_STALLS",
        ):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _test_apps_unconfigured() -> Iterator[None]:
    """The test apps (tests/apps/*.py) are module-level Bananas objects shared by
    every test of the session. A test that configures one for a redis-server of
    its own (`app.configure(...)`) left it pointing there after that server had
    stopped, and the next test that enqueued without configuring it first got
    "Connection refused" (tests/test_bad_input.py run after test_observe.py's
    readyz test or test_acl.py). After each test every loaded test app is back
    to unconfigured: its brokers closed, its settings read again, from the next
    test's environment, on first use."""
    yield
    for name, module in list(sys.modules.items()):
        app = getattr(module, "app", None) if name.startswith("apps.") else None
        if isinstance(app, Bananas):
            app.configure(Settings())  # closes every cached broker (per loop too)
            assert hasattr(app, "_settings"), "Bananas keeps its lazy settings elsewhere now"
            app._settings = None  # no public way back to "read on first use"
