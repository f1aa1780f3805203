"""BrokerCache: one broker per event loop plus one for sync calls, and
close_all closing every one of them (Bananas.configure, the dashboard)."""

from __future__ import annotations

import asyncio
import threading

from bananas.brokers import Broker, from_url
from bananas.brokers.cache import BrokerCache


class Made:
    """The factory: real brokers, each close counted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.brokers: list[Broker] = []
        self.closed: list[Broker] = []

    def __call__(self) -> Broker:
        broker = from_url(self.url)
        real_close = broker.close

        async def close() -> None:
            self.closed.append(broker)
            await real_close()

        broker.close = close  # type: ignore[method-assign]
        self.brokers.append(broker)
        return broker


def test_one_broker_per_loop_and_one_shared(broker_url: str) -> None:
    made = Made(broker_url)
    cache = BrokerCache(made)
    seen: list[Broker] = []

    def from_thread() -> None:
        seen.append(cache.shared())

    threads = [threading.Thread(target=from_thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in seen}) == 1  # built once, under the lock

    async def in_loop() -> tuple[Broker, Broker]:
        first = cache.for_loop()
        await first.ping()
        return first, cache.for_loop()

    a1, a2 = asyncio.run(in_loop())
    b1, _ = asyncio.run(in_loop())
    assert a1 is a2 and a1 is not b1 and a1 is not seen[0]
    cache.close_all()
    assert {id(b) for b in made.closed} == {id(seen[0]), id(a1), id(b1)}
    again = cache.shared()
    assert again is not seen[0]  # a fresh one after close_all
    cache.close_shared()
    assert made.closed[-1] is again


def test_close_all_from_inside_a_loop_closes_that_loops_broker(broker_url: str) -> None:
    made = Made(broker_url)
    cache = BrokerCache(made)

    async def main() -> None:
        mine = cache.for_loop()
        await mine.ping()
        cache.close_all()
        deadline = asyncio.get_running_loop().time() + 5
        while mine not in made.closed:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        fresh = cache.for_loop()
        assert fresh is not mine
        await cache.aclose_loop()
        assert made.closed == [mine, fresh]  # each closed once, on this loop

    asyncio.run(main())
    assert len(made.closed) == 2


def test_a_loops_broker_closes_as_its_loop_ends(broker_url: str) -> None:
    made = Made(broker_url)
    cache = BrokerCache(made)

    async def use() -> Broker:
        broker = cache.for_loop()
        await broker.ping()
        return broker

    first = asyncio.run(use())
    assert made.closed == [first]  # closed on its own loop, before that loop closed
    second = asyncio.run(use())
    assert second is not first and made.closed == [first, second]
    cache.close_all()  # nothing left to close twice
    assert made.closed == [first, second]


def test_aclose_closes_every_loops_broker(broker_url: str) -> None:
    made = Made(broker_url)
    cache = BrokerCache(made)

    async def main() -> None:
        mine = cache.for_loop()
        await mine.ping()
        await cache.aclose()
        assert made.closed == [mine]
        assert cache.for_loop() is not mine

    asyncio.run(main())
    assert len(made.closed) == 2
