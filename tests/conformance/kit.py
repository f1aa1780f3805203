"""Small helpers shared by the conformance tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from bananas import Bananas, JobSpec
from bananas.brokers import Broker
from bananas.brokers.base import Delivery, NewJob, Recovered
from bananas.config import Settings

T = TypeVar("T")
Q = [("normal", "t")]


_CLIENT = Bananas(settings=Settings())  # encodes records as enqueue does, no broker


def record(job_id: str, name: str = "t", priority: str = "normal", **extra: Any) -> bytes:
    raw = _CLIENT.build_jobs([JobSpec(name, {"n": 1}, priority, job_id=job_id)])[0].record
    if not extra:
        return raw
    fields = orjson.loads(raw)
    fields.update(extra)
    return orjson.dumps(fields)


def job(job_id: str, name: str = "t", priority: str = "normal", due: float | None = None) -> NewJob:
    return NewJob(job_id, name, priority, record(job_id, name, priority), due)


def jobs(*ids: str, name: str = "t", priority: str = "normal") -> list[NewJob]:
    return [job(i, name, priority) for i in ids]


def fields(raw: bytes | None) -> dict[str, Any]:
    assert raw is not None
    data: dict[str, Any] = orjson.loads(raw)
    return data


async def until(
    probe: Callable[[], Awaitable[T]], timeout: float = 5.0, message: str = "condition"
) -> T:
    """Poll an async probe until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)


async def take(broker: Broker, n: int = 1, queues: Any = None, lease: float = 30.0) -> list[str]:
    got = await broker.dequeue(queues or Q, n, lease, f"w{time.monotonic_ns()}:")
    return [d.id for d in got]


async def drain_ids(broker: Broker, queues: Any = None) -> list[str]:
    """Dequeue everything, one at a time, in delivery order."""
    out: list[str] = []
    while got := await broker.dequeue(queues or Q, 1, 30.0, f"d{time.monotonic_ns()}:"):
        out += [d.id for d in got]
    return out


async def expire(broker: Broker, max_stalls: int = 3) -> Recovered:
    """Wait for short leases to run out and recover them."""

    async def probe() -> Recovered | None:
        report = await broker.recover_expired(max_stalls)
        return report if report.recovered or report.buried else None

    return await until(probe, message="an expired lease")


async def lease_one(broker: Broker, lease: float = 30.0, queues: Any = None) -> Delivery:
    [delivery] = await broker.dequeue(queues or Q, 1, lease, f"w{time.monotonic_ns()}:")
    return delivery
