"""The Worker end to end in one interpreter: every job runs once, results are
stored, delayed jobs wait until due, and a worker takes only its job types."""

from __future__ import annotations

import time

import pytest

from .conftest import Harness, until
from .jobs import LEDGER

pytestmark = pytest.mark.timeout(60)
LOST = ("job.recovered", "job.lease_lost", "job.dead_lettered")


async def test_each_job_runs_once_across_two_workers(harness: Harness) -> None:
    n = 400
    specs = [harness.spec("note" if i % 2 else "note_thread", k=str(i)) for i in range(n)]
    first = await harness.start(concurrency=8)
    second = await harness.start(concurrency=8)
    ids = await harness.enqueue_many(specs)
    await until(lambda: sum(LEDGER.runs.values()) >= n, 20, message=f"{n} runs")
    await until(lambda: _count(harness, "completed", n), 10, message="all acked")
    assert set(LEDGER.runs.values()) == {1} and len(LEDGER.runs) == n
    results = await harness.broker.get_results(ids)
    assert [r.value() if r else None for r in results] == [str(i) for i in range(n)]
    assert await harness.broker.count_jobs("running") == 0
    assert await harness.broker.count_jobs("dead") == 0
    assert first.events("job.completed") and second.events("job.completed"), "both took jobs"


async def test_delayed_job_waits_until_due(harness: Harness) -> None:
    await harness.start()
    sent = time.time()
    job_id = await harness.enqueue("note", k="later", _delay=0.6)
    assert await harness.state(job_id) == "scheduled"
    soon = await harness.enqueue("note", k="now")
    await harness.result(soon)
    assert (await harness.result(job_id)).status == "completed"
    waited = LEDGER.started_unix["later"] - sent
    # Not before it is due; then within a few scheduler ticks (0.1 s each).
    assert 0.6 <= waited < 1.5, waited


async def test_job_specialized_worker_leaves_other_types_queued(harness: Harness) -> None:
    await harness.start(mode="job-specialized", job_types=("note",))
    other = await harness.enqueue("add", a=1, b=2)
    mine = await harness.enqueue("note", k="mine")
    assert (await harness.result(mine)).status == "completed"
    assert await harness.state(other) == "queued"
    served = await harness.start(concurrency=1)  # a general worker takes it
    assert (await harness.result(other)).value() == 3
    # The result is readable as the ack lands; the log line follows the reply.
    await until(lambda: bool(served.events("job.completed")), message="job.completed logged")
    assert served.events("job.completed")[0]["job_type"] == "add"


async def _count(harness: Harness, state: str, n: int) -> bool:
    return await harness.broker.count_jobs(state) == n


async def test_heartbeat_keeps_a_long_job_leased(harness: Harness) -> None:
    # The job runs twice its lease; a second worker's recoverer checks every
    # 0.25 s. Only the first worker's heartbeat (every lease / 3) keeps it.
    fast = {"lease_timeout": 1.0, "concurrency": 1, "prefetch": 0}
    holder = await harness.start(**fast)
    job_id = await harness.enqueue("nap", k="long", seconds=2.0)
    await until(lambda: LEDGER.attempts("long") == 1, message="the job started")
    other = await harness.start(**fast)
    result = await harness.result(job_id)
    stolen = [e for w in (holder, other) for e in w.events() if e["event"] in LOST]
    assert LEDGER.attempts("long") == 1, f"the job started again: {stolen}"
    assert not stolen
    assert result.status == "completed" and LEDGER.runs["long"] == 1
