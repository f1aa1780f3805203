"""The maintenance part in-process, against each real broker: an expired lease
recovered, a due job moved (not before it is due), each cron firing enqueued
once with two maintenance loops running, and firings judged by the broker's
clock rather than this host's.

Each test runs in its own event loop; every broker it opened is closed there.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from conformance.kit import Q, job, until

from bananas import Bananas
from bananas.brokers import Broker, from_url
from bananas.brokers.base import NewJob
from bananas.logs import EventLog
from bananas.observe.stats import WorkerStats
from bananas.worker.maintenance import Maintenance, MaintenanceParams

EVERY = 0.5  # seconds between the periodic schedule's firings


def scheduled_app(url: str) -> Bananas:
    app = Bananas(url)

    @app.periodic(every=f"{EVERY}s")
    def tick() -> None:
        """Never runs here: only its firings are looked at."""

    return app


def maintenance(
    broker: Broker, app: Bananas, *, schedule: bool, recover: bool
) -> tuple[Maintenance, WorkerStats]:
    stats = WorkerStats()
    params = MaintenanceParams(
        broker=broker,
        log=EventLog("debug", "json", io.StringIO()),
        stats=stats,
        app=app,
        schedule=schedule,
        recover=recover,
        scheduler_interval=0.05,
        lease_timeout=0.4,  # the recoverer looks every 0.1 s
        max_stalls=3,
    )
    return Maintenance(params), stats


def run(url: str, test: Callable[[list[Broker]], Awaitable[None]]) -> None:
    """Run `test` in a fresh loop with a list it adds brokers to; close them after."""

    async def main() -> None:
        opened: list[Broker] = []
        try:
            await test(opened)
        finally:
            for broker in opened:
                await broker.close()

    asyncio.run(main())


def state_is(broker: Broker, job_id: str, state: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await broker.job_state(job_id) == state

    return probe


def test_an_expired_lease_is_recovered(store_url: str) -> None:
    async def test(opened: list[Broker]) -> None:
        broker = from_url(store_url)
        opened.append(broker)
        await broker.enqueue([job("a")])
        [lost] = await broker.dequeue(
            Q, 1, 0.2, f"dead-worker{time.monotonic_ns()}:"
        )  # no heartbeat follows
        part, stats = maintenance(broker, scheduled_app(store_url), schedule=False, recover=True)
        part.start()
        try:
            await until(state_is(broker, "a", "queued"), 5, "the lease recovered")
        finally:
            await part.stop()
        assert stats.recovered == 1
        [again] = await broker.dequeue(Q, 1, 30.0, f"live-worker{time.monotonic_ns()}:")
        assert again.id == "a" and again.token != lost.token

    run(store_url, test)


def test_a_due_job_is_moved_once_due(store_url: str) -> None:
    async def test(opened: list[Broker]) -> None:
        broker = from_url(store_url)
        opened.append(broker)
        due = time.time() + 0.6
        await broker.enqueue([job("later", due=due)])
        part, stats = maintenance(broker, scheduled_app(store_url), schedule=True, recover=False)
        part.start()
        try:
            await until(state_is(broker, "later", "queued"), 5, "the due job moved")
            moved_at = time.time()
        finally:
            await part.stop()
        # Ticks every 0.05 s before the due time moved nothing.
        assert moved_at >= due
        assert stats.moved == 1
        assert [d.id for d in await broker.dequeue(Q, 5, 30.0, f"w{time.monotonic_ns()}:")] == [
            "later"
        ]

    run(store_url, test)


def test_each_firing_is_enqueued_once_with_two_loops(store_url: str) -> None:
    async def test(opened: list[Broker]) -> None:
        app = scheduled_app(store_url)
        # Per loop, each firing enqueue that went through: {job id: created new}.
        outcomes: list[dict[str, bool]] = [{}, {}]
        loops = []
        for seen in outcomes:
            broker = from_url(store_url)  # its own client, as another process would have
            opened.append(broker)
            broker.enqueue = recording(broker.enqueue, seen)  # type: ignore[method-assign]
            loops.append(maintenance(broker, app, schedule=True, recover=False))
        for part, _ in loops:
            part.start()
        try:
            # Two firings both loops enqueued (each looks every 0.05 s).
            await until(
                lambda: _true(len(outcomes[0].keys() & outcomes[1].keys()) >= 2),
                5,
                "two firings both loops enqueued",
            )
        finally:
            for part, _ in loops:
                await part.stop()
        both = outcomes[0].keys() & outcomes[1].keys()
        for firing in both:
            assert [seen[firing] for seen in outcomes].count(True) == 1, (firing, outcomes)
        created = {f for seen in outcomes for f, new in seen.items() if new}
        assert sum(stats.fired for _, stats in loops) == len(created)
        queued = await opened[0].dequeue(
            [("normal", "tick")], 100, 30.0, f"w{time.monotonic_ns()}:"
        )
        ids = [d.id for d in queued]
        # (A tick cancelled by the stop mid-enqueue may have added one more.)
        assert len(ids) == len(set(ids)) and created <= set(ids), (ids, outcomes)
        for job_id in ids:
            fired_ms = int(job_id.rsplit(":", 1)[1])
            assert fired_ms % round(EVERY * 1000) == 0, job_id

    run(store_url, test)


def test_firings_follow_the_broker_clock(store_url: str) -> None:
    """The broker's clock an hour behind this host's: the firings are the
    broker's (an hour ago), read once per tick."""

    async def test(opened: list[Broker]) -> None:
        broker = from_url(store_url)
        opened.append(broker)
        reads: list[float] = []

        async def an_hour_behind() -> float:
            now = time.time() - 3600
            reads.append(now)
            return now

        broker.server_time = an_hour_behind  # type: ignore[method-assign]
        part, stats = maintenance(broker, scheduled_app(store_url), schedule=True, recover=False)
        part.start()
        try:
            await until(lambda: _true(stats.fired >= 1), 5, "a firing")
        finally:
            await part.stop()
        [fired] = await broker.dequeue([("normal", "tick")], 1, 30.0, f"w{time.monotonic_ns()}:")
        fired_at = int(fired.id.rsplit(":", 1)[1]) / 1000
        assert reads[0] - EVERY - 0.1 <= fired_at <= reads[-1], (fired_at, reads[0], reads[-1])

    run(store_url, test)


def recording(
    enqueue: Callable[[Sequence[NewJob]], Awaitable[list[bool]]], seen: dict[str, bool]
) -> Callable[[Sequence[NewJob]], Awaitable[list[bool]]]:
    async def wrapped(jobs: Sequence[NewJob]) -> list[bool]:
        created = await enqueue(jobs)
        # Recorded before the caller counts them, with no await in between.
        seen.update((j.id, new) for j, new in zip(jobs, created, strict=True))
        return created

    return wrapped


async def _true(value: Any) -> Any:
    return value
