"""Which job a worker takes next: strict priority, weighted priority, and
job types rotated within a priority. One slot and no prefetch, so the start
order is the fetch order."""

from __future__ import annotations

import pytest

from .conftest import Harness, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)

ONE_AT_A_TIME = {"concurrency": 1, "prefetch": 0}


@pytest.fixture(autouse=True)
def _one_partition(one_partition: None) -> None:
    """Every test here needs a single order (conftest.one_partition)."""


async def backlog(harness: Harness, per_priority: int) -> None:
    """A backlog enqueued before any worker runs, low first (so FIFO alone
    would run it in the wrong order)."""
    specs = [
        harness.spec("note", k=f"{p}-{i}", _priority=p)
        for p in ("low", "normal", "high")
        for i in range(per_priority)
    ]
    await harness.enqueue_many(specs)


async def started_priorities(n: int) -> list[str]:
    await until(lambda: len(LEDGER.order) >= n, 20, message=f"{n} jobs started")
    return [k.split("-")[0] for k in LEDGER.order[:n]]


async def test_strict_priority_runs_high_then_normal_then_low(harness: Harness) -> None:
    await backlog(harness, 20)
    await harness.start(**ONE_AT_A_TIME)
    order = await started_priorities(60)
    assert order == ["high"] * 20 + ["normal"] * 20 + ["low"] * 20, order


async def test_weighted_priority_serves_each_by_its_weight(harness: Harness) -> None:
    await backlog(harness, 20)
    await harness.start(**ONE_AT_A_TIME, priority_policy="weighted")
    order = await started_priorities(20)
    # Weights high=6, normal=3, low=1: every ten fetches start 6 / 3 / 1 times
    # at each priority, and no queue is empty yet, so the picks are exact.
    for tenth in (order[:10], order[10:20]):
        counts = {p: tenth.count(p) for p in ("high", "normal", "low")}
        assert counts == {"high": 6, "normal": 3, "low": 1}, order


async def test_job_types_take_turns_within_a_priority(harness: Harness) -> None:
    # 20 of one type queued ahead of 5 of another, same priority.
    await harness.enqueue_many([harness.spec("note", k=f"busy-{i}") for i in range(20)])
    await harness.enqueue_many([harness.spec("note_thread", k=f"other-{i}") for i in range(5)])
    # Only these two types: each fetch starts one type further along.
    types = ("note", "note_thread")
    await harness.start(**ONE_AT_A_TIME, mode="job-specialized", job_types=types)
    await until(lambda: len(LEDGER.order) >= 25, 20, message="25 jobs started")
    first_ten = [k.split("-")[0] for k in LEDGER.order[:10]]
    assert first_ten == ["busy", "other"] * 5, LEDGER.order
