"""Failures: retried with exponential back-off, then dead-lettered with the
error and traceback once the retry budget is spent."""

from __future__ import annotations

import itertools

import pytest

from .conftest import Harness, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)

BACKOFF = 0.3  # RETRY_BACKOFF: attempt n waits BACKOFF * 2^(n-1) * [0.5, 1)


async def test_retries_back_off_exponentially_then_succeed(harness: Harness) -> None:
    running = await harness.start(retry_backoff=BACKOFF, retry_backoff_max=60.0)
    job_id = await harness.enqueue("flaky", k="f", failures=3)
    result = await harness.result(job_id, timeout=20)
    assert result.status == "completed" and result.value() == 4
    assert (await harness.record(job_id))["attempts"] == 4
    gaps = [b - a for a, b in itertools.pairwise(LEDGER.starts["f"])]
    # Each wait is at least its back-off's floor; the last floor (0.6 s) is
    # longer than any wait a job could have without back-off (one scheduler
    # tick of 0.1 s), so a back-off of zero, or one that stopped doubling, fails.
    floors = [BACKOFF * 2 ** (n - 1) * 0.5 for n in (1, 2, 3)]
    assert len(gaps) == 3 and all(g >= f for g, f in zip(gaps, floors, strict=True)), gaps
    planned = [e["retry_in_s"] for e in running.events("job.retried")]
    assert [e["attempt"] for e in running.events("job.retried")] == [1, 2, 3]
    for n, delay in enumerate(planned, start=1):
        ceiling = BACKOFF * 2 ** (n - 1)
        # Drawn in [ceiling / 2, ceiling); the log rounds it to the ms.
        assert ceiling * 0.5 <= delay <= ceiling, planned


async def test_spent_budget_is_dead_lettered_with_traceback(harness: Harness) -> None:
    running = await harness.start()
    job_id = await harness.enqueue("always_fails", k="x")  # max_retries=2
    once = await harness.enqueue("always_fails", k="y", _max_retries=0)
    for j in (job_id, once):
        await until(lambda j=j: _is_dead(harness, j), 20, message=f"{j} dead-lettered")
    assert LEDGER.attempts("x") == 3  # the first run + max_retries=2
    assert LEDGER.attempts("y") == 1  # the enqueue option overrides the handler's budget
    info = await harness.broker.get_dead_info(job_id)
    assert info is not None
    assert info.reason == "failed 3 times (max_retries=2)"
    assert "ValueError: x fails on purpose" in info.error
    assert "Traceback" in info.traceback and "always_fails" in info.traceback
    record = await harness.record(job_id)
    assert record["status"] == "failed" and record["attempts"] == 3
    result = await harness.result(job_id)
    assert result.status == "failed" and "fails on purpose" in (result.error or "")
    assert running.alive
    # Replayed with a fresh budget, it runs (and fails) three more times.
    assert await harness.broker.replay_dead(job_id)
    await until(lambda: LEDGER.attempts("x") == 6, 20, message="the replayed job's 3 runs")
    await until(lambda: _is_dead(harness, job_id), 20, message="dead-lettered again")


async def _is_dead(harness: Harness, job_id: str) -> bool:
    return await harness.state(job_id) == "dead"
