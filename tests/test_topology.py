"""The test beds of tests/topology.py come up, work, and leave nothing running."""

from __future__ import annotations

import os
from collections.abc import Callable

import redis
from topology import Cluster, SentinelBed
from topology_sentinel import SERVICE


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); the test bed reaps what it starts
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] == "Z"


def test_the_cluster_has_three_primaries_each_holding_slots(redis_cluster: Cluster) -> None:
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    counts = redis_cluster.slot_counts()
    assert sum(counts.values()) == 16384 and all(counts[p] > 5000 for p in primaries)
    roles = sorted(n.role for n in redis_cluster.nodes)
    assert roles == ["primary"] * 3 + ["replica"] * 3
    for port in primaries:
        with redis_cluster.client(redis_cluster.replica_of(port)) as c:
            assert c.execute_command("ROLE")[1:3] == ["127.0.0.1", port]
    assert redis_cluster.url.startswith("redis+cluster://127.0.0.1:")
    assert redis_cluster.url.count(",") == 5
    with redis_cluster.cluster_client() as c:
        for i in range(30):  # keys land on every primary through one cluster client
            c.set(f"k{i}", i)
        assert [c.get(f"k{i}") for i in range(30)] == [str(i) for i in range(30)]
    for port in primaries:
        with redis_cluster.client(port) as c:
            assert c.dbsize() > 0
    redis_cluster.flushall()


def test_a_cluster_stops_every_process(cluster_factory: Callable[..., Cluster]) -> None:
    cluster = cluster_factory(primaries=1, replicas_per_primary=0)
    [node] = cluster.nodes
    assert node.role == "primary" and cluster.slot_counts() == {node.port: 16384}
    assert node.pid is not None
    cluster.stop()
    assert gone(node.pid)


def test_a_killed_cluster_primary_is_replaced_by_its_replica(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory()
    old = cluster.primaries()[0]
    replica = cluster.replica_of(old)
    cluster.kill(old)
    assert cluster.wait_failover(old, timeout=20) == replica
    assert replica in cluster.primaries() and old not in cluster.primaries()
    target = next(p for p in cluster.primaries() if p != replica)
    before = cluster.slot_counts()[target]
    cluster.reshard(replica, target, 10)
    assert cluster.slot_counts()[target] == before + 10


def test_the_sentinel_bed_promotes_the_replica(sentinel_bed: SentinelBed) -> None:
    old, replica = sentinel_bed.primary_port, sentinel_bed.replica_port
    with sentinel_bed.sentinel_client() as s:
        assert int(s.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE)[1]) == old
    pids = [p.pid for p in [*sentinel_bed.sentinels, *sentinel_bed.servers.values()]]
    assert sentinel_bed.kill_primary() == old
    assert sentinel_bed.wait_promoted(timeout=20) == replica
    with sentinel_bed.client() as c:
        assert c.set("after", "failover")
    sentinel_bed.stop()
    assert all(pid is not None and gone(pid) for pid in pids)


def test_a_password_protected_sentinel_bed(sentinel_factory: Callable[..., SentinelBed]) -> None:
    bed = sentinel_factory(password="primary-secret", sentinel_password="sentinel-secret")
    assert bed.url.startswith("redis+sentinel://:primary-secret@127.0.0.1:")
    assert bed.url.endswith("/mymaster?sentinel_password=sentinel-secret")
    with redis.Redis(port=bed.primary_port) as anonymous:
        try:
            anonymous.ping()
        except redis.AuthenticationError:
            pass
        else:
            raise AssertionError("the primary answered without its password")
    with bed.client() as c:
        assert c.ping()
