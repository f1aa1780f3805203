"""Fixtures for the Redis topologies of tests/topology.py (imported by
tests/conftest.py, so every test directory can ask for them).

`redis_cluster` is shared by the whole session (startup and stop cost ~3-5 s
on a loaded 2-core machine; it was one per module, then one more for
tests/conformance): tests that only read and write use it, flushing what they
need (`cluster.flushall()`); a test that kills or reshards nodes, or changes
a node's configuration, takes its own from `cluster_factory`.
`sentinel_bed` is per test: failover tests kill its primary.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from topology import Cluster, SentinelBed, start_cluster, start_sentinel_bed


def _require(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            package = "redis-tools" if name == "redis-cli" else name
            pytest.skip(
                f"{name} is not installed (make test installs it: apt-get install {package})"
            )


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """3 primaries, 1 replica each, shared by every test of the session (never
    kill, reshard or reconfigure its nodes: use `cluster_factory` for that)."""
    _require("redis-server", "redis-cli")
    with start_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Start clusters of any shape (`cluster_factory(primaries=1, replicas_per_primary=0)`);
    each is stopped at the end of the test."""
    _require("redis-server", "redis-cli")
    started: list[Cluster] = []

    def make(**kwargs: Any) -> Cluster:
        cluster = start_cluster(tmp_path / f"cluster-{len(started)}", **kwargs)
        started.append(cluster)
        return cluster

    yield make
    for cluster in started:
        cluster.stop()


@pytest.fixture
def sentinel_factory(tmp_path: Path) -> Iterator[Callable[..., SentinelBed]]:
    """Start sentinel beds (`sentinel_factory(password="...")`); each is stopped
    at the end of the test."""
    _require("redis-server", "redis-sentinel")
    started: list[SentinelBed] = []

    def make(**kwargs: Any) -> SentinelBed:
        bed = start_sentinel_bed(tmp_path / f"sentinel-{len(started)}", **kwargs)
        started.append(bed)
        return bed

    yield make
    for bed in started:
        bed.stop()


@pytest.fixture
def sentinel_bed(sentinel_factory: Callable[..., SentinelBed]) -> SentinelBed:
    """A primary, its replica and 3 sentinels watching it as `mymaster`."""
    return sentinel_factory()
