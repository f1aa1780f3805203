"""Progress throttling in a real Worker: a handler calling set_progress in a
tight loop (from the loop or from a thread) costs at most one broker write
per 0.5 s, its last value is written before the outcome, and a job that
never reports progress causes no progress write at all."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from bananas import current_job
from bananas.progress import PROGRESS_INTERVAL

from . import jobs
from .conftest import Harness

pytestmark = pytest.mark.timeout(60)
FLOOD_S = 1.6


def _flood(tick: Any = None) -> int:
    job = current_job()
    assert job is not None
    n, end = 0, time.monotonic() + FLOOD_S
    while time.monotonic() < end:
        job.set_progress(min(1.0, n / 10_000_000), f"n={n}")
        n += 1
    job.set_progress(1.0, "done")
    return n


@jobs.app.job(executor="thread")
def progress_flood_thread() -> int:
    return _flood()


@jobs.app.job()
async def progress_flood_async() -> int:
    job = current_job()
    assert job is not None
    n, end = 0, time.monotonic() + FLOOD_S
    while time.monotonic() < end:
        job.set_progress(min(1.0, n / 10_000_000), f"n={n}")
        n += 1
        if n % 100 == 0:
            await asyncio.sleep(0)  # the loop runs (the writer may write) between calls
    job.set_progress(1.0, "done")
    return n


def _count_writes(broker: Any) -> list[tuple[float, float, str]]:
    """Every set_progress the worker's own broker is asked for (then sent on)."""
    writes: list[tuple[float, float, str]] = []
    real = broker.set_progress

    async def counted(delivery: Any, fraction: float, message: str, *rest: Any) -> bool:
        writes.append((time.monotonic(), fraction, message))
        return bool(await real(delivery, fraction, message, *rest))

    broker.set_progress = counted
    return writes


@pytest.mark.parametrize("kind", ["async", "thread"])
async def test_a_tight_loop_is_throttled_and_its_last_value_written(
    harness: Harness, kind: str
) -> None:
    running = await harness.start(concurrency=2)
    writes = _count_writes(running.worker.broker)
    job_id = await harness.enqueue(f"progress_flood_{kind}")
    result = await harness.result(job_id, timeout=30)
    assert result.status == "completed", result.error
    calls = result.value()
    assert calls > 5_000, calls  # a flood indeed
    # The first at once, then at most one per interval, plus the final flush.
    assert 2 <= len(writes) <= FLOOD_S / PROGRESS_INTERVAL + 2, writes
    # Every gap but the last (the final flush goes at once) is a whole interval.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(writes[:-1])]
    assert all(gap >= PROGRESS_INTERVAL * 0.9 for gap in gaps), gaps
    assert writes[-1][1:] == (1.0, "done")
    stored = await harness.broker.get_progress(job_id)
    assert stored is not None and (stored.fraction, stored.message) == (1.0, "done")
    assert not running.worker.runner.progress.jobs  # nothing kept after the job


async def test_a_job_that_reports_nothing_writes_no_progress(harness: Harness) -> None:
    running = await harness.start(concurrency=2)
    writes = _count_writes(running.worker.broker)
    ids = [await harness.enqueue("add", a=i, b=1) for i in range(20)]
    for job_id in ids:
        assert (await harness.result(job_id)).status == "completed"
    assert writes == []
    assert await harness.broker.get_progress(ids[0]) is None
