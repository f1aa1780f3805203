"""The worker registry: heartbeats, expiry of silent workers, removal."""

from __future__ import annotations

import asyncio
import time

from bananas.brokers import Broker
from bananas.brokers.base import foreign_routing
from bananas.vocabulary import WorkerInfo

from .conftest import Brokers
from .kit import until


def entry(worker_id: str, pid: int, in_flight: int = 0) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id, host="h", pid=pid, mode="default", in_flight=in_flight, draining=False
    )


async def test_heartbeat_registers_and_refreshes(broker: Broker) -> None:
    before = time.time()
    await broker.heartbeat_worker(entry("w1", 1))
    await broker.heartbeat_worker(entry("w2", 2))
    await broker.heartbeat_worker(entry("w1", 1, in_flight=5))
    listed = {w.pid: w for w in await broker.list_workers(60)}
    assert set(listed) == {1, 2}
    assert listed[1].id == "w1" and listed[1].in_flight == 5
    assert listed[2].id == "w2" and listed[2].host == "h" and listed[2].mode == "default"
    seen = listed[1].last_seen
    assert seen is not None and before - 1 <= seen <= time.time() + 1


async def test_the_typed_entry_round_trips(broker: Broker) -> None:
    sent = WorkerInfo(
        id="full",
        kind="scheduler",
        host="box",
        pid=9,
        mode="scheduler-only",
        group="ops",
        priorities=["high", "low"],
        job_types=["a", "b"],
        concurrency=4,
        in_flight=2,
        utilization=0.5,
        scheduler=True,
        started_at=1234.5,
        draining=True,
        state="draining",
        jobs_completed=10,
        jobs_failed=1,
    )
    await broker.heartbeat_worker(sent)
    [got] = await broker.list_workers(60)
    assert got.last_seen is not None
    got.last_seen = None
    assert got == sent


async def test_silent_workers_expire(brokers: Brokers) -> None:
    broker = brokers.new()
    await broker.heartbeat_worker(entry("gone", 1))
    await asyncio.sleep(0.3)
    await broker.heartbeat_worker(entry("alive", 2))
    assert [w.id for w in await broker.list_workers(0.2)] == ["alive"]
    # Pruned for good: a longer window does not bring it back.
    assert [w.id for w in await brokers.new().list_workers(3600)] == ["alive"]


async def test_listed_oldest_heartbeat_first(broker: Broker) -> None:
    for name in ("c", "a", "b"):
        await broker.heartbeat_worker(entry(name, 0))
        await asyncio.sleep(0.003)  # distinct heartbeat times
    assert [w.id for w in await broker.list_workers(60)] == ["c", "a", "b"]


async def test_remove_worker(broker: Broker) -> None:
    await broker.heartbeat_worker(entry("w1", 1))
    await broker.heartbeat_worker(entry("w2", 2))
    await broker.remove_worker("w1")
    await broker.remove_worker("never-there")
    assert [w.id for w in await broker.list_workers(60)] == ["w2"]


async def test_registry_is_shared_between_clients(brokers: Brokers) -> None:
    await brokers.new().heartbeat_worker(entry("w", 7))

    async def seen() -> list[WorkerInfo]:
        return await brokers.new().list_workers(60)

    assert [w.pid for w in await until(seen)] == [7]


async def test_register_types_and_ping(broker: Broker) -> None:
    await broker.ping()
    router = foreign_routing(broker)
    # Optional: SQLite receives no foreign records; a Redis Cluster refuses the
    # SDK lists at start instead (they carry no hash tag: docs/deployment.md).
    assert (router is None) == (broker.url.startswith("sqlite") or "+cluster://" in broker.url)
    if router is not None:
        await router.register_types(["a", "b"])
        await router.register_types([])
    assert "://" in broker.describe()
