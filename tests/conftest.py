"""Test fixtures: a real redis-server on a free loopback port, real worker processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))

from support import RedisServer, WorkerFactory


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


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def workers(redis_url: str, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(redis_url, tmp_path)
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
