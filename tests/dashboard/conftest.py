"""Fixtures for the dashboard tests: a real uvicorn serving the dashboard on a
free loopback port, against the real redis-server of tests/conftest.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dashtools import ThreadServer, serve_app


@pytest.fixture
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The broker the dashboard reads: Redis (a flushed database) unless a test
    is parametrized over BACKENDS with `both_brokers`."""
    if getattr(request, "param", "redis") == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return f"sqlite:///{tmp_path}/queue.db"


@pytest.fixture
def dash(broker_url: str) -> Iterator[ThreadServer]:
    """An open dashboard (no credentials configured)."""
    with serve_app(broker_url) as server:
        yield server


@pytest.fixture
def client(dash: ThreadServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=dash.url, headers={"accept": "text/html"}, timeout=10, follow_redirects=True
    ) as c:
        yield c
