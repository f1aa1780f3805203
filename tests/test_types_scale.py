"""A worker's cost in its number of job types is linear: the fetch orders are
made one per fetch (not every combination precomputed), and the Redis key
names are cached per queue (not per order, which filled without bound).
Before: 300 types held 270,000 queue refs in orders; 1,000 weighted 30 million."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bananas.brokers.redis import RedisBroker
from bananas.vocabulary import PRIORITIES
from bananas.worker.ordering import FetchOrders

TYPES = tuple(f"type-{i:04d}" for i in range(1000))
WEIGHTS = {"high": 6, "normal": 3, "low": 1}


def allocated(make: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        kept = make()
        return tracemalloc.get_traced_memory()[0], kept
    finally:
        tracemalloc.stop()


def test_fetch_orders_are_linear_in_job_types() -> None:
    started = time.perf_counter()
    size, orders = allocated(lambda: FetchOrders(PRIORITIES, TYPES, "weighted", WEIGHTS))
    assert time.perf_counter() - started < 0.5
    assert size < 2_000_000, f"{size} bytes for 1,000 types"  # ~200 B per queue

    # One cycle (10 weighted starts x 1,000 rotations) adds nothing kept.
    def a_cycle() -> None:
        for _ in range(orders.cycle_length()):
            next(orders)

    assert allocated(a_cycle)[0] < 100_000


def test_redis_key_cache_holds_one_entry_per_queue() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0")  # never connects: key names only
    orders = FetchOrders(PRIORITIES, TYPES[:300])

    def fetch_a_cycle() -> None:
        for _ in range(orders.cycle_length()):
            broker._ready_keys(next(orders))

    size, _ = allocated(fetch_a_cycle)  # a cycle of 300 rotations x 3 priorities
    assert size < 1_000_000, f"the key cache kept {size} bytes for 900 queues"
    size, _ = allocated(fetch_a_cycle)
    assert size < 100_000, f"the key cache grew {size} bytes in a second cycle"


def test_dequeue_finds_a_job_behind_thousands_of_empty_queues(redis_url: str) -> None:
    """One LMPOP per 4,000 lists: 2,000 types x 3 priorities crosses a chunk."""
    from bananas import Bananas

    app = Bananas(redis_url)
    names = tuple(f"t{i:04d}" for i in range(2000))
    _, last = app.enqueue_many([("t0000", {}), ("t1999", {"_priority": "low"})])
    order = next(FetchOrders(PRIORITIES, names))  # t1999 at low is the very last
    assert order[-1] == ("low", "t1999")
    order = [q for q in order if q[1] != "t0000"]  # 5,997 queues, one job at the end
    broker = RedisBroker(redis_url)

    async def take() -> list[str]:
        try:
            got = await broker.dequeue(order, 5, 30, "w:")
            return [d.id for d in got]
        finally:
            await broker.close()

    assert asyncio.run(take()) == [last.id]
    app.close()
